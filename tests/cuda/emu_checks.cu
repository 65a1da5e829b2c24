/* emu_checks.cu: kernels for tests/test_emu.c, with and without the bugs the
 * emulator must catch (runtime/device/emu/cuda_emu.h).
 *
 * The same source compiles with NVRTC (the real CUDA headers) and under the
 * emulation prelude (KANC_EMU). Under emulation each kernel NAME gets the host
 * entry NAME__test(grid, block, smem, args), defined here on the prelude's
 * kanc_emu_launch so that the tests do not depend on the generated kernels'
 * calling convention (KANC_EMU_HOST).
 *
 *   shift_*     out[i] = in[i - 1] through shared memory: right only when
 *               thread i - 1 stores before thread i loads (the missing barrier
 *               passes in forward order, fails in reverse and shuffled order)
 *   reduce_*    a tree sum in shared memory: without the barrier between
 *               levels it passes in reverse order and fails forward and
 *               shuffled
 *   chain_*     block b reads what block b - 1 wrote (no order between blocks
 *               on a GPU): passes forward only
 *   uninit_*    reads shared memory that no thread of the block wrote (static
 *               and dynamic): NaN from the emulator's poison
 *   bf16_*      the cuda_bf16.h API: conversions, pairs, arithmetic
 */

#include <cuda_bf16.h>

struct EmuTestArgs {
    const float *in;
    float *out;
    unsigned short *bits; /* bf16 results, as raw bits */
    int n;
};

#ifdef KANC_EMU
#define EMU_TEST_ENTRY(NAME, SYNC)                                                                \
    static void NAME##__emu(const void *a) { NAME((const EmuTestArgs *)a); }                     \
    extern "C" __attribute__((visibility("default"))) void NAME##__test(                         \
        dim3 grid, dim3 block, unsigned smem, const EmuTestArgs *args)                           \
    {                                                                                             \
        kanc_emu_launch(#NAME, NAME##__emu, grid, block, smem, (const void *)args, SYNC);       \
    }
#define EMU_DYN_SMEM(T, name) T *name = (T *)kanc_emu_dyn_smem()
#else
#define EMU_TEST_ENTRY(NAME, SYNC)
#define EMU_DYN_SMEM(T, name)                                                                     \
    extern __shared__ __align__(16) unsigned char emu_dyn_smem_[];                                \
    T *name = (T *)emu_dyn_smem_
#endif

#define TPB 256

/* ---- a neighbour's value through shared memory ---- */

__global__ void shift_missing_sync(const EmuTestArgs *a)
{
    __shared__ float s[TPB];
    int t = threadIdx.x, i = blockIdx.x * TPB + t;
    s[t] = a->in[i];
    __syncthreads(); /* makes this a fiber kernel; the bug is below */
    s[t] += 1.0f;
    /* missing: __syncthreads(); */
    a->out[i] = t ? s[t - 1] : 0.0f;
}
EMU_TEST_ENTRY(shift_missing_sync, 1)

__global__ void shift_synced(const EmuTestArgs *a)
{
    __shared__ float s[TPB];
    int t = threadIdx.x, i = blockIdx.x * TPB + t;
    s[t] = a->in[i];
    __syncthreads();
    s[t] += 1.0f;
    __syncthreads();
    a->out[i] = t ? s[t - 1] : 0.0f;
}
EMU_TEST_ENTRY(shift_synced, 1)

/* ---- a block sum ---- */

__global__ void reduce_missing_sync(const EmuTestArgs *a)
{
    __shared__ float s[TPB];
    int t = threadIdx.x;
    s[t] = a->in[blockIdx.x * TPB + t];
    __syncthreads();
    for (int h = TPB / 2; h > 0; h >>= 1) {
        if (t < h) s[t] += s[t + h];
        /* missing: __syncthreads(); */
    }
    __syncthreads();
    if (t == 0) a->out[blockIdx.x] = s[0];
}
EMU_TEST_ENTRY(reduce_missing_sync, 1)

__global__ void reduce_synced(const EmuTestArgs *a)
{
    __shared__ float s[TPB];
    int t = threadIdx.x;
    s[t] = a->in[blockIdx.x * TPB + t];
    __syncthreads();
    for (int h = TPB / 2; h > 0; h >>= 1) {
        if (t < h) s[t] += s[t + h];
        __syncthreads();
    }
    if (t == 0) a->out[blockIdx.x] = s[0];
}
EMU_TEST_ENTRY(reduce_synced, 1)

/* ---- blocks that assume an order (one thread each, no barriers) ---- */

__global__ void chain_blocks(const EmuTestArgs *a)
{
    int b = blockIdx.x;
    a->out[b] = b ? a->out[b - 1] + 1.0f : 1.0f;
}
EMU_TEST_ENTRY(chain_blocks, 0)

/* the same work without the dependence: block order does not matter */
__global__ void chain_free(const EmuTestArgs *a)
{
    int b = blockIdx.x;
    a->out[b] = (float)b + 1.0f;
}
EMU_TEST_ENTRY(chain_free, 0)

/* ---- shared memory read before it is written ---- */

/* only the first half of the threads store; every thread loads its own slot
   (the array in a template, as the library's are: GCC places those apart) */
template <typename T, int NT> __device__ void uninit_half(const EmuTestArgs *a)
{
    __shared__ T s[NT];
    int t = threadIdx.x, i = blockIdx.x * NT + t;
    if (t < NT / 2) s[t] = a->in[i];
    __syncthreads();
    a->out[i] = s[t];
}

__global__ void uninit_static(const EmuTestArgs *a) { uninit_half<float, TPB>(a); }
EMU_TEST_ENTRY(uninit_static, 1)

__global__ void uninit_dynamic(const EmuTestArgs *a)
{
    EMU_DYN_SMEM(float, s);
    int t = threadIdx.x, i = blockIdx.x * TPB + t;
    if (t < TPB / 2) s[t] = a->in[i];
    __syncthreads();
    a->out[i] = s[t];
}
EMU_TEST_ENTRY(uninit_dynamic, 1)

/* every slot written before it is read: the poison never shows */
__global__ void init_static(const EmuTestArgs *a)
{
    __shared__ float s[TPB];
    EMU_DYN_SMEM(float, d);
    int t = threadIdx.x, i = blockIdx.x * TPB + t;
    s[t] = a->in[i];
    d[t] = 2.0f * a->in[i];
    __syncthreads();
    a->out[i] = s[TPB - 1 - t] + d[TPB - 1 - t];
}
EMU_TEST_ENTRY(init_static, 1)

/* ---- bf16 (cuda_bf16.h): one input per thread ---- */

/* bits[8i ..]: the conversions of in[i]; out[4i ..]: values back in float */
__global__ void bf16_convert(const EmuTestArgs *a)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a->n) return;
    float x = a->in[i];
    __nv_bfloat16 h = __float2bfloat16(x), r = __float2bfloat16_rn(x), z = __float2bfloat16_rz(x);
    __nv_bfloat16 c = x; /* the implicit conversion */
    __nv_bfloat16 d = __double2bfloat16((double)x);
    __nv_bfloat162 p = __floats2bfloat162_rn(x, -x);
    __nv_bfloat162 q = __float22bfloat162_rn(make_float2(-x, x));
    unsigned short *b = a->bits + 8 * i;
    b[0] = __bfloat16_as_ushort(h);
    b[1] = __bfloat16_as_ushort(r);
    b[2] = __bfloat16_as_ushort(z);
    b[3] = __bfloat16_as_ushort(c);
    b[4] = __bfloat16_as_ushort(d);
    b[5] = __bfloat16_as_ushort(__low2bfloat16(p));
    b[6] = __bfloat16_as_ushort(__high2bfloat16(p));
    b[7] = __bfloat16_as_ushort(__halves2bfloat162(__high2bfloat16(q), __low2bfloat16(q)).y);
    float *o = a->out + 4 * i;
    o[0] = __bfloat162float(h);
    o[1] = __low2float(p);
    o[2] = __high2float(p);
    o[3] = (float)c;
}
EMU_TEST_ENTRY(bf16_convert, 0)

/* in[3i ..] = a, b, c (bf16 values); bits[6i ..] = a + b, a - b, a * b, a / b,
   fma(a, b, c), and the pair sum's high half */
__global__ void bf16_arith(const EmuTestArgs *a)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a->n) return;
    __nv_bfloat16 x = __float2bfloat16(a->in[3 * i]), y = __float2bfloat16(a->in[3 * i + 1]),
                  z = __float2bfloat16(a->in[3 * i + 2]);
    __nv_bfloat162 px = __halves2bfloat162(z, x), py = __halves2bfloat162(z, y);
    unsigned short *b = a->bits + 6 * i;
    b[0] = __bfloat16_as_ushort(x + y);
    b[1] = __bfloat16_as_ushort(__hsub(x, y));
    b[2] = __bfloat16_as_ushort(x * y);
    b[3] = __bfloat16_as_ushort(__hdiv(x, y));
    b[4] = __bfloat16_as_ushort(__hfma(x, y, z));
    b[5] = __bfloat16_as_ushort(__high2bfloat16(__hadd2(px, py)));
}
EMU_TEST_ENTRY(bf16_arith, 0)
