/* codegen_cuda.c: the CUDA target: one CUDA C++ source for every kernel of a planned step.
 *
 * The source has two parts. The fixed library (cuda/kanc_lib.cuh and the files
 * it includes, embedded at build time: the kernel ABI of cuda/kanc_abi.h, the
 * counter RNG of runtime/rng.h, the warp and block primitives, and templates
 * for the fused KAN products, the GEMM, layernorm, attention, cross-entropy
 * and the reductions), then one or more small
 * kernels per graph node that bake the node's offsets, shapes and attributes
 * into a call of the library (or a one-line loop for elementwise ops). The
 * launch list (CudaProgram.launch) records the kernels and the plain GEMMs in
 * execution order.
 *
 * Every kernel computes what runtime/cpu_kernels.inc and runtime/cpu_kan.inc
 * compute for the same node (exec_cpu_node.inc shows how a node's inputs map
 * to a kernel); reductions run in a fixed order, so repeated runs give the
 * same bits. Under the emulation prelude (runtime/emu/cuda_emu.h, KANC_EMU)
 * each kernel also gets a host entry NAME__host that runs it on the CPU.
 *
 * One emitter per op (emit_<op>); the helpers above them print pointers to
 * tensors, open and close kernels and record launches.
 */
#include "codegen_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "strbuf.h"
#include "util.h"
#include "ops.h"

/* ------------------------------------------------------------------------ */
/* generator state, storage locations, kernels and launches                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    int area;
    int64_t off; /* bytes */
} Loc;

#define BLOCK 256          /* threads of the elementwise, GEMM and KAN kernels */
#define MAX_BLOCKS 4096    /* grid-stride kernels use at most this many blocks */
#define WARPS_PER_BLOCK 4  /* attention: one warp per row of P */
#define SUM_PARTS 256      /* whole-tensor sums: at most this many partial sums */
#define EMB_THREADS 65536  /* embedding backward: about this many (column, chunk) threads */
#define SMEM_LIMIT 49152   /* static shared memory per block */

typedef struct {
    const Plan *p;
    const Graph *g;
    CudaOptions o;
    StrBuf src;
    CudaLaunch *launch;
    int n_launch, cap;
    int64_t ws_bytes;
    const GNode *n;   /* the node being emitted */
    char kname[64];   /* the kernel being emitted */
    int ksync;        /* it uses barriers or warp primitives */
    char *err;
    size_t errlen;
    int failed;
} Gen;

static void fail(Gen *G, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Gen *G, const char *fmt, ...)
{
    if (G->failed) return;
    G->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G->err, G->errlen, fmt, ap);
    va_end(ap);
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* blocks of BLOCK threads for a grid-stride loop over n elements */
static unsigned blocks_for(int64_t n) { return (unsigned)imax(1, imin(cdiv(n, BLOCK), MAX_BLOCKS)); }

static void need_ws(Gen *G, int64_t bytes)
{
    if (bytes > G->ws_bytes) G->ws_bytes = bytes;
}

/* where node i's value lives (mirrors cpu_exec_value) */
static Loc value_loc(Gen *G, int i)
{
    const GNode *n = &G->g->nodes[i];
    if (n->op == OP_PARAM) return (Loc){AREA_PARAMS, G->p->pos[i] * 4};
    if (n->op == OP_BUFFER) return (Loc){AREA_BUFFERS, G->p->pos[i] * 4};
    if (G->p->off[i] < 0) fail(G, "cuda: node %d (%s) has no storage", i, op_name(n->op));
    return (Loc){AREA_ARENA, G->p->off[i]};
}

/* the gradient of parameter node i */
static Loc grad_loc(Gen *G, int i)
{
    if (G->g->nodes[i].op != OP_PARAM) fail(G, "cuda: node %d is not a parameter", i);
    return (Loc){AREA_GRADS, G->p->pos[i] * 4};
}

/* the output of node n: its value, or the gradient of the parameter it targets */
static Loc out_loc(Gen *G, const GNode *n)
{
    if (op_is_backward(n->op) && n->gparam >= 0) return grad_loc(G, n->gparam);
    return value_loc(G, n->id);
}

static Loc aux_loc(Gen *G, int i)
{
    if (G->p->aux_off[i] < 0) fail(G, "cuda: node %d (%s) has no aux tensor", i, op_name(G->g->nodes[i].op));
    return (Loc){AREA_ARENA, G->p->aux_off[i]};
}

static int n_id(const Gen *G) { return G->n->id; }

/* the node's accumulate flag: parameter gradients always accumulate */
static int node_acc(const GNode *n) { return n->a.acc || (op_is_backward(n->op) && n->gparam >= 0); }

/* dropout probability and keep scale as the CPU computes them */
static float keep_scale(double p) { return (float)(p < 1 ? 1.0 / (1.0 - p) : 0.0); }

/* exact float and double literals */
static const char *flit(char *buf, float v)
{
    snprintf(buf, 32, "%.8ef", (double)v);
    return buf;
}
static const char *dlit(char *buf, double v)
{
    snprintf(buf, 32, "%.17e", v);
    return buf;
}

static const char *shp(const GShape *s, char *buf) { return shape_str(s, buf, 96); }

static const char *act_short(int act)
{
    switch (act) {
    case ACT_SILU: return "silu";
    case ACT_GELU: return "gelu";
    case ACT_RELU: return "relu";
    default: return "identity";
    }
}

static const char *act_name(int act)
{
    switch (act) {
    case ACT_SILU: return "KANC_ACT_SILU";
    case ACT_GELU: return "KANC_ACT_GELU";
    case ACT_RELU: return "KANC_ACT_RELU";
    default: return "KANC_ACT_NONE";
    }
}

/* a line of the kernel body, indented */
static void line(Gen *G, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Gen *G, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_printf(&G->src, "    ");
    sb_vprintf(&G->src, fmt, ap);
    sb_printf(&G->src, "\n");
    va_end(ap);
}

static CudaLaunch *add_launch(Gen *G, LaunchKind kind, const char *name)
{
    if (G->n_launch == G->cap) {
        G->cap = G->cap ? 2 * G->cap : 64;
        G->launch = xrealloc(G->launch, sizeof *G->launch * (size_t)G->cap);
    }
    CudaLaunch *l = &G->launch[G->n_launch++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->node = G->n ? G->n->id : -1;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->grid[0] = l->grid[1] = l->grid[2] = 1;
    l->block[0] = l->block[1] = l->block[2] = 1;
    return l;
}

/* Opens kernel n<id>_<what>, launched on grid (gx, gy) x block threads.
   sync: the kernel uses __syncthreads or warp primitives (the emulation then
   runs its threads as fibers). note: one line on what it computes. */
static void kernel_begin(Gen *G, const char *what, unsigned gx, unsigned gy, unsigned block,
                         int sync, const char *note, ...) __attribute__((format(printf, 7, 8)));
static void kernel_begin(Gen *G, const char *what, unsigned gx, unsigned gy, unsigned block,
                         int sync, const char *note, ...)
{
    snprintf(G->kname, sizeof G->kname, "n%d_%s", G->n->id, what);
    G->ksync = sync;
    if (gy > 65535)
        fail(G, "cuda: node %d: %s needs %u row tiles, over the grid's 65535; use a larger tile_m",
             G->n->id, what, gy);
    CudaLaunch *l = add_launch(G, LAUNCH_KERNEL, G->kname);
    l->grid[0] = gx;
    l->grid[1] = gy;
    l->block[0] = block;
    sb_printf(&G->src, "/* node %d %s", G->n->id, op_name(G->n->op));
    const char *label = G->n->name;
    if (!label && G->n->fwd >= 0) label = G->g->nodes[G->n->fwd].name;
    if (label) sb_printf(&G->src, " (%s)", label);
    sb_printf(&G->src, ": ");
    va_list ap;
    va_start(ap, note);
    sb_vprintf(&G->src, note, ap);
    va_end(ap);
    sb_printf(&G->src, "\n   launch: grid (%u, %u), block %u */\n", gx, gy, block);
    sb_printf(&G->src, "extern \"C\" __global__ void __launch_bounds__(%u) %s(const KancArgs *args)\n{\n",
           block, G->kname);
}

static void kernel_end(Gen *G)
{
    sb_printf(&G->src, "}\n#ifdef KANC_EMU\nKANC_EMU_HOST(%s, %d)\n#endif\n\n", G->kname, G->ksync);
}

/* a pointer to a tensor: `const float *x = KANC_PTR(...); / * [shape] name * /` */
static void ptr(Gen *G, const char *type, const char *var, Loc l, const GShape *s, const char *name)
{
    char sb[96];
    sb_printf(&G->src, "    %s *%s = KANC_PTR(%s, args->%s, %lld);", type, var, type, kanc_area_name(l.area),
           (long long)l.off);
    if (s) sb_printf(&G->src, " /* %s%s%s */", shp(s, sb), name ? " " : "", name ? name : "");
    sb_printf(&G->src, "\n");
}

/* input j of the current node, as a const pointer */
static void in_ptr(Gen *G, const char *var, int j)
{
    const GNode *x = &G->g->nodes[G->n->in[j]];
    ptr(G, x->dtype == DT_I32 ? "const int" : "const float", var, value_loc(G, x->id), &x->shape,
        x->name);
}

/* the node's output */
static void out_ptr(Gen *G, const char *var)
{
    const GNode *n = G->n;
    const GNode *t = op_is_backward(n->op) && n->gparam >= 0 ? &G->g->nodes[n->gparam] : NULL;
    char note[160];
    snprintf(note, sizeof note, "%s%s%s", t ? "grad of " : "", t ? t->name : "",
             node_acc(n) ? " (accumulate)" : "");
    ptr(G, "float", var, out_loc(G, n), &n->shape, note[0] ? note : NULL);
}

/* the dropout probability p (0 unless training) and stream of node `node` */
static void dropout_params(Gen *G, double p, int node)
{
    char b[32];
    line(G, "const KancScalars *sc = KANC_SCALARS(args);");
    line(G, "const double p = sc->training ? %s : 0.0;", dlit(b, p));
    line(G, "const uint64_t seed = sc->seed, stream = kanc_dropout_stream(sc->step, %du);", node);
}

/* for (e over n elements) body; the loop variable is e */
static void loop(Gen *G, int64_t n, const char *body)
{
    line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride())", (long long)n);
    line(G, "    %s", body);
}

/* ------------------------------------------------------------------------ */
/* GEMM: a LAUNCH_GEMM for cuBLASLt, or a generated tiled kernel             */
/* ------------------------------------------------------------------------ */

typedef struct {
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    Loc a, b, c;
    const char *na, *nb, *nc; /* what A, B and C are, for comments */
} Gemm;

static void emit_gemm(Gen *G, const char *what, const Gemm *q, const char *note)
{
    char ba[32], bb[32];
    if (G->o.use_cublas) {
        char name[64];
        snprintf(name, sizeof name, "n%d_%s", G->n->id, what);
        CudaLaunch *l = add_launch(G, LAUNCH_GEMM, name);
        l->gemm = (GemmDesc){.trans_a = q->ta, .trans_b = q->tb, .m = q->m, .n = q->n, .k = q->k,
                             .lda = q->lda, .ldb = q->ldb, .ldc = q->ldc, .alpha = q->alpha,
                             .beta = q->beta, .area_a = q->a.area, .area_b = q->b.area,
                             .area_c = q->c.area, .off_a = q->a.off, .off_b = q->b.off,
                             .off_c = q->c.off};
        sb_printf(&G->src,
               "/* node %d %s: %s\n   launch %s: GEMM for the runtime (cuBLASLt): C[%lld,%lld] = "
               "%g op(A) op(B) + %g C, trans %d %d, k %lld;\n   A = %s, B = %s, C = %s */\n\n",
               G->n->id, op_name(G->n->op), note, name, (long long)q->m, (long long)q->n,
               (double)q->alpha, (double)q->beta, q->ta, q->tb, (long long)q->k, q->na, q->nb, q->nc);
        return;
    }
    int TM = G->o.tile_m, TN = G->o.tile_n, TK = G->o.tile_k;
    kernel_begin(G, what, (unsigned)cdiv(q->n, TN), (unsigned)cdiv(q->m, TM), BLOCK, 1,
                 "%s\n   C[%lld,%lld] = %g op(A) op(B) + %g C, trans %d %d, k %lld", note,
                 (long long)q->m, (long long)q->n, (double)q->alpha, (double)q->beta, q->ta, q->tb,
                 (long long)q->k);
    const char *type[3] = {"const float", "const float", "float"}, *var[3] = {"A", "B", "C"};
    const char *what3[3] = {q->na, q->nb, q->nc};
    Loc loc[3] = {q->a, q->b, q->c};
    for (int i = 0; i < 3; i++)
        sb_printf(&G->src, "    %s *%s = KANC_PTR(%s, args->%s, %lld); /* %s */\n", type[i], var[i], type[i],
                  kanc_area_name(loc[i].area), (long long)loc[i].off, what3[i]);
    line(G, "kanc_gemm<%d, %d, %d, %d, %d>(A, B, C, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %s, %s);",
         q->ta, q->tb, TM, TN, TK, (long long)q->m, (long long)q->n, (long long)q->k,
         (long long)q->lda, (long long)q->ldb, (long long)q->ldc, flit(ba, q->alpha),
         flit(bb, q->beta));
    kernel_end(G);
}

/* ------------------------------------------------------------------------ */
/* one emitter per op                                                        */
/* ------------------------------------------------------------------------ */

#define IN(j) (&G->g->nodes[G->n->in[j]])

static void emit_embedding(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&IN(0)->shape), C = shape_last(&n->shape);
    kernel_begin(G, "embedding", blocks_for(N * C), 1, BLOCK, 0, "y[n, c] = w[idx[n], c]");
    out_ptr(G, "y");
    in_ptr(G, "idx", 0);
    in_ptr(G, "w", 1);
    char body[160];
    snprintf(body, sizeof body, "y[e] = w[(long long)idx[e / %lld] * %lld + e %% %lld];", (long long)C,
             (long long)C, (long long)C);
    loop(G, N * C, body);
    kernel_end(G);
}

static void emit_binary(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape), nb = shape_numel(&IN(1)->shape);
    const char *op = n->op == OP_ADD ? "+" : n->op == OP_SUB ? "-" : "*";
    kernel_begin(G, op_name(n->op), blocks_for(N), 1, BLOCK, 0, "y = a %s b (b broadcast over a's leading dims)", op);
    out_ptr(G, "y");
    in_ptr(G, "a", 0);
    in_ptr(G, "b", 1);
    char body[160];
    if (nb == N)
        snprintf(body, sizeof body, "y[e] = a[e] %s b[e];", op);
    else
        snprintf(body, sizeof body, "y[e] = a[e] %s b[e %% %lld];", op, (long long)nb);
    loop(G, N, body);
    kernel_end(G);
}

static void emit_scale(Gen *G)
{
    char b[32], body[96];
    int64_t N = shape_numel(&G->n->shape);
    kernel_begin(G, "scale", blocks_for(N), 1, BLOCK, 0, "y = s x");
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    line(G, "const float s = %s;", flit(b, (float)G->n->a.scale));
    snprintf(body, sizeof body, "y[e] = s * x[e];");
    loop(G, N, body);
    kernel_end(G);
}

/* reshape: same elements; a copy unless the plan placed both at one offset */
static void emit_copy(Gen *G, const char *what)
{
    int64_t N = shape_numel(&G->n->shape);
    Loc y = out_loc(G, G->n), x = value_loc(G, G->n->in[0]);
    if (y.area == x.area && y.off == x.off) return;
    kernel_begin(G, what, blocks_for(N), 1, BLOCK, 0, "y = x");
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    loop(G, N, "y[e] = x[e];");
    kernel_end(G);
}

static void emit_activation(Gen *G)
{
    const GNode *n = G->n;
    int act = n->op == OP_GELU ? ACT_GELU : n->op == OP_SILU ? ACT_SILU : ACT_RELU;
    int64_t N = shape_numel(&n->shape);
    char body[96];
    kernel_begin(G, op_name(n->op), blocks_for(N), 1, BLOCK, 0, "y = %s(x)", op_name(n->op));
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    snprintf(body, sizeof body, "y[e] = kanc_act(%s, x[e]);", act_name(act));
    loop(G, N, body);
    kernel_end(G);
}

static void emit_act_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char body[128];
    kernel_begin(G, "act_bwd", blocks_for(N), 1, BLOCK, 0, "dx (+)= dy * %s'(x)",
                 act_short(n->a.act));
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    in_ptr(G, "x", 1);
    snprintf(body, sizeof body, "dx[e] = %sdy[e] * kanc_act_grad(%s, x[e]);",
             node_acc(n) ? "dx[e] + " : "", act_name(n->a.act));
    loop(G, N, body);
    kernel_end(G);
}

static void emit_dropout(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char b[32], body[192];
    kernel_begin(G, "dropout", blocks_for(N), 1, BLOCK, 0,
                 "y = x * keep / (1-p), keep from the counter RNG (training only)");
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    dropout_params(G, n->a.p, n->id);
    snprintf(body, sizeof body,
             "y[e] = p > 0.0 ? x[e] * kanc_drop(p, %s, seed, stream, (uint64_t)e) : x[e];",
             flit(b, keep_scale(n->a.p)));
    loop(G, N, body);
    kernel_end(G);
}

static void emit_dropout_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char b[32], body[192];
    kernel_begin(G, "dropout_bwd", blocks_for(N), 1, BLOCK, 0,
                 "dx (+)= dy * keep / (1-p), the forward's mask (training only)");
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    dropout_params(G, n->a.p, n->fwd);
    snprintf(body, sizeof body,
             "dx[e] = %s(p > 0.0 ? dy[e] * kanc_drop(p, %s, seed, stream, (uint64_t)e) : dy[e]);",
             node_acc(n) ? "dx[e] + " : "", flit(b, keep_scale(n->a.p)));
    loop(G, N, body);
    kernel_end(G);
}

static void emit_slice(Gen *G)
{
    const GNode *n = G->n;
    int64_t rows = shape_rows(&IN(0)->shape), C = shape_last(&IN(0)->shape);
    int64_t start = n->a.start, len = n->a.len;
    char body[160];
    kernel_begin(G, "slice", blocks_for(rows * len), 1, BLOCK, 0,
                 "y[r, :] = x[r, %lld:%lld]", (long long)start, (long long)(start + len));
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    snprintf(body, sizeof body, "y[e] = x[(e / %lld) * %lld + %lld + e %% %lld];", (long long)len,
             (long long)C, (long long)start, (long long)len);
    loop(G, rows * len, body);
    kernel_end(G);
}

static void emit_slice_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t rows = shape_rows(&n->shape), C = shape_last(&n->shape);
    int64_t start = n->a.start, len = n->a.len;
    kernel_begin(G, "slice_bwd", blocks_for(rows * C), 1, BLOCK, 0,
                 "dx[r, %lld:%lld] (+)= dy[r, :], other columns 0 (or kept)", (long long)start,
                 (long long)(start + len));
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride()) {", (long long)(rows * C));
    line(G, "    long long c = e %% %lld;", (long long)C);
    line(G, "    float v = c >= %lld && c < %lld ? dy[(e / %lld) * %lld + c - %lld] : 0.0f;",
         (long long)start, (long long)(start + len), (long long)C, (long long)len, (long long)start);
    line(G, "    dx[e] = %sv;", node_acc(n) ? "dx[e] + " : "");
    line(G, "}");
    kernel_end(G);
}

static void emit_concat(Gen *G)
{
    int64_t rows = shape_rows(&IN(0)->shape), ca = shape_last(&IN(0)->shape),
            cb = shape_last(&IN(1)->shape), W = ca + cb;
    kernel_begin(G, "concat", blocks_for(rows * W), 1, BLOCK, 0, "y[r] = [a[r], b[r]]");
    out_ptr(G, "y");
    in_ptr(G, "a", 0);
    in_ptr(G, "b", 1);
    line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride()) {", (long long)(rows * W));
    line(G, "    long long r = e / %lld, c = e %% %lld;", (long long)W, (long long)W);
    line(G, "    y[e] = c < %lld ? a[r * %lld + c] : b[r * %lld + c - %lld];", (long long)ca,
         (long long)ca, (long long)cb, (long long)ca);
    line(G, "}");
    kernel_end(G);
}

static void emit_seed(Gen *G)
{
    kernel_begin(G, "seed", 1, 1, 32, 0, "d loss / d loss = 1");
    out_ptr(G, "y");
    line(G, "if (threadIdx.x == 0) y[0] = 1.0f;");
    kernel_end(G);
}

static void emit_sum_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char body[96];
    kernel_begin(G, "sum_bwd", blocks_for(N), 1, BLOCK, 0, "dx (+)= dloss");
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    snprintf(body, sizeof body, "dx[e] = %sdy[0];", node_acc(n) ? "dx[e] + " : "");
    loop(G, N, body);
    kernel_end(G);
}

/* whole-tensor sum, in two deterministic passes through the workspace:
   partial sums of fixed grid-stride shares, then one block adds them */
static int sum_parts(int64_t n) { return (int)imax(1, imin(SUM_PARTS, cdiv(n, BLOCK))); }

static void emit_sum(Gen *G)
{
    int64_t N = shape_numel(&IN(0)->shape);
    int parts = sum_parts(N);
    need_ws(G, parts * 8);
    kernel_begin(G, "sum_partial", (unsigned)parts, 1, BLOCK, 1, "ws[block] = partial sums of x");
    in_ptr(G, "x", 0);
    ptr(G, "double", "part", (Loc){AREA_WS, 0}, NULL, NULL);
    line(G, "kanc_sum_partial<0>(part, x, %lldLL);", (long long)N);
    kernel_end(G);
    kernel_begin(G, "sum", 1, 1, BLOCK, 1, "y = the sum of the %d partial sums", parts);
    out_ptr(G, "y");
    ptr(G, "const double", "part", (Loc){AREA_WS, 0}, NULL, NULL);
    line(G, "double s = kanc_sum_parts(part, %d);", parts);
    line(G, "if (threadIdx.x == 0) y[0] = (float)s;");
    kernel_end(G);
}

/* out (+)= s * column sums of dy (ACC) or of dy * other (MUL_BWD) */
static void emit_col_reduce(Gen *G)
{
    const GNode *n = G->n;
    int mul = n->op == OP_MUL_BWD;
    int64_t N = shape_numel(&IN(0)->shape), nout = shape_numel(&n->shape);
    int64_t nother = mul ? shape_numel(&IN(1)->shape) : 1;
    char b[32];
    kernel_begin(G, op_name(n->op), blocks_for(nout), 1, BLOCK, 0,
                 "out (+)= %s summed over the %lld rows of [%lld, %lld]",
                 mul ? "dy * other" : "s * dy", (long long)(N / nout), (long long)(N / nout),
                 (long long)nout);
    out_ptr(G, "out");
    in_ptr(G, "dy", 0);
    if (mul)
        in_ptr(G, "other", 1);
    else
        line(G, "const float *other = 0;");
    line(G, "kanc_col_reduce<%d, %d>(out, dy, other, %lldLL, %lldLL, %lldLL, %s);", node_acc(n), mul,
         (long long)(N / nout), (long long)nout, (long long)nother, dlit(b, mul ? 1.0 : n->a.scale));
    kernel_end(G);
}

/* comments for the operands: roles ra, rb of input nodes ia, ib; the output rc */
static void describe(Gen *G, Gemm *q, const char *ra, int ia, const char *rb, int ib, const char *rc,
                     char *sa, char *sb, char *sc)
{
    const GNode *a = &G->g->nodes[ia], *b = &G->g->nodes[ib], *n = G->n;
    char t[96];
    snprintf(sa, 160, "%s %s%s%s", ra, shp(&a->shape, t), a->name ? " " : "", a->name ? a->name : "");
    snprintf(sb, 160, "%s %s%s%s", rb, shp(&b->shape, t), b->name ? " " : "", b->name ? b->name : "");
    const GNode *tg = op_is_backward(n->op) && n->gparam >= 0 ? &G->g->nodes[n->gparam] : NULL;
    snprintf(sc, 160, "%s %s%s%s%s", rc, shp(&n->shape, t), tg ? " grad of " : "",
             tg && tg->name ? tg->name : "", node_acc(n) ? " (accumulate)" : "");
    q->na = sa;
    q->nb = sb;
    q->nc = sc;
}

static void emit_linear(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(0)->shape), in = shape_last(&IN(0)->shape), out = shape_last(&n->shape);
    Loc y = out_loc(G, n);
    if (n->a.has_bias) { /* y = b first, then the GEMM adds x W^T (the CPU's order) */
        kernel_begin(G, "linear_bias", blocks_for(N * out), 1, BLOCK, 0, "y[n, :] = b");
        out_ptr(G, "y");
        in_ptr(G, "b", 2);
        char body[96];
        snprintf(body, sizeof body, "y[e] = b[e %% %lld];", (long long)out);
        loop(G, N * out, body);
        kernel_end(G);
    }
    Gemm q = {.ta = 0, .tb = 1, .m = N, .n = out, .k = in, .lda = in, .ldb = in, .ldc = out,
              .alpha = 1, .beta = n->a.has_bias ? 1 : 0, .a = value_loc(G, n->in[0]),
              .b = value_loc(G, n->in[1]), .c = y};
    char note[128], s1[160], s2[160], s3[160];
    snprintf(note, sizeof note, "y%s (+)= x%s W^T", shp(&n->shape, s1), shp(&IN(0)->shape, s2));
    describe(G, &q, "x", n->in[0], "W", n->in[1], "y", s1, s2, s3);
    emit_gemm(G, "linear_gemm", &q, note);
}

static void emit_linear_bwd_x(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(0)->shape), in = shape_last(&n->shape), out = shape_last(&IN(0)->shape);
    Gemm q = {.ta = 0, .tb = 0, .m = N, .n = in, .k = out, .lda = out, .ldb = in, .ldc = in,
              .alpha = 1, .beta = node_acc(n) ? 1 : 0, .a = value_loc(G, n->in[0]),
              .b = value_loc(G, n->in[1]), .c = out_loc(G, n)};
    char s1[160], s2[160], s3[160];
    describe(G, &q, "dy", n->in[0], "W", n->in[1], "dx", s1, s2, s3);
    emit_gemm(G, "linear_bwd_x", &q, "dx (+)= dy W");
}

static void emit_linear_bwd_w(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(0)->shape), in = shape_last(&IN(1)->shape), out = shape_last(&IN(0)->shape);
    Gemm q = {.ta = 1, .tb = 0, .m = out, .n = in, .k = N, .lda = out, .ldb = in, .ldc = in,
              .alpha = 1, .beta = 1, .a = value_loc(G, n->in[0]), .b = value_loc(G, n->in[1]),
              .c = out_loc(G, n)};
    char s1[160], s2[160], s3[160];
    describe(G, &q, "dy", n->in[0], "x", n->in[1], "dW", s1, s2, s3);
    emit_gemm(G, "linear_bwd_w", &q, "dW += dy^T x");
    if (n->a.has_bias) {
        kernel_begin(G, "linear_bwd_b", blocks_for(out), 1, BLOCK, 0,
                     "db += column sums of dy (rows in order)");
        ptr(G, "float", "db", grad_loc(G, n->in[3]), &IN(3)->shape, "grad of bias");
        in_ptr(G, "dy", 0);
        line(G, "kanc_col_reduce<1, 0>(db, dy, (const float *)0, %lldLL, %lldLL, 1LL, 1.0);",
             (long long)N, (long long)out);
        kernel_end(G);
    }
}

/* ---- the fused KAN layer ---- */

typedef struct {
    int64_t N, in, out;
    int G, k, S, act, scaler;
} KanDims;

static KanDims kan_dims(Gen *G, const GNode *k, const GNode *x)
{
    KanDims d = {.N = shape_rows(&x->shape), .in = shape_last(&x->shape), .out = shape_last(&k->shape),
                 .G = k->a.grid_size, .k = k->a.spline_order, .act = k->a.act,
                 .scaler = k->a.has_scaler};
    d.S = d.G + d.k + 1;
    return d;
}

/* inputs per stage: about `cols` columns of A, within the shared memory limit
   (floats = fixed + per_input * TI) */
static int kan_inputs(Gen *G, int cols, int S, int64_t in, int64_t fixed, int64_t per_input)
{
    int ti = (int)imax(1, imin(cols / S, in));
    while (ti > 1 && (fixed + per_input * ti) * 4 > SMEM_LIMIT) ti--;
    if ((fixed + per_input * ti) * 4 > SMEM_LIMIT)
        fail(G, "cuda: node %d: KAN tile too large for shared memory (G+k+1 = %d); use smaller tiles",
             G->n->id, S);
    return ti;
}

static void kan_params(Gen *G, const char *base, int j_grid, int j_base, int j_spline, int j_scaler,
                       int scaler)
{
    in_ptr(G, "grid", j_grid);
    if (base) in_ptr(G, "base", j_base);
    in_ptr(G, "spline", j_spline);
    if (scaler)
        in_ptr(G, "scaler", j_scaler);
    else
        line(G, "const float *scaler = 0; /* no standalone scaler */");
}

static void emit_kan(Gen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, n, IN(0));
    int TM = G->o.tile_m, TN = G->o.tile_n;
    int TI = kan_inputs(G, G->o.tile_k, d.S, d.in, 0, (int64_t)d.S * (TM + TN + 2));
    char s1[96], s2[96];
    kernel_begin(G, "kan_fwd", (unsigned)cdiv(d.out, TN), (unsigned)cdiv(d.N, TM), BLOCK, 1,
                 "y%s = A(x%s) Wf^T, G=%d k=%d base %s%s\n   tiles: %d rows x %d outputs; "
                 "per stage, inputs: %d (columns of A: %d)",
                 shp(&n->shape, s1), shp(&IN(0)->shape, s2), d.G, d.k, act_short(d.act),
                 d.scaler ? " scaler" : "", TM, TN, TI, TI * d.S);
    out_ptr(G, "y");
    in_ptr(G, "x", 0);
    kan_params(G, "base", 1, 2, 3, 4, d.scaler);
    line(G, "kanc_kan_fwd<%d, %d, %s, %d, %d, %d, %d>(y, x, grid, base, spline, scaler, %lldLL, %lld, %lld);",
         d.G, d.k, act_name(d.act), d.scaler, TM, TN, TI, (long long)d.N, (long long)d.in,
         (long long)d.out);
    kernel_end(G);
}

static void emit_kan_bwd_w(Gen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], IN(1));
    int TM = G->o.tile_m, TR = G->o.tile_k;
    int TI = kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TR * (TM + 1) + TR + TM,
                        (int64_t)d.S * (TR + TM));
    kernel_begin(G, "kan_bwd_w", (unsigned)cdiv(d.in, TI), (unsigned)cdiv(d.out, TM), BLOCK, 1,
                 "dWf = dy^T A(x), split into d base, d spline, d scaler (accumulate)\n"
                 "   G=%d k=%d base %s%s; tiles: %d outputs x inputs: %d (columns: %d); rows per "
                 "stage: %d",
                 d.G, d.k, act_short(d.act), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TR);
    ptr(G, "float", "dbase", grad_loc(G, n->in[3]), &IN(3)->shape, "grad of base_weight");
    ptr(G, "float", "dspline", grad_loc(G, n->in[4]), &IN(4)->shape, "grad of spline_weight");
    if (d.scaler)
        ptr(G, "float", "dscaler", grad_loc(G, n->in[5]), &IN(5)->shape, "grad of spline_scaler");
    else
        line(G, "float *dscaler = 0;");
    in_ptr(G, "dy", 0);
    in_ptr(G, "x", 1);
    kan_params(G, NULL, 2, 3, 4, 5, d.scaler);
    line(G, "kanc_kan_bwd_w<%d, %d, %s, %d, %d, %d, %d>(dbase, dspline, dscaler, dy, x, grid, spline, "
            "scaler, %lldLL, %lld, %lld);",
         d.G, d.k, act_name(d.act), d.scaler, TM, TI, TR, (long long)d.N, (long long)d.in,
         (long long)d.out);
    kernel_end(G);
}

static void emit_kan_bwd_x(Gen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], IN(1));
    int TM = G->o.tile_m, TO = G->o.tile_k;
    int TI = kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TO * (TM + 1) + TO + TM,
                        (int64_t)d.S * (TO + TM));
    kernel_begin(G, "kan_bwd_x", (unsigned)cdiv(d.in, TI), (unsigned)cdiv(d.N, TM), BLOCK, 1,
                 "dx (+)= act'(x) (dy Wf)[., 0] + sum_c B'_c(x) (dy Wf)[., 1+c]\n"
                 "   G=%d k=%d base %s%s; tiles: %d rows x inputs: %d (columns: %d); outputs per "
                 "stage: %d",
                 d.G, d.k, act_short(d.act), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TO);
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    in_ptr(G, "x", 1);
    kan_params(G, "base", 2, 3, 4, 5, d.scaler);
    line(G, "kanc_kan_bwd_x<%d, %d, %s, %d, %d, %d, %d, %d>(dx, dy, x, grid, base, spline, scaler, "
            "%lldLL, %lld, %lld);",
         d.G, d.k, act_name(d.act), d.scaler, node_acc(n), TM, TI, TO, (long long)d.N,
         (long long)d.in, (long long)d.out);
    kernel_end(G);
}

/* ---- layernorm, attention, cross-entropy ---- */

/* threads for a one-block-per-row kernel over rows of C: a multiple of 32 */
static unsigned row_threads(int64_t C) { return (unsigned)imin(256, imax(32, cdiv(C, 32) * 32)); }

static void emit_layernorm(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(0)->shape), C = shape_last(&IN(0)->shape);
    char b[32];
    kernel_begin(G, "layernorm_fwd", (unsigned)N, 1, row_threads(C), 1,
                 "y = (x - mean) rstd w + b, stats = (mean, rstd); one block per row");
    out_ptr(G, "y");
    GShape as = shape_of(2, N, (int64_t)2);
    ptr(G, "float", "stats", aux_loc(G, n->id), &as, "(mean, rstd)");
    in_ptr(G, "x", 0);
    in_ptr(G, "w", 1);
    in_ptr(G, "b", 2);
    line(G, "kanc_layernorm_fwd(y, stats, x, w, b, %lld, %s);", (long long)C, dlit(b, n->a.eps));
    kernel_end(G);
}

static void emit_layernorm_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(1)->shape), C = shape_last(&IN(1)->shape);
    GShape as = shape_of(2, N, (int64_t)2);
    kernel_begin(G, "layernorm_bwd_x", (unsigned)N, 1, row_threads(C), 1,
                 "dx (+)= rstd (dy w - mean(dy w) - xhat mean(dy w xhat)); one block per row");
    out_ptr(G, "dx");
    in_ptr(G, "dy", 0);
    in_ptr(G, "x", 1);
    ptr(G, "const float", "stats", aux_loc(G, n->fwd), &as, "(mean, rstd)");
    in_ptr(G, "w", 2);
    line(G, "kanc_layernorm_bwd_x<%d>(dx, dy, x, stats, w, %lld);", node_acc(n), (long long)C);
    kernel_end(G);
    kernel_begin(G, "layernorm_bwd_wb", blocks_for(C), 1, BLOCK, 0,
                 "dw += sum_r dy xhat, db += sum_r dy; one thread per column");
    ptr(G, "float", "dw", grad_loc(G, n->in[2]), &IN(2)->shape, "grad of weight");
    ptr(G, "float", "db", grad_loc(G, n->in[3]), &IN(3)->shape, "grad of bias");
    in_ptr(G, "dy", 0);
    in_ptr(G, "x", 1);
    ptr(G, "const float", "stats", aux_loc(G, n->fwd), &as, "(mean, rstd)");
    line(G, "kanc_layernorm_bwd_wb(dw, db, dy, x, stats, %lldLL, %lld);", (long long)N, (long long)C);
    kernel_end(G);
}

typedef struct {
    int64_t B, T, C, H;
    int causal;
    double p;
} AttDims;

static AttDims att_dims(const GNode *f)
{
    return (AttDims){f->shape.d[0], f->shape.d[1], f->shape.d[2], f->a.heads, f->a.causal, f->a.p};
}

/* the attention's constant arguments after the shapes: sc and keep */
static void att_consts(Gen *G, const AttDims *a)
{
    char b1[32], b2[32];
    line(G, "const float scale = %s, keep = %s; /* 1/sqrt(D), 1/(1-p) */",
         flit(b1, (float)(1.0 / sqrt((double)(a->C / a->H)))), flit(b2, keep_scale(a->p)));
}

static void emit_attention(Gen *G)
{
    const GNode *n = G->n;
    AttDims a = att_dims(n);
    int64_t rows = a.B * a.H * a.T;
    char s1[96];
    kernel_begin(G, "attention_fwd", (unsigned)cdiv(rows, WARPS_PER_BLOCK), 1, 32 * WARPS_PER_BLOCK, 1,
                 "%s attention, %lld heads: y = dropout(softmax(q k^T / sqrt(D))) v, P = softmax;\n"
                 "   one warp per row of P%s",
                 a.causal ? "causal" : "bidirectional", (long long)a.H, shp(&n->aux, s1));
    out_ptr(G, "y");
    ptr(G, "float", "P", aux_loc(G, n->id), &n->aux, "softmax (before dropout)");
    in_ptr(G, "qkv", 0);
    dropout_params(G, a.p, n->id);
    att_consts(G, &a);
    line(G, "kanc_attention_fwd<%d>(y, P, qkv, %lld, %lld, %lld, %lld, scale, p, keep, seed, stream);",
         a.causal, (long long)a.B, (long long)a.T, (long long)a.C, (long long)a.H);
    kernel_end(G);
}

/* three kernels: dv from P; dS written over P (dead after this node: no
   workspace as large as P); dq and dk from dS */
static void emit_attention_bwd(Gen *G)
{
    const GNode *n = G->n, *f = &G->g->nodes[n->fwd];
    AttDims a = att_dims(f);
    int64_t rows = a.B * a.H * a.T, nv = a.B * a.T * a.C;
    char dims[96];
    snprintf(dims, sizeof dims, "%lld, %lld, %lld, %lld", (long long)a.B, (long long)a.T,
             (long long)a.C, (long long)a.H);
    kernel_begin(G, "attention_bwd_dv", blocks_for(nv), 1, BLOCK, 0,
                 "dv_j (+)= sum_i mask P_ij dy_i; one thread per element of dv");
    out_ptr(G, "dqkv");
    in_ptr(G, "dy", 0);
    ptr(G, "const float", "P", aux_loc(G, f->id), &f->aux, "softmax (before dropout)");
    dropout_params(G, a.p, f->id);
    att_consts(G, &a);
    line(G, "(void)scale;");
    line(G, "kanc_attention_bwd_dv<%d, %d>(dqkv, dy, P, %s, p, keep, seed, stream);", a.causal,
         node_acc(n), dims);
    kernel_end(G);
    kernel_begin(G, "attention_bwd_ds", (unsigned)cdiv(rows, WARPS_PER_BLOCK), 1,
                 32 * WARPS_PER_BLOCK, 1,
                 "dS = P (dP - rowsum(P dP)) / sqrt(D), written over P; one warp per row");
    ptr(G, "float", "PdS", aux_loc(G, f->id), &f->aux, "P in, dS out");
    in_ptr(G, "dy", 0);
    in_ptr(G, "qkv", 1);
    dropout_params(G, a.p, f->id);
    att_consts(G, &a);
    line(G, "kanc_attention_bwd_ds<%d>(PdS, dy, qkv, %s, scale, p, keep, seed, stream);", a.causal, dims);
    kernel_end(G);
    kernel_begin(G, "attention_bwd_dqk", blocks_for(2 * nv), 1, BLOCK, 0,
                 "dq (+)= dS k, dk (+)= dS^T q; one thread per element of dq and dk");
    out_ptr(G, "dqkv");
    ptr(G, "const float", "dS", aux_loc(G, f->id), &f->aux, "dS (over P)");
    in_ptr(G, "qkv", 1);
    line(G, "kanc_attention_bwd_dqk<%d, %d>(dqkv, dS, qkv, %s);", a.causal, node_acc(n), dims);
    kernel_end(G);
}

static void emit_cross_entropy(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(0)->shape), V = shape_last(&IN(0)->shape);
    GShape ls = shape_of(1, N);
    kernel_begin(G, "ce_lse", (unsigned)N, 1, row_threads(V), 1,
                 "lse[r] = log sum exp logits[r, :]; one block per row");
    ptr(G, "float", "lse", aux_loc(G, n->id), &ls, "log-sum-exp");
    in_ptr(G, "logits", 0);
    line(G, "kanc_ce_lse(lse, logits, %lld);", (long long)V);
    kernel_end(G);
    kernel_begin(G, "ce_loss", 1, 1, BLOCK, 1,
                 "loss = mean over rows with a target of lse - logit[target]");
    out_ptr(G, "loss");
    ptr(G, "const float", "lse", aux_loc(G, n->id), &ls, "log-sum-exp");
    in_ptr(G, "logits", 0);
    in_ptr(G, "targets", 1);
    line(G, "kanc_ce_loss(loss, lse, logits, targets, %lldLL, %lld);", (long long)N, (long long)V);
    kernel_end(G);
}

static void emit_ce_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&IN(1)->shape), V = shape_last(&IN(1)->shape);
    GShape ls = shape_of(1, N);
    need_ws(G, 4);
    kernel_begin(G, "ce_bwd_scale", 1, 1, BLOCK, 1, "ws[0] = dloss / (rows with a target)");
    ptr(G, "float", "g", (Loc){AREA_WS, 0}, NULL, NULL);
    in_ptr(G, "dloss", 0);
    in_ptr(G, "targets", 2);
    line(G, "kanc_ce_scale(g, dloss, targets, %lldLL);", (long long)N);
    kernel_end(G);
    kernel_begin(G, "ce_bwd", blocks_for(N * V), 1, BLOCK, 0,
                 "dlogits (+)= g (softmax - onehot(target)); rows without a target: 0");
    out_ptr(G, "dl");
    ptr(G, "const float", "g", (Loc){AREA_WS, 0}, NULL, NULL);
    in_ptr(G, "logits", 1);
    in_ptr(G, "targets", 2);
    ptr(G, "const float", "lse", aux_loc(G, n->fwd), &ls, "log-sum-exp");
    line(G, "kanc_ce_bwd<%d>(dl, g, logits, targets, lse, %lldLL, %lld);", node_acc(n), (long long)N,
         (long long)V);
    kernel_end(G);
}

static void emit_embedding_bwd(Gen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&IN(0)->shape), V = n->shape.d[0], C = shape_last(&n->shape);
    unsigned tpb = 128;
    int64_t cblocks = cdiv(C, tpb), chunks = imax(1, imin(V, EMB_THREADS / (cblocks * tpb)));
    int64_t chunk = cdiv(V, chunks);
    chunks = cdiv(V, chunk);
    kernel_begin(G, "embedding_bwd", (unsigned)cblocks, (unsigned)chunks, tpb, 0,
                 "dw[idx[n], c] += dy[n, c]; thread (column, %lld-row chunk of the vocabulary) "
                 "scans the ids in order: deterministic, no atomics",
                 (long long)chunk);
    out_ptr(G, "dw");
    in_ptr(G, "idx", 0);
    in_ptr(G, "dy", 1);
    line(G, "kanc_embedding_bwd(dw, idx, dy, %lldLL, %lld, %lld, %lld);", (long long)N, (long long)C,
         (long long)V, (long long)chunk);
    kernel_end(G);
}

/* ---- optimizer ---- */

static void emit_grad_norm(Gen *G)
{
    int64_t N = G->p->n_param_elems;
    int parts = sum_parts(N);
    need_ws(G, parts * 8);
    kernel_begin(G, "grad_norm_partial", (unsigned)parts, 1, BLOCK, 1,
                 "ws[block] = partial sums of squares of the whole gradient area (%lld elements)",
                 (long long)N);
    ptr(G, "const float", "g", (Loc){AREA_GRADS, 0}, NULL, NULL);
    ptr(G, "double", "part", (Loc){AREA_WS, 0}, NULL, NULL);
    line(G, "kanc_sum_partial<1>(part, g, %lldLL);", (long long)N);
    kernel_end(G);
    kernel_begin(G, "grad_norm", 1, 1, BLOCK, 1,
                 "norm = sqrt(sum of the %d partials) -> value and scalars->grad_norm", parts);
    out_ptr(G, "y");
    ptr(G, "const double", "part", (Loc){AREA_WS, 0}, NULL, NULL);
    line(G, "double s = kanc_sum_parts(part, %d);", parts);
    line(G, "if (threadIdx.x == 0) {");
    line(G, "    y[0] = (float)sqrt(s);");
    line(G, "    KANC_SCALARS(args)->grad_norm = (float)sqrt(s);");
    line(G, "}");
    kernel_end(G);
}

typedef struct {
    int64_t off, len;
    int decay, count;
    const char *first;
} AdamRange;

static void emit_adamw(Gen *G)
{
    const Graph *g = G->g;
    /* consecutive trainable parameters (in storage order) with the same decay
       flag form one range */
    AdamRange *r = xmalloc(sizeof *r * (size_t)(g->n + 1));
    int nr = 0;
    int64_t total = 0;
    for (int j = 0; j < g->n; j++) {
        const GNode *q = &g->nodes[j];
        if (q->op != OP_PARAM || !q->trainable) continue;
        int64_t len = shape_numel(&q->shape);
        AdamRange *last = nr ? &r[nr - 1] : NULL;
        if (last && last->decay == q->decay && last->off + last->len == G->p->pos[j]) {
            last->len += len;
            last->count++;
        } else {
            r[nr++] = (AdamRange){G->p->pos[j], len, q->decay, 1, q->name};
        }
        total += len;
    }
    /* the ranges as a constant table: one loop in the kernel, not one inlined loop per range */
    if (nr) {
        sb_printf(&G->src, "/* node %d adamw: parameter ranges {offset, elements, weight decay} */\n", n_id(G));
        sb_printf(&G->src, "__constant__ long long n%d_adamw_ranges[%d][3] = {\n", n_id(G), nr);
        for (int i = 0; i < nr; i++)
            sb_printf(&G->src, "    {%lld, %lld, %d}, /* %s%s (%d tensor%s) */\n", (long long)r[i].off,
                   (long long)r[i].len, r[i].decay, r[i].first ? r[i].first : "?",
                   r[i].count > 1 ? " .." : "", r[i].count, r[i].count > 1 ? "s" : "");
        sb_printf(&G->src, "};\n\n");
    }
    kernel_begin(G, "adamw", blocks_for(total), 1, BLOCK, 0,
                 "clip by the global norm (torch clip_grad_norm_), AdamW on every trainable "
                 "parameter (%lld elements in %d ranges)", (long long)total, nr);
    line(G, "KancScalars *sc = KANC_SCALARS(args);");
    line(G, "double gs = 1.0; /* clip scale: clip / (norm + 1e-6) when that is < 1 */");
    line(G, "if (sc->clip > 0.0f) {");
    line(G, "    double c = (double)sc->clip / ((double)sc->grad_norm + 1e-6);");
    line(G, "    if (c < 1.0) gs = c;");
    line(G, "}");
    line(G, "if (blockIdx.x == 0 && threadIdx.x == 0) sc->clip_scale = (float)gs;");
    if (nr) {
        line(G, "double t = (double)(sc->step + 1), lr = sc->lr, b1 = sc->beta1, b2 = sc->beta2;");
        line(G, "float step = (float)(lr / (1.0 - pow(b1, t))), bc2 = (float)sqrt(1.0 - pow(b2, t));");
        line(G, "float decay = (float)(1.0 - lr * sc->weight_decay);");
        line(G, "float *p = (float *)args->params, *m = (float *)args->m, *v = (float *)args->v;");
        line(G, "const float *g = (const float *)args->grads;");
        line(G, "#pragma unroll 1");
        line(G, "for (int r = 0; r < %d; r++) {", nr);
        line(G, "    const long long *q = n%d_adamw_ranges[r];", n_id(G));
        line(G, "    kanc_adamw(p + q[0], g + q[0], m + q[0], v + q[0], q[1], (float)gs, q[2] ? decay : 1.0f, "
                "step, bc2, (float)b1, (float)b2, sc->eps);");
        line(G, "}");
    }
    free(r);
    kernel_end(G);
}

/* ------------------------------------------------------------------------ */
/* driver                                                                    */
/* ------------------------------------------------------------------------ */

static void emit_node(Gen *G, const GNode *n)
{
    G->n = n;
    switch (n->op) {
    case OP_INPUT:
    case OP_PARAM:
    case OP_BUFFER: break;
    case OP_EMBEDDING: emit_embedding(G); break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL: emit_binary(G); break;
    case OP_SCALE: emit_scale(G); break;
    case OP_LINEAR: emit_linear(G); break;
    case OP_KAN: emit_kan(G); break;
    case OP_LAYERNORM: emit_layernorm(G); break;
    case OP_ATTENTION: emit_attention(G); break;
    case OP_GELU:
    case OP_SILU:
    case OP_RELU: emit_activation(G); break;
    case OP_DROPOUT: emit_dropout(G); break;
    case OP_SLICE: emit_slice(G); break;
    case OP_CONCAT: emit_concat(G); break;
    case OP_RESHAPE: emit_copy(G, "reshape"); break;
    case OP_CROSS_ENTROPY: emit_cross_entropy(G); break;
    case OP_SUM: emit_sum(G); break;
    case OP_SEED: emit_seed(G); break;
    case OP_ACC:
    case OP_MUL_BWD: emit_col_reduce(G); break;
    case OP_EMBEDDING_BWD: emit_embedding_bwd(G); break;
    case OP_LINEAR_BWD_X: emit_linear_bwd_x(G); break;
    case OP_LINEAR_BWD_W: emit_linear_bwd_w(G); break;
    case OP_KAN_BWD_X: emit_kan_bwd_x(G); break;
    case OP_KAN_BWD_W: emit_kan_bwd_w(G); break;
    case OP_LAYERNORM_BWD: emit_layernorm_bwd(G); break;
    case OP_ATTENTION_BWD: emit_attention_bwd(G); break;
    case OP_ACT_BWD: emit_act_bwd(G); break;
    case OP_DROPOUT_BWD: emit_dropout_bwd(G); break;
    case OP_SLICE_BWD: emit_slice_bwd(G); break;
    case OP_CE_BWD: emit_ce_bwd(G); break;
    case OP_SUM_BWD: emit_sum_bwd(G); break;
    case OP_GRAD_NORM: emit_grad_norm(G); break;
    case OP_ADAMW: emit_adamw(G); break;
    default: fail(G, "cuda: no kernel for op %s (node %d)", op_name(n->op), n->id);
    }
}

void cuda_options_default(CudaOptions *o)
{
    memset(o, 0, sizeof *o);
    o->tile_m = 64;
    o->tile_n = 64;
    o->tile_k = 32;
    o->use_cublas = 1;
    o->precision = CUDA_FP32;
}

/* Appends embedded file `name`, its quoted includes replaced by their text,
   each file once (the include guards would drop a second copy anyway). */
static int emit_embedded(Gen *G, const char *name, unsigned char *done)
{
    const EmbeddedFile *f = embedded_file(name);
    if (!f) {
        fail(G, "cuda: the library file %s is not embedded in kanc", name);
        return -1;
    }
    int idx = (int)(f - kanc_embedded_files);
    if (done[idx]) return 0;
    done[idx] = 1;
    for (const char *l = f->text; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
        char inc[64];
        if (sscanf(l, "#include \"%63[^\"]\"", inc) == 1) {
            if (emit_embedded(G, inc, done)) return -1;
        } else {
            sb_append(&G->src, l, n);
        }
        l += n;
    }
    return 0;
}

/* The fixed library (cuda/kanc_lib.cuh, self-contained). */
static void emit_library(Gen *G)
{
    unsigned char *done = xcalloc((size_t)kanc_n_embedded_files, 1);
    emit_embedded(G, "kanc_lib.cuh", done);
    free(done);
}

int codegen_cuda(const Plan *p, const CudaOptions *o, CudaProgram *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    Gen G = {.p = p, .g = p->g, .err = err, .errlen = errlen};
    if (o)
        G.o = *o;
    else
        cuda_options_default(&G.o);
    if (p->real_size != 4) {
        snprintf(err, errlen, "cuda: the CUDA target runs in float (plan real size %zu)", p->real_size);
        return -1;
    }
    if (G.o.tile_m < 16 || G.o.tile_m % 16 || G.o.tile_n < 16 || G.o.tile_n % 16 || G.o.tile_k < 1 ||
        G.o.tile_m > 128 || G.o.tile_n > 128 || G.o.tile_k > 64) {
        snprintf(err, errlen,
                 "cuda: tiles %dx%dx%d: tile_m and tile_n must be multiples of 16 in [16, 128], "
                 "tile_k in [1, 64]",
                 G.o.tile_m, G.o.tile_n, G.o.tile_k);
        return -1;
    }
    if (G.o.precision != CUDA_FP32) {
        snprintf(err, errlen, "cuda: only fp32 kernels are implemented (precision %d)", (int)G.o.precision);
        return -1;
    }
    if ((int64_t)G.o.tile_k * (G.o.tile_m + G.o.tile_n + 2) * 4 > SMEM_LIMIT) {
        snprintf(err, errlen, "cuda: tiles %dx%dx%d: the GEMM tile needs more than %d bytes of shared memory",
                 G.o.tile_m, G.o.tile_n, G.o.tile_k, SMEM_LIMIT);
        return -1;
    }
    const Graph *g = p->g;
    sb_printf(&G.src,
           "/* Generated by kanc (compiler/codegen_cuda.c): every kernel of one training step.\n"
           "   %d graph nodes; arena %lld bytes; %lld parameter and %lld buffer elements.\n"
           "   Tiles %d x %d x %d; plain GEMMs %s. */\n\n",
           g->n, (long long)p->arena_bytes, (long long)p->n_param_elems, (long long)p->n_buffer_elems,
           G.o.tile_m, G.o.tile_n, G.o.tile_k,
           G.o.use_cublas ? "as LAUNCH_GEMM for cuBLASLt" : "as generated kernels");
    emit_library(&G);
    sb_printf(&G.src, "\n/* ---- the step's kernels, in execution order ---- */\n\n");
    out->node_first = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    out->node_count = xcalloc((size_t)(g->n ? g->n : 1), sizeof(int));
    for (int i = 0; i < g->n && !G.failed; i++) {
        int first = G.n_launch;
        emit_node(&G, &g->nodes[i]);
        out->node_first[i] = G.n_launch > first ? first : -1;
        out->node_count[i] = G.n_launch - first;
    }
    if (G.failed) {
        free(G.src.s);
        free(G.launch);
        free(out->node_first);
        free(out->node_count);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->source = G.src.s;
    out->n_launch = G.n_launch;
    out->launch = G.launch;
    out->ws_bytes = (G.ws_bytes + 255) / 256 * 256;
    out->n_nodes = g->n;
    return 0;
}

void cuda_program_free(CudaProgram *prog)
{
    free(prog->source);
    free(prog->launch);
    free(prog->node_first);
    free(prog->node_count);
    memset(prog, 0, sizeof *prog);
}
