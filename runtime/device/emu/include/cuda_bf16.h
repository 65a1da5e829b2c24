/* cuda_bf16.h for the emulator: the part of CUDA's bfloat16 API that kanc's
 * kernels use, as host C++ with the GPU's rounding.
 *
 * The emulation build puts this folder on the include path, so a CUDA source
 * that says `#include <cuda_bf16.h>` compiles unchanged with NVRTC (the real
 * header) and under the prelude runtime/device/emu/cuda_emu.h (this one). As in
 * the real header, __nv_bfloat16's bits are protected (reach them with
 * __bfloat16_as_ushort or __nv_bfloat16_raw), it converts to and from float
 * implicitly, and pairs are __nv_bfloat162 {x (low), y (high)}.
 *
 * Rounding: float -> bf16 rounds to nearest even (cvt.rn.bf16.f32; NaN becomes
 * 0x7fff, overflow gives infinity, subnormals are kept); _rz truncates;
 * double -> bf16 rounds once (through a float rounded to odd, as the real
 * header's host path does). Arithmetic computes in float and rounds to bf16:
 * for +, -, * and / of two bf16 values that equals one rounding of the exact
 * result (the float result is exact for +, - and *, and a quotient of 8-bit
 * significands is never within float precision of a bf16 midpoint unless it
 * is one); __hfma rounds a double a * b + c the same way.
 */
#ifndef KANC_EMU_CUDA_BF16_H
#define KANC_EMU_CUDA_BF16_H

#ifndef KANC_EMU
#error "runtime/device/emu/include/cuda_bf16.h is the emulator's: compile with the prelude cuda_emu.h first"
#endif

#include <math.h>
#include <string.h>

typedef struct __align__(2) {
    unsigned short x;
} __nv_bfloat16_raw;

typedef struct __align__(4) {
    unsigned short x, y;
} __nv_bfloat162_raw;

static inline unsigned short kanc_emu_f2bf_rn(float f)
{
    unsigned x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    unsigned rem = x << 16, r = x >> 16; /* the real header's form: remainder against half */
    if (rem > 0x80000000u || (rem == 0x80000000u && (r & 1u))) r++;
    return (unsigned short)r;
}

static inline unsigned short kanc_emu_f2bf_rz(float f)
{
    unsigned x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    return (unsigned short)(x >> 16);
}

static inline unsigned short kanc_emu_d2bf_rn(double d)
{
    float f = (float)d;
    unsigned u;
    memcpy(&u, &f, sizeof u);
    if (d == d) {
        double back = (double)f;
        if ((d > 0 && back > d) || (d < 0 && back < d)) u--; /* toward zero ... */
        if (back != d) u |= 1u;                             /* ... and odd: one rounding */
    }
    memcpy(&f, &u, sizeof f);
    return kanc_emu_f2bf_rn(f);
}

static inline float kanc_emu_bf2f(unsigned short h)
{
    unsigned x = (unsigned)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

struct __align__(2) __nv_bfloat16 {
protected:
    unsigned short __x;

public:
    __nv_bfloat16() = default;
    constexpr __nv_bfloat16(const __nv_bfloat16_raw &r) : __x(r.x) {}
    __nv_bfloat16 &operator=(const __nv_bfloat16_raw &r)
    {
        __x = r.x;
        return *this;
    }
    operator __nv_bfloat16_raw() const
    {
        __nv_bfloat16_raw r;
        r.x = __x;
        return r;
    }
    __nv_bfloat16(float f) : __x(kanc_emu_f2bf_rn(f)) {}
    __nv_bfloat16(double d) : __x(kanc_emu_d2bf_rn(d)) {}
    __nv_bfloat16(int i) : __x(kanc_emu_d2bf_rn((double)i)) {}
    __nv_bfloat16(unsigned i) : __x(kanc_emu_d2bf_rn((double)i)) {}
    __nv_bfloat16(short i) : __x(kanc_emu_d2bf_rn((double)i)) {}
    __nv_bfloat16(unsigned short i) : __x(kanc_emu_d2bf_rn((double)i)) {}
    __nv_bfloat16 &operator=(float f)
    {
        __x = kanc_emu_f2bf_rn(f);
        return *this;
    }
    __nv_bfloat16 &operator=(double d)
    {
        __x = kanc_emu_d2bf_rn(d);
        return *this;
    }
    operator float() const { return kanc_emu_bf2f(__x); }
};

static inline __nv_bfloat16 kanc_emu_bf(unsigned short bits)
{
    __nv_bfloat16_raw r;
    r.x = bits;
    return __nv_bfloat16(r);
}
static inline unsigned short kanc_emu_bits(__nv_bfloat16 h) { return __nv_bfloat16_raw(h).x; }

struct __align__(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
    __nv_bfloat162() = default;
    __nv_bfloat162(const __nv_bfloat16 &a, const __nv_bfloat16 &b) : x(a), y(b) {}
    __nv_bfloat162(const __nv_bfloat162_raw &r) : x(kanc_emu_bf(r.x)), y(kanc_emu_bf(r.y)) {}
    __nv_bfloat162 &operator=(const __nv_bfloat162_raw &r)
    {
        x = kanc_emu_bf(r.x);
        y = kanc_emu_bf(r.y);
        return *this;
    }
    operator __nv_bfloat162_raw() const
    {
        __nv_bfloat162_raw r;
        r.x = kanc_emu_bits(x);
        r.y = kanc_emu_bits(y);
        return r;
    }
};

typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

/* ---- conversions ---- */
static inline __nv_bfloat16 __float2bfloat16(float f) { return kanc_emu_bf(kanc_emu_f2bf_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return kanc_emu_bf(kanc_emu_f2bf_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) { return kanc_emu_bf(kanc_emu_f2bf_rz(f)); }
static inline __nv_bfloat16 __double2bfloat16(double d) { return kanc_emu_bf(kanc_emu_d2bf_rn(d)); }
static inline float __bfloat162float(__nv_bfloat16 h) { return kanc_emu_bf2f(kanc_emu_bits(h)); }
static inline __nv_bfloat16 __int2bfloat16_rn(int i) { return kanc_emu_bf(kanc_emu_d2bf_rn((double)i)); }
static inline __nv_bfloat16 __uint2bfloat16_rn(unsigned i) { return kanc_emu_bf(kanc_emu_d2bf_rn((double)i)); }

static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return kanc_emu_bits(h); }
static inline short __bfloat16_as_short(__nv_bfloat16 h) { return (short)kanc_emu_bits(h); }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return kanc_emu_bf(u); }
static inline __nv_bfloat16 __short_as_bfloat16(short s) { return kanc_emu_bf((unsigned short)s); }

/* ---- pairs ---- */
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi)
{
    return __nv_bfloat162(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}
static inline __nv_bfloat162 __float2bfloat162_rn(float f)
{
    __nv_bfloat16 h = __float2bfloat16_rn(f);
    return __nv_bfloat162(h, h);
}
static inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
static inline float2 __bfloat1622float2(__nv_bfloat162 h) { return make_float2((float)h.x, (float)h.y); }
static inline float __low2float(__nv_bfloat162 h) { return (float)h.x; }
static inline float __high2float(__nv_bfloat162 h) { return (float)h.y; }
static inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 h) { return h.x; }
static inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 h) { return h.y; }
static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) { return __nv_bfloat162(lo, hi); }
static inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 h) { return __nv_bfloat162(h, h); }
static inline __nv_bfloat162 __lows2bfloat162(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(a.x, b.x); }
static inline __nv_bfloat162 __highs2bfloat162(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(a.y, b.y); }
static inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 x, __nv_bfloat16 y) { return __nv_bfloat162(x, y); }

/* ---- arithmetic (see the header comment for why float suffices) ---- */
static inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16((float)a + (float)b); }
static inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16((float)a - (float)b); }
static inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16((float)a * (float)b); }
static inline __nv_bfloat16 __hdiv(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16((float)a / (float)b); }
static inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c)
{
    return __double2bfloat16((double)(float)a * (float)b + (float)c);
}
static inline __nv_bfloat16 __hneg(__nv_bfloat16 a) { return kanc_emu_bf(kanc_emu_bits(a) ^ 0x8000u); }
static inline __nv_bfloat16 __habs(__nv_bfloat16 a) { return kanc_emu_bf(kanc_emu_bits(a) & 0x7fffu); }
static inline __nv_bfloat16 __hmax(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16(fmaxf(a, b)); }
static inline __nv_bfloat16 __hmin(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16(fminf(a, b)); }
static inline bool __hisnan(__nv_bfloat16 a) { return (kanc_emu_bits(a) & 0x7fffu) > 0x7f80u; }
static inline int __hisinf(__nv_bfloat16 a)
{
    unsigned short b = kanc_emu_bits(a);
    return b == 0x7f80u ? 1 : b == 0xff80u ? -1 : 0;
}
static inline bool __heq(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a == (float)b; }
static inline bool __hneu(__nv_bfloat16 a, __nv_bfloat16 b) { return !((float)a == (float)b); }
static inline bool __hne(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a < (float)b || (float)a > (float)b; }
static inline bool __hlt(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a < (float)b; }
static inline bool __hle(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a <= (float)b; }
static inline bool __hgt(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a > (float)b; }
static inline bool __hge(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a >= (float)b; }

static inline __nv_bfloat162 __hadd2(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(__hadd(a.x, b.x), __hadd(a.y, b.y)); }
static inline __nv_bfloat162 __hsub2(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(__hsub(a.x, b.x), __hsub(a.y, b.y)); }
static inline __nv_bfloat162 __hmul2(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(__hmul(a.x, b.x), __hmul(a.y, b.y)); }
static inline __nv_bfloat162 __h2div(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(__hdiv(a.x, b.x), __hdiv(a.y, b.y)); }
static inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c)
{
    return __nv_bfloat162(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y));
}
static inline __nv_bfloat162 __hneg2(__nv_bfloat162 a) { return __nv_bfloat162(__hneg(a.x), __hneg(a.y)); }

static inline __nv_bfloat16 operator+(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hadd(a, b); }
static inline __nv_bfloat16 operator-(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hsub(a, b); }
static inline __nv_bfloat16 operator*(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hmul(a, b); }
static inline __nv_bfloat16 operator/(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hdiv(a, b); }
static inline __nv_bfloat16 &operator+=(__nv_bfloat16 &a, const __nv_bfloat16 &b) { return a = __hadd(a, b); }
static inline __nv_bfloat16 &operator-=(__nv_bfloat16 &a, const __nv_bfloat16 &b) { return a = __hsub(a, b); }
static inline __nv_bfloat16 &operator*=(__nv_bfloat16 &a, const __nv_bfloat16 &b) { return a = __hmul(a, b); }
static inline __nv_bfloat16 &operator/=(__nv_bfloat16 &a, const __nv_bfloat16 &b) { return a = __hdiv(a, b); }
static inline __nv_bfloat16 operator+(const __nv_bfloat16 &a) { return a; }
static inline __nv_bfloat16 operator-(const __nv_bfloat16 &a) { return __hneg(a); }
static inline bool operator==(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __heq(a, b); }
static inline bool operator!=(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hneu(a, b); }
static inline bool operator<(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hlt(a, b); }
static inline bool operator<=(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hle(a, b); }
static inline bool operator>(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hgt(a, b); }
static inline bool operator>=(const __nv_bfloat16 &a, const __nv_bfloat16 &b) { return __hge(a, b); }

static inline __nv_bfloat162 operator+(const __nv_bfloat162 &a, const __nv_bfloat162 &b) { return __hadd2(a, b); }
static inline __nv_bfloat162 operator-(const __nv_bfloat162 &a, const __nv_bfloat162 &b) { return __hsub2(a, b); }
static inline __nv_bfloat162 operator*(const __nv_bfloat162 &a, const __nv_bfloat162 &b) { return __hmul2(a, b); }
static inline __nv_bfloat162 operator/(const __nv_bfloat162 &a, const __nv_bfloat162 &b) { return __h2div(a, b); }
static inline __nv_bfloat162 operator-(const __nv_bfloat162 &a) { return __hneg2(a); }

#endif
