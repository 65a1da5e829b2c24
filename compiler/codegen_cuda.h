/* codegen_cuda.h: the CUDA target: a plan -> one CUDA C++ source holding every kernel of the step.
 *
 * Every generated kernel has the same signature,
 *     extern "C" __global__ void NAME(const KancArgs *args, const KancLaunchArgs la)
 * where KancArgs (cuda/kanc_abi.h, shared by the runtime and the kernels)
 * holds the base pointers of the storage areas and of the per-step scalars,
 * and la (by value) the launch's own arguments: the addresses of its tensors
 * and small integers (CudaLaunch.arg; the runtime resolves an argument
 * {area, byte offset} to the area's base + offset, cuda_launch_args).
 * Shapes, tiles and attributes are compiled into the kernel text; a kernel
 * whose text (comments and names aside) equals an earlier one is not emitted
 * again: its launches name the first one (CudaProgram.n_kernels distinct
 * kernels; the 12 layers of a GPT share one kernel per op and shape). The
 * step is a list of launches in execution order: kernels, and plain GEMMs
 * that the runtime hands to cuBLASLt (or, emulated, to a CPU GEMM).
 *
 * The same source compiles (a) with NVRTC for a real GPU and (b) with the host
 * C++ compiler under the emulation prelude (runtime/device/emu/cuda_emu.h), where
 * each kernel also gets a host entry `void NAME__host(dim3 grid, dim3 block,
 * unsigned smem, void **params)` that takes the kernel's parameters as
 * cuLaunchKernel's kernelParams (params[0] -> the address of KancArgs,
 * params[1] -> KancLaunchArgs) and runs its blocks on the CPU
 * (runtime/device/emu/emu_launch.h builds and calls them).
 *
 * Launches: kernels read their tensors through la and the per-step values in
 * KancScalars; the runtime provides the
 * areas (ws of CudaProgram.ws_bytes), writes the scalars before a step,
 * zeroes the gradient area before a range that holds backward nodes (no
 * kernel does), and increments KancScalars.step after a step that ran
 * OP_ADAMW. The ADAMW launch reads grad_norm (written by the GRAD_NORM
 * launches) and writes clip_scale. Repeated runs give identical bits: no
 * kernel uses atomics, and every reduction has a fixed order. The attention
 * backward writes dS over its forward's saved probabilities P (dead after
 * it, in the plan), so a range holding it must start at or before the
 * attention forward to be rerun.
 */
#ifndef KANC_CODEGEN_CUDA_H
#define KANC_CODEGEN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kanc_abi.h" /* KancArgs, KancScalars, KancArea */
#include "plan.h"

typedef enum { LAUNCH_KERNEL, LAUNCH_GEMM } LaunchKind;

/* The element type of a GEMM operand (GemmDesc.type_a / type_b): fp32, or
   bf16 (cuBLASLt CUDA_R_16BF) with fp32 accumulation, C and D in fp32. */
typedef enum { GEMM_F32 = 0, GEMM_BF16 = 1 } GemmType;

/* A row-major GEMM C = alpha * op(A) op(B) + beta * C on areas of KancArgs:
   C is m x n with row stride ldc; op(A) is m x k, stored as A (m x k, row
   stride lda) or, with trans_a, as A^T (k x m, row stride lda); op(B) is
   k x n, stored as B (k x n) or, with trans_b, as B^T (n x k), row stride ldb.
   beta == 0: C is not read (it may hold garbage). For cuBLAS (column-major),
   the row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T:
   swap A and B (and m and n), keep each operand's own transpose flag.
   batch > 1: that many products, matrix q's operands at off + q * stride
   (elements; cuBLASLt's strided batch), e.g. attention's per-head products.
   A and B are fp32 or bf16 (type_a, type_b; lda, ldb count their elements);
   C is always fp32 and the product accumulates in fp32. */
typedef struct {
    int trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    int area_a, area_b, area_c; /* KancArea */
    int64_t off_a, off_b, off_c; /* byte offsets in their areas */
    int batch;                            /* products (0 or 1: one) */
    int64_t stride_a, stride_b, stride_c; /* elements between the batch's matrices */
    int type_a;                 /* GemmType of A (0: fp32) */
    int type_b;                 /* GemmType of B (0: fp32) */
} GemmDesc;

/* bytes of one element of a GEMM operand of type t */
static inline int gemm_type_size(int t) { return t == GEMM_BF16 ? 2 : 4; }
static inline const char *gemm_type_name(int t) { return t == GEMM_BF16 ? "bf16" : "fp32"; }

/* An argument of a kernel launch (la.v[i]): a tensor, {area, byte offset},
   which the runtime turns into the area's base address + offset, or a plain
   integer (area CUDA_ARG_INT). */
#define CUDA_ARG_INT (-1)
typedef struct {
    int area;      /* KancArea, or CUDA_ARG_INT */
    int64_t value; /* byte offset in the area, or the integer */
} CudaArg;

typedef struct {
    LaunchKind kind;
    int node;                 /* the graph node it implements, -1 for shared steps */
    char name[64];            /* kernel function name (shared by launches of one kernel) */
    unsigned grid[3], block[3];
    unsigned smem;            /* dynamic shared memory bytes */
    int n_args;               /* kernels: la.v[0 .. n_args) */
    CudaArg arg[KANC_MAX_LAUNCH_ARGS];
    GemmDesc gemm;
} CudaLaunch;

/* Generator parameters. The GEMM and KAN kernels use 256 threads (16 x 16);
   tile_m and tile_n are multiples of 16 in [16, 128], tile_k in [1, 64].
     generated GEMM: a tile_m x tile_n tile of C per block, K in steps of tile_k;
     KAN forward:    tile_m rows x tile_n outputs per block, about tile_k columns
                     of A (whole inputs: max(1, tile_k / (G+k+1)) inputs) per stage;
     KAN dW:         tile_m outputs x about tile_n columns (whole inputs) per block,
                     tile_k rows of x per stage;
     KAN dX:         tile_m rows x about tile_n columns (whole inputs) per block,
                     tile_k outputs per stage.
   Inputs per stage shrink when a tile would pass 48 KiB of shared memory. */
typedef enum {
    CUDA_FP32, /* fp32 operands and accumulation */
    CUDA_BF16, /* bf16 operands of every cuBLASLt GEMM, fp32 accumulation (docs/cuda.md, "Precision") */
} CudaPrecision;

/* How a KAN layer runs (docs/cuda.md, "KAN layers"): fused kernels that build
   the basis inside the matrix product, or row blocks of the basis written to
   the workspace with the GEMMs left to the runtime (cuBLASLt); AUTO picks per
   layer by kan_cuda_pick's cost model (ops/kan.c). */
typedef enum { KAN_KERNEL_AUTO, KAN_KERNEL_FUSED, KAN_KERNEL_BLOCKED } KanKernel;

typedef struct {
    int tile_m, tile_n, tile_k; /* fused KAN / GEMM kernel tiles (default 64, 64, 32) */
    KanKernel kan_kernel;       /* default KAN_KERNEL_AUTO */
    int64_t kan_block_bytes;    /* blocked KAN: the row block's bytes at most (default 64 MiB) */
    int64_t kan_block_rows;     /* blocked KAN: rows per block, overriding the budget (0: from it) */
    int use_cublas;             /* plain GEMMs as LAUNCH_GEMM (1, default) or generated kernels (0) */
    CudaPrecision precision;    /* of the matrix products (default CUDA_FP32; the runtime's own
                                   compiles default to bf16 on a GPU, cuda_options_for_device) */
    int64_t gemm_copy_bytes;    /* bf16: a GEMM's operand copies at most about this many bytes, else
                                   it runs in parts (default 64 MiB; KANC_GEMM_COPY_BYTES) */
} CudaOptions;

typedef struct {
    char *source;           /* NUL-terminated CUDA C++ */
    int n_launch;
    CudaLaunch *launch;     /* execution order */
    int *node_first;        /* per graph node: first launch index, -1 if none */
    int *node_count;        /* per graph node: number of launches */
    int64_t ws_bytes;       /* workspace the kernels need (in KancArgs.ws), bf16 copies included */
    int64_t ws_cast_bytes;  /* of which: the bf16 copies of GEMM operands (at the workspace's end) */
    CudaPrecision precision; /* what it was generated for */
    int n_nodes;            /* entries of node_first / node_count (the graph's nodes) */
    int n_kernels;          /* distinct kernels in source (launches of one share its name) */
} CudaProgram;

void cuda_options_default(CudaOptions *o);
/* "auto", "fused" or "blocked" into *k; -1 for anything else */
int cuda_kan_kernel_parse(const char *s, KanKernel *k);
/* "fp32" or "bf16" into *p; -1 for anything else */
int cuda_precision_parse(const char *s, CudaPrecision *p);
static inline const char *cuda_precision_name(CudaPrecision p) { return p == CUDA_BF16 ? "bf16" : "fp32"; }
/* The options the environment sets for the runtime's own compiles:
   KANC_KAN_KERNEL=auto|fused|blocked, KANC_PRECISION=fp32|bf16,
   KANC_GEMM_COPY_BYTES=N (at least 256). Returns 0, or -1 with a message. */
int cuda_options_from_env(CudaOptions *o, char *err, size_t errlen);
/* The runtime's options for a device: precision bf16 on "cuda" (a GPU), fp32
   on "emu" (the emulator's default is the fp32 path it checks against the
   CPU), then the environment (cuda_options_from_env) over them. */
int cuda_options_for_device(CudaOptions *o, const char *mode, char *err, size_t errlen);
/* Generates the program for plan p (real_size must be 4). Returns 0, or -1
   with a message in err (an op with no CUDA kernel). */
int codegen_cuda(const Plan *p, const CudaOptions *o, CudaProgram *out, char *err, size_t errlen);
void cuda_program_free(CudaProgram *prog);

/* The kernel parameter la of launch l for storage areas at base[] (device or
   host addresses): a tensor argument becomes base[area] + offset. With
   area_bytes (may be NULL), an offset past its area's end is refused. 0, or
   -1 with a message in err naming the launch's kernel and the argument. */
int cuda_launch_args(const CudaLaunch *l, const uint64_t base[KANC_N_AREAS], const int64_t *area_bytes,
                     KancLaunchArgs *la, char *err, size_t errlen);

/* 1 if op has a CUDA emitter (every op of ops/ops.def must). */
int codegen_cuda_has_emitter(GOp op);

#endif
