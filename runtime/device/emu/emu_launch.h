/* emu_launch.h: runs a generated CUDA program on the CPU (the emulation of section 6).
 *
 * The source from codegen_cuda() is compiled with the host C++ compiler under
 * the prelude runtime/device/emu/cuda_emu.h into a shared object in a fresh
 * temporary directory, and loaded with dlopen. Each kernel NAME then has a
 * host entry NAME__host that runs all of its blocks (see cuda_emu.h for how
 * threads, shared memory and barriers are emulated, and $KANC_EMU_ORDER for
 * the order they run in); after loading, the module is told where its static
 * __shared__ variables are (emu_register_shared) so that they are poisoned
 * before every block; LAUNCH_GEMM steps run as
 * a CPU GEMM (OpenBLAS). Storage is host memory: a KancArgs whose fields
 * hold host pointers cast to uint64_t (scalars -> a host KancScalars).
 *
 * Typical use (the emulated CUDA device, tests):
 *
 *     CudaProgram prog;   codegen_cuda(plan, &opts, &prog, err, sizeof err);
 *     EmuModule *m = emu_module_build(prog.source, err, sizeof err);
 *     KancArgs a = {.arena = (uint64_t)(uintptr_t)arena, ..., .scalars = (uint64_t)(uintptr_t)&sc};
 *     memset(grads, 0, ...);                    // before a range with backward nodes
 *     emu_run_nodes(m, &prog, 0, g->n, &a, err, sizeof err);
 *     sc.step++;                                // after a step that ran OP_ADAMW
 *     emu_module_free(m);
 *
 * The compiler: $KANC_EMU_CXX, else `c++`, invoked as
 *     c++ -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -isystem <prelude dir>/include
 *         -x c++ -include <prelude> <dir>/kernels.cu -o <dir>/kernels.so
 * (<prelude dir>/include holds the emulated cuda_bf16.h).
 * The prelude is found (first that exists): $KANC_EMU_PRELUDE; the path in
 * the compile-time define KANC_EMU_PRELUDE (-DKANC_EMU_PRELUDE="\"/abs/cuda_emu.h\"");
 * $KANC_ROOT/runtime/device/emu/cuda_emu.h; relative to the executable,
 * <exe dir>/../runtime/device/emu/cuda_emu.h and <exe dir>/../../runtime/device/emu/cuda_emu.h
 * (build/kanrun, build/run_tests, build/tests/x); ./runtime/device/emu/cuda_emu.h.
 * $TMPDIR (else /tmp) holds the temporary directory, removed after loading
 * unless $KANC_EMU_KEEP is set (then its path is printed). A failed compile
 * prints the compiler's output and the generated lines it points at, keeps
 * the directory, and returns NULL with the reason in err.
 */
#ifndef KANC_EMU_LAUNCH_H
#define KANC_EMU_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "codegen_cuda.h"

/* C mirror of the prelude's dim3 (same layout, passed by value the same way) */
typedef struct {
    unsigned x, y, z;
} KancDim3;

/* A kernel's host entry: NAME__host(grid, block, smem, params), params as
   cuLaunchKernel's kernelParams (params[0] -> the KancArgs address as a
   uint64_t, params[1] -> the launch's KancLaunchArgs). */
typedef void (*EmuHostFn)(KancDim3 grid, KancDim3 block, unsigned smem, void **params);

typedef struct EmuModule EmuModule;

/* The prelude path that emu_module_build uses, or NULL when none is found. */
const char *emu_prelude_path(void);

/* Compiles and loads source; NULL with a message in err on failure. */
EmuModule *emu_module_build(const char *source, char *err, size_t errlen);
void emu_module_free(EmuModule *m);

/* The host entry of kernel `name` (without "__host"), or NULL. */
EmuHostFn emu_module_lookup(EmuModule *m, const char *name);
/* Hands a loaded module (dlopen handle dl of file so) the list of its static
   __shared__ variables, which the prelude poisons before every block (see
   emu_launch.c; emu_module_build does it; a module without the prelude's
   entry is left alone). 0, or -1 with err. */
int emu_register_shared(void *dl, const char *so, char *err, size_t errlen);

/* Any exported symbol of the module (tests' own host entries), or NULL. */
void *emu_module_symbol(EmuModule *m, const char *symbol);

/* A LAUNCH_GEMM on the CPU (cblas_sgemm; beta == 0 never reads C). */
void emu_gemm(const GemmDesc *d, const KancArgs *args);

/* One launch: a kernel through its host entry (its arguments resolved
   against args' areas, cuda_launch_args), or a GEMM. 0, or -1 with err. */
int emu_launch(EmuModule *m, const CudaLaunch *l, const KancArgs *args, char *err,
               size_t errlen);

/* The launches of graph nodes [from, to) in order (node_first / node_count).
   Does not zero the gradient area and does not advance the step: the caller
   does, as the CUDA runtime does. 0, or -1 with err. */
int emu_run_nodes(EmuModule *m, const CudaProgram *prog, int from, int to,
                  const KancArgs *args, char *err, size_t errlen);

#endif
