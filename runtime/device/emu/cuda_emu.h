/* cuda_emu.h: the emulation prelude: CUDA C++ as host C++, one block at a time.
 *
 * The source that compiler/codegen_cuda.c generates compiles unchanged with
 * the host C++ compiler when this header comes first:
 *
 *     c++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -x c++ \
 *         -include runtime/device/emu/cuda_emu.h kernels.cu -o kernels.so
 *
 * (runtime/device/emu/emu_launch.c does exactly that, with -isystem
 * runtime/device/emu/include, where the emulated cuda_bf16.h is). It defines KANC_EMU, the
 * CUDA keywords (__global__, __device__, __shared__ ...), dim3 and uint3,
 * threadIdx / blockIdx / blockDim / gridDim, __syncthreads, __syncwarp and the
 * warp shuffles, atomicAdd, the CUDA-only math functions, the fast warp
 * reductions behind the generated kanc_warp_* helpers, dynamic shared memory,
 * and KANC_EMU_HOST(NAME, SYNC), which the generated source expands after
 * each kernel into its host entry
 *
 *     extern "C" void NAME__host(dim3 grid, dim3 block, unsigned smem, void **params)
 *
 * params is cuLaunchKernel's kernelParams: params[i] points to the value of
 * the kernel's parameter i (params[0]: the address of KancArgs, params[1]:
 * the KancLaunchArgs); the entry copies them at the launch, as the driver does.
 *
 * How a launch runs: the blocks run one after another, so `__shared__`
 * (a function-local static) is the block's shared memory. Within a block,
 * when the kernel synchronises (SYNC = 1), every thread is a fiber (ucontext,
 * a 64 KiB stack, reused across blocks and launches): a thread runs until it
 * reaches a barrier (__syncthreads, or a warp primitive for its warp), then
 * the next runnable thread runs; a barrier releases its threads when every
 * thread it waits for (all live threads of the block, or of the warp) has
 * arrived. Threads that have returned no longer count (as on the GPU). A
 * state where no thread can run is reported (barrier divergence) and aborts.
 * Kernels without barriers (SYNC = 0) run their threads as plain calls; a
 * barrier reached in such a kernel aborts with the kernel's name.
 *
 * The order is not fixed, so that code which only works in one order (a
 * missing __syncthreads, blocks that assume an order) gives wrong results
 * here as it would on a GPU: $KANC_EMU_ORDER is `forward` (threads and
 * blocks by increasing index), `reverse`, or `shuffle[:SEED]` (the default,
 * seed 1): a fresh random permutation of the block order per launch, of the
 * threads per block (SYNC = 0) and of the runnable threads at every round of
 * the scheduler (SYNC = 1, i.e. between barriers). The permutations come from
 * the seed and a per-module launch counter: a run is reproducible.
 *
 * Warp primitives compute what the GPU computes: a shuffle reads the value the
 * source lane deposited; kanc_emu_warp_sum/max apply the same xor butterfly as
 * the generated CUDA helpers, so results are bit-identical in order of
 * operations (the math library may still differ from the GPU's in the last
 * ulp). Not thread-safe: one launch at a time per loaded module.
 */
#ifndef KANC_CUDA_EMU_H
#define KANC_CUDA_EMU_H

#define KANC_EMU 1

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* ---- keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
/* Blocks run one at a time: one copy is the block's. The emulation build
   finds every such variable in the module's symbol table and hands the list
   to kanc_emu_set_shared, so that each is poisoned before every block. */
#define __shared__ static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
    unsigned x, y, z;
};

/* Trivially copyable: passed by value exactly like the C struct KancDim3. */
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* the vector types that CUDA has built in (the bf16 pairs convert to float2) */
struct float2 {
    float x, y;
};
struct __align__(16) float4 {
    float x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

/* ---- launch state ---- */
enum { KANC_EMU_MAX_THREADS = 1024, KANC_EMU_STACK = 64 * 1024 };
enum { KANC_EMU_RUN, KANC_EMU_AT_BAR, KANC_EMU_AT_WARP, KANC_EMU_DONE };

struct KancEmuFiber {
    ucontext_t ctx;
    uint3 tid;
    int state;
};

enum { KANC_EMU_FORWARD, KANC_EMU_REVERSE, KANC_EMU_SHUFFLE };

static struct {
    dim3 grid, block;
    uint3 bid;
    int nthreads, cur, ndone, fibers;
    int bar_count;                      /* threads waiting at __syncthreads */
    int warp_count[32], warp_done[32];  /* per warp: waiting at a warp barrier, returned */
    const char *kernel;
    void (*fn)(const void *);
    const void *arg;
    ucontext_t sched;
    struct KancEmuFiber *f;             /* KANC_EMU_MAX_THREADS, allocated on first use */
    char *stacks;
    unsigned char slot[KANC_EMU_MAX_THREADS][8]; /* values deposited by warp primitives */
    unsigned char *dyn;                 /* dynamic shared memory */
    size_t dyn_cap;
    unsigned smem;                      /* this launch's dynamic shared bytes */
    int order;                          /* KANC_EMU_FORWARD ... (KANC_EMU_ORDER) */
    uint64_t rng;                       /* the shuffle's state */
    uint64_t launches;                  /* launches of this module so far */
    unsigned perm[KANC_EMU_MAX_THREADS]; /* this round's thread order */
    unsigned *bperm;                    /* this launch's block order (shuffle) */
    size_t bperm_cap;
} kanc_emu;

/* the running thread's index: a volatile pointer, so it is re-read after
   every switch (a thread's locals live on its own fiber stack) */
static uint3 kanc_emu_tid0;
static uint3 *volatile kanc_emu_tidp = &kanc_emu_tid0;

#define threadIdx (*kanc_emu_tidp)
#define blockIdx (kanc_emu.bid)
#define blockDim (kanc_emu.block)
#define gridDim (kanc_emu.grid)
#define warpSize 32

static void kanc_emu_fail(const char *what)
{
    fprintf(stderr,
            "kanc emu: kernel %s, block (%u, %u, %u), thread %d: %s\n",
            kanc_emu.kernel ? kanc_emu.kernel : "?", kanc_emu.bid.x, kanc_emu.bid.y,
            kanc_emu.bid.z, kanc_emu.cur, what);
    abort();
}

static int kanc_emu_warp_size(int w)
{
    int n = kanc_emu.nthreads - 32 * w;
    return n < 32 ? n : 32;
}

/* releases the block barrier or warp w's barrier when everyone it waits for is there */
static void kanc_emu_check(int w)
{
    struct KancEmuFiber *f = kanc_emu.f;
    if (kanc_emu.bar_count > 0 && kanc_emu.bar_count == kanc_emu.nthreads - kanc_emu.ndone) {
        for (int t = 0; t < kanc_emu.nthreads; t++)
            if (f[t].state == KANC_EMU_AT_BAR) f[t].state = KANC_EMU_RUN;
        kanc_emu.bar_count = 0;
    }
    if (kanc_emu.warp_count[w] > 0 &&
        kanc_emu.warp_count[w] == kanc_emu_warp_size(w) - kanc_emu.warp_done[w]) {
        for (int t = 32 * w; t < 32 * w + kanc_emu_warp_size(w); t++)
            if (f[t].state == KANC_EMU_AT_WARP) f[t].state = KANC_EMU_RUN;
        kanc_emu.warp_count[w] = 0;
    }
}

/* the current thread waits at a barrier (KANC_EMU_AT_BAR or KANC_EMU_AT_WARP) */
static __attribute__((noinline)) void kanc_emu_wait(int state)
{
    __asm__ __volatile__("" ::: "memory");
    if (!kanc_emu.fibers)
        kanc_emu_fail("a barrier or warp primitive in a kernel generated as barrier-free "
                      "(KANC_EMU_HOST(..., 0)); the generator's sync flag is wrong");
    int me = kanc_emu.cur, w = me / 32;
    struct KancEmuFiber *f = kanc_emu.f;
    f[me].state = state;
    if (state == KANC_EMU_AT_BAR)
        kanc_emu.bar_count++;
    else
        kanc_emu.warp_count[w]++;
    kanc_emu_check(w);
    /* yield even when this thread released the barrier: the threads it
       released run in the scheduler's order, not this one first */
    swapcontext(&f[me].ctx, &kanc_emu.sched);
    __asm__ __volatile__("" ::: "memory");
}

static inline __attribute__((always_inline)) void __syncthreads(void)
{
    __asm__ __volatile__("" ::: "memory");
    kanc_emu_wait(KANC_EMU_AT_BAR);
    __asm__ __volatile__("" ::: "memory");
}

static inline __attribute__((always_inline)) void kanc_emu_warp_sync(void)
{
    __asm__ __volatile__("" ::: "memory");
    kanc_emu_wait(KANC_EMU_AT_WARP);
    __asm__ __volatile__("" ::: "memory");
}

static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)mask;
    kanc_emu_warp_sync();
}

static inline void __threadfence(void) { __asm__ __volatile__("" ::: "memory"); }
static inline void __threadfence_block(void) { __asm__ __volatile__("" ::: "memory"); }

/* ---- warp shuffles: deposit, wait for the warp, read the source lane, wait ---- */
template <typename T> static inline T kanc_emu_shfl_from(T v, int src_lane)
{
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    int me = kanc_emu.cur, base = me & ~31;
    memcpy(kanc_emu.slot[me], &v, sizeof v);
    kanc_emu_warp_sync();
    T r = v;
    if (src_lane >= 0 && src_lane < 32 && base + src_lane < kanc_emu.nthreads)
        memcpy(&r, kanc_emu.slot[base + src_lane], sizeof r);
    kanc_emu_warp_sync(); /* nobody deposits again before everyone has read */
    return r;
}

template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    (void)mask;
    int lane = kanc_emu.cur & 31;
    return kanc_emu_shfl_from(v, (lane & ~(width - 1)) + (src & (width - 1)));
}

template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32)
{
    (void)mask;
    int lane = kanc_emu.cur & 31, src = lane ^ m;
    return kanc_emu_shfl_from(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}

template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32)
{
    (void)mask;
    int lane = kanc_emu.cur & 31, src = lane + (int)d;
    return kanc_emu_shfl_from(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}

template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32)
{
    (void)mask;
    int lane = kanc_emu.cur & 31, src = lane - (int)d;
    return kanc_emu_shfl_from(v, src >= (lane & ~(width - 1)) ? src : lane);
}

/* The generated kanc_warp_sum / kanc_warp_max: the xor butterfly of the CUDA
   helpers (v = v op shfl_xor(v, m) for m = 16 .. 1) over the deposited
   values, with two warp barriers instead of ten. Needs a full warp. */
template <typename T, typename Op> static inline T kanc_emu_warp_reduce(T v, Op op)
{
    int me = kanc_emu.cur, base = me & ~31, lane = me & 31;
    if (kanc_emu_warp_size(me / 32) != 32) kanc_emu_fail("warp reduction in a partial warp");
    memcpy(kanc_emu.slot[me], &v, sizeof v);
    kanc_emu_warp_sync();
    T x[32], y[32];
    for (int l = 0; l < 32; l++) memcpy(&x[l], kanc_emu.slot[base + l], sizeof(T));
    for (int m = 16; m > 0; m >>= 1) {
        for (int l = 0; l < 32; l++) y[l] = op(x[l], x[l ^ m]);
        memcpy(x, y, sizeof x);
    }
    kanc_emu_warp_sync();
    return x[lane];
}

static inline float kanc_emu_warp_sum(float v)
{
    return kanc_emu_warp_reduce(v, [](float a, float b) { return a + b; });
}
static inline double kanc_emu_warp_sum(double v)
{
    return kanc_emu_warp_reduce(v, [](double a, double b) { return a + b; });
}
static inline float kanc_emu_warp_max(float v)
{
    return kanc_emu_warp_reduce(v, [](float a, float b) { return fmaxf(a, b); });
}

/* ---- atomics: threads never run at the same time, so plain read-modify-write ---- */
template <typename T> static inline T atomicAdd(T *a, T v)
{
    T old = *a;
    *a = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T *a, T v)
{
    T old = *a;
    if (v > old) *a = v;
    return old;
}
template <typename T> static inline T atomicExch(T *a, T v)
{
    T old = *a;
    *a = v;
    return old;
}

/* ---- math that CUDA has and the C library lacks ---- */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* glibc declares these names itself: macros, not functions */
#define __expf expf
#define __logf logf
#define __sinf sinf
#define __cosf cosf
#define __tanhf tanhf
#define __powf powf
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float __int_as_float(int x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}
static inline int __float_as_int(float f)
{
    int x;
    memcpy(&x, &f, 4);
    return x;
}
static inline unsigned __float_as_uint(float f)
{
    unsigned x;
    memcpy(&x, &f, 4);
    return x;
}
static inline float __uint_as_float(unsigned x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* dynamic shared memory of the current launch (smem bytes, poisoned per block) */
static inline unsigned char *kanc_emu_dyn_smem(void) { return kanc_emu.dyn; }

/* The module's static __shared__ variables: address and size of each, set
   once after loading (emu_launch.c reads them from the ELF symbol table:
   every function-local static in writable memory, which in CUDA code is what
   __shared__ declares; the prelude itself has none). The section attribute
   would be simpler, but GCC ignores it on the statics of template functions. */
struct KancEmuRange {
    void *addr;
    size_t size;
};
static struct KancEmuRange *kanc_emu_shared_vars;
static int kanc_emu_n_shared;
static size_t kanc_emu_shared_total;

extern "C" __attribute__((visibility("default"))) int kanc_emu_set_shared(const struct KancEmuRange *r, int n)
{
    free(kanc_emu_shared_vars);
    kanc_emu_shared_vars = (struct KancEmuRange *)malloc(sizeof *r * (size_t)(n > 0 ? n : 1));
    if (!kanc_emu_shared_vars) return -1;
    if (n > 0) memcpy(kanc_emu_shared_vars, r, sizeof *r * (size_t)n);
    kanc_emu_n_shared = n;
    kanc_emu_shared_total = 0;
    for (int i = 0; i < n; i++) kanc_emu_shared_total += r[i].size;
    return 0;
}

/* bytes of static shared memory that are poisoned per block (tests) */
extern "C" __attribute__((visibility("default"))) size_t kanc_emu_shared_bytes(void) { return kanc_emu_shared_total; }

/* Before each block: 0xff bytes (NaN as float, -1 as an integer) in every
   static and dynamic shared variable, so a read before a write shows. */
static inline void kanc_emu_poison(void)
{
    for (int i = 0; i < kanc_emu_n_shared; i++)
        memset(kanc_emu_shared_vars[i].addr, 0xff, kanc_emu_shared_vars[i].size);
    if (kanc_emu.smem) memset(kanc_emu.dyn, 0xff, kanc_emu.smem);
}

/* ---- the order threads and blocks run in ---- */

static uint64_t kanc_emu_next(void) /* splitmix64 */
{
    uint64_t z = (kanc_emu.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* p[0..n) := 0..n-1 in the launch's order */
static void kanc_emu_permute(unsigned *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned)(kanc_emu.order == KANC_EMU_REVERSE ? n - 1 - i : i);
    if (kanc_emu.order != KANC_EMU_SHUFFLE) return;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates; the multiply maps 64 bits onto [0, i) */
        size_t j = (size_t)(((unsigned __int128)kanc_emu_next() * i) >> 64);
        unsigned t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* reads $KANC_EMU_ORDER (every launch: tests change it) and seeds this launch */
static void kanc_emu_read_order(void)
{
    const char *e = getenv("KANC_EMU_ORDER");
    uint64_t seed = 1;
    if (!e || !*e || !strncmp(e, "shuffle", 7)) {
        kanc_emu.order = KANC_EMU_SHUFFLE;
        const char *s = e && *e ? e + 7 : "";
        if (*s) {
            char *end;
            seed = strtoull(s + 1, &end, 0);
            if (*s != ':' || end == s + 1 || *end) {
                fprintf(stderr, "kanc emu: KANC_EMU_ORDER=%s: expected forward, reverse, shuffle or shuffle:SEED\n", e);
                abort();
            }
        }
    } else if (!strcmp(e, "forward")) {
        kanc_emu.order = KANC_EMU_FORWARD;
    } else if (!strcmp(e, "reverse")) {
        kanc_emu.order = KANC_EMU_REVERSE;
    } else {
        fprintf(stderr, "kanc emu: KANC_EMU_ORDER=%s: expected forward, reverse, shuffle or shuffle:SEED\n", e);
        abort();
    }
    kanc_emu.rng = seed * 0x2545f4914f6cdd1dull + kanc_emu.launches++ * 0x9e3779b97f4a7c15ull;
}

/* ---- launching ---- */

static void kanc_emu_entry(void)
{
    kanc_emu.fn(kanc_emu.arg);
    int me = kanc_emu.cur;
    kanc_emu.f[me].state = KANC_EMU_DONE;
    kanc_emu.ndone++;
    kanc_emu.warp_done[me / 32]++;
    kanc_emu_check(me / 32);
    /* returning resumes the scheduler (uc_link) */
}

static void kanc_emu_alloc(void)
{
    if (kanc_emu.f) return;
    kanc_emu.f = (struct KancEmuFiber *)calloc(KANC_EMU_MAX_THREADS, sizeof *kanc_emu.f);
    kanc_emu.stacks = (char *)malloc((size_t)KANC_EMU_MAX_THREADS * KANC_EMU_STACK);
    if (!kanc_emu.f || !kanc_emu.stacks) {
        fprintf(stderr, "kanc emu: out of memory for fiber stacks\n");
        abort();
    }
    for (int t = 0; t < KANC_EMU_MAX_THREADS; t++) getcontext(&kanc_emu.f[t].ctx);
}

/* The fiber stacks and shared memory go when the module is unloaded (dlclose):
   a process that builds many modules must not keep them all. */
__attribute__((destructor)) static void kanc_emu_release(void)
{
    free(kanc_emu.f);
    free(kanc_emu.stacks);
    free(kanc_emu.dyn);
    free(kanc_emu.bperm);
    free(kanc_emu_shared_vars);
    kanc_emu_shared_vars = NULL;
    kanc_emu_n_shared = 0;
    kanc_emu.bperm = NULL;
    kanc_emu.bperm_cap = 0;
    kanc_emu.f = NULL;
    kanc_emu.stacks = NULL;
    kanc_emu.dyn = NULL;
    kanc_emu.dyn_cap = 0;
}

static void kanc_emu_block(void)
{
    struct KancEmuFiber *f = kanc_emu.f;
    int n = kanc_emu.nthreads;
    kanc_emu.ndone = kanc_emu.bar_count = 0;
    memset(kanc_emu.warp_count, 0, sizeof kanc_emu.warp_count);
    memset(kanc_emu.warp_done, 0, sizeof kanc_emu.warp_done);
    unsigned *perm = kanc_emu.perm;
    if (!kanc_emu.fibers) {
        kanc_emu_permute(perm, (size_t)n);
        for (int i = 0; i < n; i++) {
            int t = (int)perm[i];
            kanc_emu.cur = t;
            kanc_emu_tidp = &f[t].tid;
            kanc_emu.fn(kanc_emu.arg);
        }
        return;
    }
    for (int t = 0; t < n; t++) {
        f[t].state = KANC_EMU_RUN;
        f[t].ctx.uc_stack.ss_sp = kanc_emu.stacks + (size_t)t * KANC_EMU_STACK;
        f[t].ctx.uc_stack.ss_size = KANC_EMU_STACK;
        f[t].ctx.uc_link = &kanc_emu.sched;
        makecontext(&f[t].ctx, kanc_emu_entry, 0);
    }
    while (kanc_emu.ndone < n) {
        int ran = 0;
        kanc_emu_permute(perm, (size_t)n); /* a new order for every round */
        for (int i = 0; i < n; i++) {
            int t = (int)perm[i];
            if (f[t].state != KANC_EMU_RUN) continue;
            kanc_emu.cur = t;
            kanc_emu_tidp = &f[t].tid;
            swapcontext(&kanc_emu.sched, &f[t].ctx);
            ran = 1;
        }
        if (!ran) {
            char msg[160];
            int at_bar = 0, at_warp = 0;
            for (int t = 0; t < n; t++) {
                at_bar += f[t].state == KANC_EMU_AT_BAR;
                at_warp += f[t].state == KANC_EMU_AT_WARP;
            }
            snprintf(msg, sizeof msg,
                     "deadlock: %d threads at __syncthreads, %d at a warp barrier, %d returned "
                     "(a barrier not reached by every thread)",
                     at_bar, at_warp, kanc_emu.ndone);
            kanc_emu.cur = -1;
            kanc_emu_fail(msg);
        }
    }
}

/* Runs kernel fn (name for messages) on grid x block threads. sync = 0: the
   kernel has no barriers, threads run as plain calls. */
static void kanc_emu_launch(const char *name, void (*fn)(const void *), dim3 grid, dim3 block,
                            unsigned smem, const void *arg, int sync)
{
    long nthreads = (long)block.x * block.y * block.z;
    kanc_emu.kernel = name;
    if (nthreads < 1 || nthreads > KANC_EMU_MAX_THREADS || grid.x < 1 || grid.y < 1 || grid.z < 1)
        kanc_emu_fail("bad launch shape");
    kanc_emu_alloc();
    if (smem > kanc_emu.dyn_cap) {
        free(kanc_emu.dyn);
        kanc_emu.dyn = (unsigned char *)aligned_alloc(64, (smem + 63) / 64 * 64);
        kanc_emu.dyn_cap = smem;
    }
    kanc_emu.smem = smem;
    kanc_emu.grid = grid;
    kanc_emu.block = block;
    kanc_emu.nthreads = (int)nthreads;
    kanc_emu.fn = fn;
    kanc_emu.arg = arg;
    kanc_emu.fibers = sync && nthreads > 1;
    for (int t = 0; t < nthreads; t++) {
        kanc_emu.f[t].tid.x = (unsigned)t % block.x;
        kanc_emu.f[t].tid.y = (unsigned)t / block.x % block.y;
        kanc_emu.f[t].tid.z = (unsigned)t / (block.x * block.y);
    }
    kanc_emu_read_order();
    size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    if (kanc_emu.order == KANC_EMU_SHUFFLE && nblocks > kanc_emu.bperm_cap) {
        if (nblocks > 0xffffffffu) kanc_emu_fail("more than 2^32 blocks to shuffle");
        free(kanc_emu.bperm);
        kanc_emu.bperm = (unsigned *)malloc(nblocks * sizeof *kanc_emu.bperm);
        kanc_emu.bperm_cap = nblocks;
        if (!kanc_emu.bperm) kanc_emu_fail("out of memory for the block order");
    }
    if (kanc_emu.order == KANC_EMU_SHUFFLE) kanc_emu_permute(kanc_emu.bperm, nblocks);
    for (size_t i = 0; i < nblocks; i++) {
        size_t b = kanc_emu.order == KANC_EMU_FORWARD   ? i
                   : kanc_emu.order == KANC_EMU_REVERSE ? nblocks - 1 - i
                                                        : kanc_emu.bperm[i];
        kanc_emu.bid.x = (unsigned)(b % grid.x);
        kanc_emu.bid.y = (unsigned)(b / grid.x % grid.y);
        kanc_emu.bid.z = (unsigned)(b / ((size_t)grid.x * grid.y));
        kanc_emu_poison();
        kanc_emu_block();
    }
    kanc_emu_tidp = &kanc_emu_tid0;
    kanc_emu.kernel = NULL;
}

/* The host entry of a generated kernel (expanded after its definition):
   extern "C" void NAME__host(dim3 grid, dim3 block, unsigned smem, void **params),
   params as cuLaunchKernel's kernelParams: params[0] -> const KancArgs *,
   params[1] -> KancLaunchArgs, copied at the launch as the driver copies them.
   SYNC: the kernel uses barriers or warp primitives. */
#define KANC_EMU_HOST(NAME, SYNC)                                                              \
    static void NAME##__emu(const void *a)                                                     \
    {                                                                                          \
        const void *const *p = (const void *const *)a;                                        \
        NAME(*(const KancArgs *const *)p[0], *(const KancLaunchArgs *)p[1]);                   \
    }                                                                                          \
    extern "C" __attribute__((visibility("default"))) void NAME##__host(dim3 grid, dim3 block, \
                                                                        unsigned smem, void **params) \
    {                                                                                          \
        const KancArgs *args;                                                                  \
        KancLaunchArgs la;                                                                     \
        memcpy(&args, params[0], sizeof args);                                                 \
        memcpy(&la, params[1], sizeof la);                                                     \
        const void *copy[2] = {&args, &la};                                                    \
        kanc_emu_launch(#NAME, NAME##__emu, grid, block, smem, (const void *)copy, SYNC);      \
    }

#endif
