/* cuda_emit.h: what the CUDA emitters (cuda_emit_<op> in ops/<family>.c) write with.
 *
 * An emitter writes the kernels of one graph node (CudaGen.n) into the
 * generated source: it opens a kernel (cg_kernel_begin, which records the
 * launch), declares pointers to the node's tensors (cg_in_ptr, cg_out_ptr,
 * cg_ptr: each one an argument of the launch, la.v[i], whose value is the
 * tensor's {area, offset}), writes the body as a call of a template of the
 * CUDA library (cuda/) or a grid-stride loop (cg_loop), and closes it; plain
 * GEMMs go through cg_gemm (a cuBLASLt launch or a generated kernel).
 * Whatever differs between two nodes of one shape must be a launch argument
 * (cg_arg), never text: cg_kernel_end compares the body, comments stripped,
 * with the kernels emitted so far and reuses an equal one, so only the first
 * launch's comments are kept, with the list of the launches that share it.
 * codegen_cuda.c calls the emitters from a table built from ops/ops.def.
 */
#ifndef KANC_CUDA_EMIT_H
#define KANC_CUDA_EMIT_H

#include <stdint.h>

#include "codegen_cuda.h"
#include "ops.h"
#include "strbuf.h"

#define CG_BLOCK           256   /* threads of the elementwise, GEMM and KAN kernels */
#define CG_MAX_BLOCKS      4096  /* grid-stride kernels use at most this many blocks */
#define CG_WARPS_PER_BLOCK 4     /* attention: one warp per row of P */
#define CG_SUM_PARTS       1024  /* whole-tensor sums: at most this many partial sums */
#define CG_COL_BLOCKS      1024  /* column sums: about this many blocks (8 per SM of a 132-SM GPU) */
#define CG_EMB_THREADS     65536 /* embedding backward: about this many (column, chunk) threads */
#define CG_SMEM_LIMIT      49152 /* static shared memory per block */

/* The bf16 copies of GEMM operands (cg_gemm under CUDA_BF16) during generation:
   offsets in this pseudo area, which codegen_cuda moves to the end of AREA_WS
   once the kernels' own workspace is known. Never seen outside the generator. */
#define CG_AREA_CAST KANC_N_AREAS

/* a tensor: a byte offset in a storage area of KancArgs */
typedef struct {
    int area;    /* KancArea */
    int64_t off; /* bytes */
} CgLoc;

/* A distinct kernel: its text once, placed where its first launch came. */
typedef struct {
    char name[64];  /* k<index>_<what> */
    unsigned block; /* launch bounds */
    int sync;       /* uses barriers or warp primitives */
    char *key;      /* the body without comments: its identity */
    uint64_t hash;  /* of key */
    char *head;     /* the first launch's header comment (what it computes) */
    char *body;     /* the body as first emitted, comments kept */
    size_t at;      /* its place in CudaGen.src (the text around the kernels) */
    StrBuf users;   /* one line per launch of it */
    int n_users;
} CgKernel;

/* The generator's state. */
typedef struct {
    const Plan *p;
    const Graph *g;
    CudaOptions o;
    StrBuf src;     /* the source, kernels aside; inside a kernel: its body */
    StrBuf outer;   /* inside a kernel: the source, set aside */
    StrBuf khead;   /* inside a kernel: its header comment */
    CudaLaunch *launch;
    int n_launch, cap;
    CgKernel *kern; /* distinct kernels, in order of first use */
    int n_kern, cap_kern;
    int64_t ws_bytes;
    int64_t cast_bytes; /* the bf16 operand copies of the largest GEMM (CG_AREA_CAST) */
    const GNode *n;   /* the node being emitted */
    char kwhat[48];   /* the kernel being emitted: what it computes ("kan_fwd") */
    unsigned kblock;  /* its block size */
    int ksync;        /* it uses barriers or warp primitives */
    int klaunch;      /* its launch (index into launch) */
    char *err;
    size_t errlen;
    int failed;
} CudaGen;

/* An emitter: the kernels of node G->n. */
typedef void (*CudaEmitter)(CudaGen *G);

/* input j of the node being emitted */
#define CG_IN(j) (&G->g->nodes[G->n->in[j]])

static inline int64_t cg_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static inline int64_t cg_imin(int64_t a, int64_t b) { return a < b ? a : b; }

static inline int64_t cg_imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* blocks of CG_BLOCK threads for a grid-stride loop over n elements */
static inline unsigned cg_blocks_for(int64_t n)
{
    return (unsigned)cg_imax(1, cg_imin(cg_cdiv(n, CG_BLOCK), CG_MAX_BLOCKS));
}

static inline int cg_n_id(const CudaGen *G) { return G->n->id; }

/* the node's accumulate flag: parameter gradients always accumulate */
static inline int cg_node_acc(const GNode *n)
{
    return n->a.acc || (op_is_backward(n->op) && n->gparam >= 0);
}

/* dropout probability and keep scale as the CPU computes them */
static inline float cg_keep_scale(double p) { return (float)(p < 1 ? 1.0 / (1.0 - p) : 0.0); }

/* partial sums of a whole-tensor sum over n elements */
static inline int cg_sum_parts(int64_t n)
{
    return (int)cg_imax(1, cg_imin(CG_SUM_PARTS, cg_cdiv(n, CG_BLOCK)));
}

/* threads of a one-block-per-row kernel over rows of C elements */
static inline unsigned cg_row_threads(int64_t C)
{
    return (unsigned)cg_imin(256, cg_imax(32, cg_cdiv(C, 32) * 32));
}

static inline const char *cg_shp(const GShape *s, char *buf) { return shape_str(s, buf, 96); }

/* Records the first error (codegen_cuda then fails with it). */
void cg_fail(CudaGen *G, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The kernels need at least this many bytes of workspace (KancArgs.ws). */
void cg_need_ws(CudaGen *G, int64_t bytes);

/* where node i's value lives (mirrors cpu_exec_value) */
CgLoc cg_value_loc(CudaGen *G, int i);
/* the gradient of parameter node i */
CgLoc cg_grad_loc(CudaGen *G, int i);
/* the output of node n: its value, or the gradient of the parameter it targets */
CgLoc cg_out_loc(CudaGen *G, const GNode *n);
/* node i's aux tensor */
CgLoc cg_aux_loc(CudaGen *G, int i);

/* exact float and double literals in buf (32 bytes) */
const char *cg_flit(char *buf, float v);
const char *cg_dlit(char *buf, double v);
/* an activation's short name ("silu") and its KANC_ACT_* constant */
const char *cg_act_short(int act);
const char *cg_act_name(int act);

/* a new argument of the kernel being emitted: la.v[<returned index>] holds the
   value (a tensor {area, byte offset} or, area CUDA_ARG_INT, an integer) */
int cg_arg(CudaGen *G, int area, int64_t value);

/* a line of the kernel body, indented */
void cg_line(CudaGen *G, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* records a launch in execution order */
CudaLaunch *cg_add_launch(CudaGen *G, LaunchKind kind, const char *name);
/* Opens a kernel that computes <what>, launched for the current node on grid
   (gx, gy) x block threads. sync: the kernel uses __syncthreads or warp
   primitives (the emulation then runs its threads as fibers). note: one line
   on what it computes. */
void cg_kernel_begin(CudaGen *G, const char *what, unsigned gx, unsigned gy, unsigned block, int sync,
                     const char *note, ...) __attribute__((format(printf, 7, 8)));
/* Closes it: reuses an emitted kernel of the same text (comments aside) or
   adds it as k<index>_<what>; names the launch after it. */
void cg_kernel_end(CudaGen *G);
/* The program's source: the text around the kernels with every distinct
   kernel at the place of its first launch (codegen_cuda; caller frees). */
char *cg_assemble(CudaGen *G);
void cg_free_kernels(CudaGen *G);
/* a pointer to a tensor, a launch argument: `const float *x = KANC_LA_PTR(const float, la, 2);`
   with its shape and name as a comment */
void cg_ptr(CudaGen *G, const char *type, const char *var, CgLoc l, const GShape *s, const char *name);
/* input j of the current node, as a const pointer */
void cg_in_ptr(CudaGen *G, const char *var, int j);
/* the node's output */
void cg_out_ptr(CudaGen *G, const char *var);
/* the dropout probability p (0 unless training) and stream of node `node` */
void cg_dropout_params(CudaGen *G, double p, int node);
/* for (e over n elements) body; the loop variable is e */
void cg_loop(CudaGen *G, int64_t n, const char *body);

/* A row-major GEMM on areas of KancArgs (GemmDesc's meaning), with what A, B, C are for comments. */
typedef struct {
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    CgLoc a, b, c;
    const char *na, *nb, *nc; /* what A, B and C are, for comments */
    int type_a, type_b;       /* GemmType A and B are stored in (0: fp32; bf16 only under CUDA_BF16) */
} CgGemm;

/* Column sums in two launches (cuda/kanc_reduce.cuh): rows split into nchunks
   chunks of `chunk` rows (16 at least), so that cols x chunks make about
   CG_COL_BLOCKS blocks. */
typedef struct {
    int64_t chunk;
    int nchunks;
} CgChunks;
CgChunks cg_col_chunks(int64_t rows, int64_t cols);

/* out (+)= s * the column sums of dy [rows, nout] (MUL: times other, nother
   elements, broadcast), into the gradient or value at `out`: the kernels
   <what>_partial and <what>, their partial sums in the workspace. */
typedef struct {
    CgLoc out, dy, other; /* other: MUL only */
    const GShape *out_shape;
    const char *out_note;
    int64_t rows, nout, nother;
    double s;
    int acc, mul;
} CgColSum;
void cg_col_sum(CudaGen *G, const char *what, const CgColSum *q);

/* a LAUNCH_GEMM for cuBLASLt, or a generated tiled kernel (CudaOptions.use_cublas).
   Under CUDA_BF16 the GEMM's operands are bf16: an operand stored in fp32 is
   first copied to bf16 (round to nearest even) by a cast kernel into the
   workspace's operand copies (rows padded to 16 bytes), one launch per operand
   just before the GEMM; C stays fp32. */
void cg_gemm(CudaGen *G, const char *what, const CgGemm *q, const char *note);

/* The bf16 copy of an operand stored as `rows` x `cols` fp32 with row stride
   ld: a cast kernel into the operand copies at byte `at` (CG_AREA_CAST), rows
   padded to a multiple of 8 elements (16 bytes, the tensor-core kernels' vector
   loads). Returns the copy's row stride; cg_bf16_copy_bytes is its size (to 256
   bytes). The caller raises G->cast_bytes past the copies it uses. */
int64_t cg_cast_bf16(CudaGen *G, const char *what, CgLoc src, int64_t rows, int64_t cols, int64_t ld, int64_t at,
                     const char *name);
int64_t cg_bf16_copy_bytes(int64_t rows, int64_t cols);

#endif
