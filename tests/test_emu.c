/* test_emu.c: the CPU emulation of CUDA kernels catches what a GPU would.
 *
 *   - thread and block order (KANC_EMU_ORDER): a missing __syncthreads and
 *     blocks that assume an order give wrong results in some order, the
 *     correct kernels pass in every order; shuffles are reproducible;
 *   - static and dynamic shared memory poisoned (NaN) before every block, in
 *     each loaded module;
 *   - bf16: the host helpers (runtime/exec/bf16.h) and the emulated
 *     cuda_bf16.h round as the GPU does (nearest even, ties, subnormals, NaN,
 *     infinity, the largest finite value), checked against a reference that
 *     compares distances; the kernel source also compiles with NVRTC;
 *
 * The kernels are tests/cuda/emu_checks.cu, built with the emulator
 * (runtime/device/emu) as a generated source is.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "emu_launch.h"
#include "nvrtc.h"
#include "util.h"
#include "test_util.h"

TestSuite(emu, .timeout = 300);

/* the kernels' argument block (tests/cuda/emu_checks.cu) */
typedef struct {
    const float *in;
    float *out;
    unsigned short *bits;
    int n;
} EmuTestArgs;

typedef void (*TestEntry)(KancDim3 grid, KancDim3 block, unsigned smem, const EmuTestArgs *args);

enum { TPB = 256 };

static EmuModule *build_checks(void)
{
    char *path = test_repo_path("tests/cuda/emu_checks.cu"), err[1024];
    char *src = read_file(path, NULL);
    cr_assert(src, "cannot read %s", path);
    EmuModule *m = emu_module_build(src, err, sizeof err);
    cr_assert(m, "%s", err);
    free(src);
    free(path);
    return m;
}

static void launch(EmuModule *m, const char *kernel, unsigned blocks, unsigned threads, unsigned smem,
                   const EmuTestArgs *a)
{
    char sym[128];
    snprintf(sym, sizeof sym, "%s__test", kernel);
    void *p = emu_module_symbol(m, sym);
    cr_assert(p, "no entry %s in the module", sym);
    TestEntry fn;
    memcpy(&fn, &p, sizeof fn);
    fn((KancDim3){blocks, 1, 1}, (KancDim3){threads, 1, 1}, smem, a);
}

static void set_order(const char *order)
{
    if (order)
        setenv("KANC_EMU_ORDER", order, 1);
    else
        unsetenv("KANC_EMU_ORDER");
}

/* ------------------------------------------------------------ thread and block order */

enum { NB = 8, N = NB * TPB };

/* how many outputs of `kernel` differ from want (out poisoned with NaN first) */
static int wrong_outputs(EmuModule *m, const char *kernel, unsigned blocks, unsigned threads, const float *in,
                         const float *want, int nout, unsigned smem)
{
    float *out = xmalloc(sizeof(float) * (size_t)nout);
    for (int i = 0; i < nout; i++) out[i] = NAN;
    EmuTestArgs a = {.in = in, .out = out, .n = nout};
    launch(m, kernel, blocks, threads, smem, &a);
    int bad = 0;
    for (int i = 0; i < nout; i++) bad += !(out[i] == want[i]);
    free(out);
    return bad;
}

Test(emu, thread_order_exposes_a_missing_barrier)
{
    EmuModule *m = build_checks();
    float *in = xmalloc(sizeof(float) * N), *shift = xmalloc(sizeof(float) * N), sums[NB];
    for (int i = 0; i < N; i++) in[i] = (float)(i % 97); /* small integers: every sum is exact */
    for (int b = 0; b < NB; b++) {
        sums[b] = 0;
        for (int t = 0; t < TPB; t++) sums[b] += in[b * TPB + t];
    }
    for (int i = 0; i < N; i++) shift[i] = i % TPB ? in[i - 1] + 1.0f : 0.0f;
    /* order: NULL is the default (a seeded shuffle) */
    const char *orders[] = {"forward", "reverse", "shuffle", "shuffle:12345", NULL};
    for (int o = 0; o < 5; o++) {
        const char *name = orders[o] ? orders[o] : "(default)";
        set_order(orders[o]);
        int shift_bad = wrong_outputs(m, "shift_missing_sync", NB, TPB, in, shift, N, 0);
        int reduce_bad = wrong_outputs(m, "reduce_missing_sync", NB, TPB, in, sums, NB, 0);
        /* with the barriers: right in every order */
        cr_expect(wrong_outputs(m, "shift_synced", NB, TPB, in, shift, N, 0) == 0, "%s: shift_synced", name);
        cr_expect(wrong_outputs(m, "reduce_synced", NB, TPB, in, sums, NB, 0) == 0, "%s: reduce_synced", name);
        if (o == 0) { /* in index order each bug happens to pass or fail: what a fixed order misses */
            cr_expect(shift_bad == 0, "forward: the shift reads what its neighbour stored already");
            cr_expect(reduce_bad == NB, "forward: %d of %d block sums wrong", reduce_bad, NB);
        } else if (o == 1) {
            cr_expect(shift_bad > N / 2, "reverse: %d of %d shifted values wrong", shift_bad, N);
            cr_expect(reduce_bad == 0, "reverse: the tree sum happens to be right");
        } else { /* a shuffle catches both */
            cr_expect(shift_bad > N / 4, "%s: only %d of %d shifted values wrong", name, shift_bad, N);
            cr_expect(reduce_bad == NB, "%s: only %d of %d block sums wrong", name, reduce_bad, NB);
        }
    }
    free(in);
    free(shift);
    emu_module_free(m);
}

Test(emu, block_order_exposes_blocks_that_assume_one)
{
    EmuModule *m = build_checks();
    enum { NBLK = 300 };
    float want[NBLK];
    for (int b = 0; b < NBLK; b++) want[b] = (float)b + 1.0f;
    const char *orders[] = {"forward", "reverse", "shuffle:3", NULL};
    for (int o = 0; o < 4; o++) {
        const char *name = orders[o] ? orders[o] : "(default)";
        set_order(orders[o]);
        int bad = wrong_outputs(m, "chain_blocks", NBLK, 1, NULL, want, NBLK, 0);
        if (o == 0)
            cr_expect(bad == 0, "forward: block b runs after block b - 1");
        else
            cr_expect(bad > NBLK / 4, "%s: only %d of %d blocks wrong", name, bad, NBLK);
        cr_expect(wrong_outputs(m, "chain_free", NBLK, 1, NULL, want, NBLK, 0) == 0, "%s: chain_free", name);
    }
    emu_module_free(m);
}

/* the same seed gives the same run (from a fresh module), another seed another one */
Test(emu, shuffles_are_reproducible)
{
    float *in = xmalloc(sizeof(float) * N), *out[3];
    for (int i = 0; i < N; i++) in[i] = (float)i;
    const char *seeds[] = {"shuffle:5", "shuffle:5", "shuffle:6"};
    for (int k = 0; k < 3; k++) {
        set_order(seeds[k]);
        EmuModule *m = build_checks();
        out[k] = xmalloc(sizeof(float) * N);
        EmuTestArgs a = {.in = in, .out = out[k], .n = N};
        launch(m, "shift_missing_sync", NB, TPB, 0, &a);
        emu_module_free(m);
    }
    cr_expect(memcmp(out[0], out[1], sizeof(float) * N) == 0, "the same seed gave another order");
    cr_expect(memcmp(out[0], out[2], sizeof(float) * N) != 0, "another seed gave the same order");
    for (int k = 0; k < 3; k++) free(out[k]);
    free(in);
}

Test(emu, a_bad_order_is_refused, .signal = SIGABRT)
{
    EmuModule *m = build_checks();
    set_order("sideways");
    float want[1] = {1};
    wrong_outputs(m, "chain_free", 1, 1, NULL, want, 1, 0);
}

/* ------------------------------------------------------------ shared memory poisoned per block */

/* the first half of each block's threads store, the second half read slots
   nobody wrote: NaN in every block (not zero from the static's initial value,
   not the previous block's values) */
static void expect_poison(EmuModule *m, const char *kernel, unsigned smem, const char *what)
{
    float *in = xmalloc(sizeof(float) * N), *out = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) in[i] = (float)i, out[i] = 0;
    EmuTestArgs a = {.in = in, .out = out, .n = N};
    launch(m, kernel, NB, TPB, smem, &a);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += i % TPB < TPB / 2 ? out[i] != in[i] : !isnan(out[i]);
    cr_expect(bad == 0, "%s: %d of %d values neither the stored value nor the poison", what, bad, N);
    free(in);
    free(out);
}

Test(emu, shared_memory_read_before_written_is_poison)
{
    EmuModule *m = build_checks();
    for (int rep = 0; rep < 2; rep++) { /* a second launch sees no leftovers either */
        expect_poison(m, "uninit_static", 0, "static __shared__");
        expect_poison(m, "uninit_dynamic", TPB * sizeof(float), "dynamic shared memory");
    }
    /* a kernel that writes before it reads never sees the poison */
    float *in = xmalloc(sizeof(float) * N), *want = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) in[i] = (float)i;
    for (int i = 0; i < N; i++) want[i] = 3.0f * in[i / TPB * TPB + TPB - 1 - i % TPB];
    cr_expect(wrong_outputs(m, "init_static", NB, TPB, in, want, N, TPB * sizeof(float)) == 0);
    free(in);
    free(want);
    emu_module_free(m);
}

/* each dlopen'd module poisons its own section (the bounds are hidden symbols) */
Test(emu, two_modules_poison_their_own_shared_memory)
{
    EmuModule *m1 = build_checks(), *m2 = build_checks();
    expect_poison(m2, "uninit_static", 0, "second module");
    expect_poison(m1, "uninit_static", 0, "first module");
    expect_poison(m2, "uninit_static", 0, "second module again");
    emu_module_free(m2);
    expect_poison(m1, "uninit_static", 0, "first module, the second unloaded");
    emu_module_free(m1);
}

/* exactly the module's __shared__ arrays are poisoned: six kernels with one
   float[256] each (tests/cuda/emu_checks.cu), nothing of the prelude's state */
Test(emu, the_poisoned_variables_are_the_shared_ones)
{
    EmuModule *m = build_checks();
    void *p = emu_module_symbol(m, "kanc_emu_shared_bytes");
    cr_assert(p);
    size_t (*bytes)(void);
    memcpy(&bytes, &p, sizeof bytes);
    cr_expect(bytes() == 6 * TPB * sizeof(float), "%zu bytes of static shared memory", bytes());
    emu_module_free(m);
}

/* ------------------------------------------------------------ bf16 */

static float bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* bf16 magnitude m (0 .. 0x7f80) as a double; 0x7f80 counts as 2^128, the
   value an unbounded exponent would give, so that overflow is a distance */
static double bf16_mag(uint32_t m) { return m >= 0x7f80 ? 0x1p128 : (double)bits_f32(m << 16); }

/* The nearest bf16 to x, ties to the even one, found by comparing distances in
   double (not by the bit manipulations under test). NaN -> 0x7fff. */
static uint16_t ref_bf16(double x)
{
    if (isnan(x)) return 0x7fff;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (a == INFINITY) return sign | 0x7f80;
    uint32_t lo = 0; /* the largest magnitude <= a: binary search over 0 .. 0x7f80 */
    for (uint32_t step = 0x4000; step; step >>= 1)
        if (lo + step <= 0x7f80 && bf16_mag(lo + step) <= a) lo += step;
    if (lo == 0x7f80) return sign | 0x7f80;
    double dlo = a - bf16_mag(lo), dhi = bf16_mag(lo + 1) - a;
    uint32_t r = dlo < dhi ? lo : dhi < dlo ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | r);
}

/* the floats the rounding tests use: every upper half with lower halves at and
   around the tie, random floats, and the named cases */
static float *bf16_inputs(int *count)
{
    static const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000};
    int n = 65536 * 8 + 4096 + 16, k = 0;
    float *v = xmalloc(sizeof(float) * (size_t)n);
    for (uint32_t hi = 0; hi < 65536; hi++)
        for (int l = 0; l < 8; l++) v[k++] = bits_f32(hi << 16 | lows[l]);
    uint64_t s = 12345;
    for (int i = 0; i < 4096; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[k++] = bits_f32((uint32_t)(s >> 32));
    }
    const float named[] = {0.0f, -0.0f, 1.0f, 0x1.01p0f /* tie, even below */, 0x1.03p0f /* tie, even above */,
                           0x1.fffffep127f /* FLT_MAX: to inf */, 0x1.fep127f /* bf16 max */,
                           0x1.fdp127f /* below the max's tie */, 0x1.ffp127f /* the max's tie: even is inf */,
                           0x1p-133f /* subnormal */, 0x1p-149f, 0x1.8p-133f, INFINITY, -INFINITY, NAN, -NAN};
    for (int i = 0; i < 16; i++) v[k++] = named[i];
    *count = k;
    return v;
}

Test(emu, bf16_host_rounding_matches_a_reference)
{
    int n;
    float *v = bf16_inputs(&n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint16_t got = kanc_f32_to_bf16(v[i]), want = ref_bf16(v[i]);
        if (got != want && bad++ < 5)
            cr_expect(0, "bf16(%a) = 0x%04x, want 0x%04x", v[i], got, want);
    }
    cr_expect(bad == 0, "%d of %d conversions wrong", bad, n);
    /* the named cases, by value */
    cr_expect(kanc_f32_to_bf16(0x1.01p0f) == 0x3f80 && kanc_f32_to_bf16(0x1.03p0f) == 0x3f82);
    cr_expect(kanc_f32_to_bf16(0x1.fffffep127f) == 0x7f80 && kanc_f32_to_bf16(-0x1.fffffep127f) == 0xff80);
    cr_expect(kanc_f32_to_bf16(0x1.fep127f) == 0x7f7f && kanc_f32_to_bf16(0x1.ffp127f) == 0x7f80);
    /* subnormals: 2^-133 is the smallest; 1.5 of it ties to even 2, half of it to 0 */
    cr_expect(kanc_f32_to_bf16(0x1.8p-133f) == 0x0002 && kanc_f32_to_bf16(0x1.4p-133f) == 0x0001);
    cr_expect(kanc_f32_to_bf16(0x1p-134f) == 0x0000 && kanc_f32_to_bf16(0x1.0002p-134f) == 0x0001);
    cr_expect(kanc_f32_to_bf16(-0.0f) == 0x8000 && kanc_f32_to_bf16(NAN) == 0x7fff);
    cr_expect(isnan(kanc_bf16_to_f32(kanc_f32_to_bf16(-NAN))) && kanc_bf16_round(3.14159265f) == 3.140625f);
    /* bulk conversion and back: every bf16 value is a float exactly */
    static uint16_t all[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    kanc_bf16_to_f32_n(all, f, 65536);
    kanc_f32_to_bf16_n(f, back, 65536);
    int moved = 0;
    for (int i = 0; i < 65536; i++) moved += (i & 0x7fff) <= 0x7f80 ? back[i] != i : back[i] != 0x7fff;
    cr_expect(moved == 0, "%d bf16 values changed by a round trip", moved);
    free(v);
}

Test(emu, bf16_device_api_rounds_as_the_gpu)
{
    int n;
    float *v = bf16_inputs(&n);
    uint16_t *bits = xmalloc(sizeof(uint16_t) * 8 * (size_t)n);
    float *out = xmalloc(sizeof(float) * 4 * (size_t)n);
    EmuModule *m = build_checks();
    EmuTestArgs a = {.in = v, .out = out, .bits = bits, .n = n};
    launch(m, "bf16_convert", (unsigned)(n + 255) / 256, 256, 0, &a);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint16_t rn = ref_bf16(v[i]), neg = ref_bf16(-(double)v[i]);
        uint32_t fx;
        memcpy(&fx, &v[i], 4);
        uint16_t rz = isnan(v[i]) ? 0x7fff : (uint16_t)(fx >> 16);
        const uint16_t *b = bits + 8 * (size_t)i;
        int ok = b[0] == rn && b[1] == rn && b[2] == rz && b[3] == rn && b[4] == rn && b[5] == rn && b[6] == neg &&
                 b[7] == neg;
        const float *o = out + 4 * (size_t)i;
        float fr = kanc_bf16_to_f32(rn), fn = kanc_bf16_to_f32(neg);
        ok = ok && (isnan(fr) ? isnan(o[0]) && isnan(o[1]) && isnan(o[3]) : o[0] == fr && o[1] == fr && o[3] == fr);
        ok = ok && (isnan(fn) ? isnan(o[2]) : o[2] == fn);
        if (!ok && bad++ < 5)
            cr_expect(0, "%a: %04x %04x %04x %04x %04x %04x %04x %04x, want rn %04x rz %04x neg %04x", v[i], b[0],
                      b[1], b[2], b[3], b[4], b[5], b[6], b[7], rn, rz, neg);
    }
    cr_expect(bad == 0, "%d of %d inputs converted wrongly", bad, n);

    /* arithmetic on bf16 values: one rounding of the exact result */
    enum { NA = 20000 };
    float *in = xmalloc(sizeof(float) * 3 * NA);
    uint64_t s = 99;
    for (int i = 0; i < 3 * NA; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) * 0x1p-53; /* [0, 1) */
        in[i] = kanc_bf16_round((float)((u - 0.5) * ldexp(1.0, (int)(s % 17) - 8)));
    }
    uint16_t *ab = xmalloc(sizeof(uint16_t) * 6 * NA);
    EmuTestArgs b = {.in = in, .bits = ab, .n = NA};
    launch(m, "bf16_arith", NA / 256 + 1, 256, 0, &b);
    bad = 0;
    for (int i = 0; i < NA; i++) {
        double x = in[3 * i], y = in[3 * i + 1], z = in[3 * i + 2];
        /* x + y, x * y and x * y + z are exact in double (operands between 2^-9
           and 2^8); x / y is rounded once, never onto a bf16 midpoint */
        uint16_t want[6] = {ref_bf16(x + y), ref_bf16(x - y), ref_bf16(x * y), ref_bf16(x / y),
                            ref_bf16(x * y + z), ref_bf16(x + y)};
        for (int k = 0; k < 6; k++)
            if (ab[6 * i + k] != want[k] && !(isnan(kanc_bf16_to_f32(want[k])) && ab[6 * i + k] == 0x7fff) &&
                bad++ < 5)
                cr_expect(0, "op %d on %a %a %a: 0x%04x, want 0x%04x", k, x, y, z, ab[6 * i + k], want[k]);
    }
    cr_expect(bad == 0, "%d bf16 results wrong", bad);
    emu_module_free(m);
    free(in), free(ab), free(v), free(bits), free(out);
}

/* the same source compiles with NVRTC against the real cuda_bf16.h */
Test(emu, the_check_kernels_compile_with_nvrtc)
{
    int ma, mi;
    char err[1024];
    if (nvrtc_version(&ma, &mi, err, sizeof err)) cr_skip_test("NVRTC is not installed: %s", err);
    setenv("KANC_CACHE", "0", 1);
    char *path = test_repo_path("tests/cuda/emu_checks.cu");
    char *src = read_file(path, NULL);
    cr_assert(src);
    int sms[] = {80, 90};
    for (int k = 0; k < 2; k++) {
        NvrtcOutput o;
        memset(&o, 0, sizeof o);
        int rc = nvrtc_compile(src, "emu_checks.cu", sms[k], &o, stderr, err, sizeof err);
        cr_expect(rc == 0, "sm_%d: %s", sms[k], err);
        if (rc == 0) nvrtc_output_free(&o);
    }
    free(src);
    free(path);
}
