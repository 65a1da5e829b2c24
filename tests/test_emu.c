/* test_emu.c: the CPU emulation of CUDA kernels catches what a GPU would.
 *
 *   - thread and block order (KANC_EMU_ORDER): a missing __syncthreads and
 *     blocks that assume an order give wrong results in some order, the
 *     correct kernels pass in every order; shuffles are reproducible;
 *   - static and dynamic shared memory poisoned (NaN) before every block, in
 *     each loaded module;
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

#include "emu_launch.h"
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
