/* cuda_emit.c: the helpers of cuda_emit.h: storage locations, literals, kernels and launches. */
#include "cuda_emit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void cg_fail(CudaGen *G, const char *fmt, ...)
{
    if (G->failed) return;
    G->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G->err, G->errlen, fmt, ap);
    va_end(ap);
}

void cg_need_ws(CudaGen *G, int64_t bytes)
{
    if (bytes > G->ws_bytes) G->ws_bytes = bytes;
}

/* where node i's value lives (mirrors cpu_exec_value) */
CgLoc cg_value_loc(CudaGen *G, int i)
{
    const GNode *n = &G->g->nodes[i];
    if (n->op == OP_PARAM) return (CgLoc){AREA_PARAMS, G->p->pos[i] * 4};
    if (n->op == OP_BUFFER) return (CgLoc){AREA_BUFFERS, G->p->pos[i] * 4};
    if (G->p->off[i] < 0) cg_fail(G, "cuda: node %d (%s) has no storage", i, op_name(n->op));
    return (CgLoc){AREA_ARENA, G->p->off[i]};
}

/* the gradient of parameter node i */
CgLoc cg_grad_loc(CudaGen *G, int i)
{
    if (G->g->nodes[i].op != OP_PARAM) cg_fail(G, "cuda: node %d is not a parameter", i);
    return (CgLoc){AREA_GRADS, G->p->pos[i] * 4};
}

/* the output of node n: its value, or the gradient of the parameter it targets */
CgLoc cg_out_loc(CudaGen *G, const GNode *n)
{
    if (op_is_backward(n->op) && n->gparam >= 0) return cg_grad_loc(G, n->gparam);
    return cg_value_loc(G, n->id);
}

CgLoc cg_aux_loc(CudaGen *G, int i)
{
    if (G->p->aux_off[i] < 0)
        cg_fail(G, "cuda: node %d (%s) has no aux tensor", i, op_name(G->g->nodes[i].op));
    return (CgLoc){AREA_ARENA, G->p->aux_off[i]};
}

/* exact float and double literals */
const char *cg_flit(char *buf, float v)
{
    snprintf(buf, 32, "%.8ef", (double)v);
    return buf;
}
const char *cg_dlit(char *buf, double v)
{
    snprintf(buf, 32, "%.17e", v);
    return buf;
}

const char *cg_act_short(int act)
{
    switch (act) {
    case ACT_SILU: return "silu";
    case ACT_GELU: return "gelu";
    case ACT_RELU: return "relu";
    default: return "identity";
    }
}

const char *cg_act_name(int act)
{
    switch (act) {
    case ACT_SILU: return "KANC_ACT_SILU";
    case ACT_GELU: return "KANC_ACT_GELU";
    case ACT_RELU: return "KANC_ACT_RELU";
    default: return "KANC_ACT_NONE";
    }
}

/* a line of the kernel body, indented */
void cg_line(CudaGen *G, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_printf(&G->src, "    ");
    sb_vprintf(&G->src, fmt, ap);
    sb_printf(&G->src, "\n");
    va_end(ap);
}

CudaLaunch *cg_add_launch(CudaGen *G, LaunchKind kind, const char *name)
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
void cg_kernel_begin(CudaGen *G, const char *what, unsigned gx, unsigned gy, unsigned block, int sync,
                     const char *note, ...)
{
    snprintf(G->kname, sizeof G->kname, "n%d_%s", G->n->id, what);
    G->ksync = sync;
    if (gy > 65535)
        cg_fail(G, "cuda: node %d: %s needs %u row tiles, over the grid's 65535; use a larger tile_m",
                G->n->id, what, gy);
    CudaLaunch *l = cg_add_launch(G, LAUNCH_KERNEL, G->kname);
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

void cg_kernel_end(CudaGen *G)
{
    sb_printf(&G->src, "}\n#ifdef KANC_EMU\nKANC_EMU_HOST(%s, %d)\n#endif\n\n", G->kname, G->ksync);
}

/* a pointer to a tensor: `const float *x = KANC_PTR(...); / * [shape] name * /` */
void cg_ptr(CudaGen *G, const char *type, const char *var, CgLoc l, const GShape *s, const char *name)
{
    char sb[96];
    sb_printf(&G->src, "    %s *%s = KANC_PTR(%s, args->%s, %lld);", type, var, type, kanc_area_name(l.area),
              (long long)l.off);
    if (s) sb_printf(&G->src, " /* %s%s%s */", cg_shp(s, sb), name ? " " : "", name ? name : "");
    sb_printf(&G->src, "\n");
}

/* input j of the current node, as a const pointer */
void cg_in_ptr(CudaGen *G, const char *var, int j)
{
    const GNode *x = &G->g->nodes[G->n->in[j]];
    cg_ptr(G, x->dtype == DT_I32 ? "const int" : "const float", var, cg_value_loc(G, x->id), &x->shape,
           x->name);
}

/* the node's output */
void cg_out_ptr(CudaGen *G, const char *var)
{
    const GNode *n = G->n;
    const GNode *t = op_is_backward(n->op) && n->gparam >= 0 ? &G->g->nodes[n->gparam] : NULL;
    char note[160];
    snprintf(note, sizeof note, "%s%s%s", t ? "grad of " : "", t ? t->name : "",
             cg_node_acc(n) ? " (accumulate)" : "");
    cg_ptr(G, "float", var, cg_out_loc(G, n), &n->shape, note[0] ? note : NULL);
}

/* the dropout probability p (0 unless training) and stream of node `node` */
void cg_dropout_params(CudaGen *G, double p, int node)
{
    char b[32];
    cg_line(G, "const KancScalars *sc = KANC_SCALARS(args);");
    cg_line(G, "const double p = sc->training ? %s : 0.0;", cg_dlit(b, p));
    cg_line(G, "const uint64_t seed = sc->seed, stream = kanc_dropout_stream(sc->step, %du);", node);
}

/* for (e over n elements) body; the loop variable is e */
void cg_loop(CudaGen *G, int64_t n, const char *body)
{
    cg_line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride())", (long long)n);
    cg_line(G, "    %s", body);
}

CgChunks cg_col_chunks(int64_t rows, int64_t cols)
{
    int64_t want = cg_imax(1, CG_COL_BLOCKS / cg_cdiv(cols, CG_BLOCK));
    int64_t n = cg_imax(1, cg_imin(want, cg_cdiv(rows, 16)));
    CgChunks c = {.chunk = cg_cdiv(rows, n)};
    c.nchunks = (int)cg_cdiv(rows, c.chunk);
    return c;
}

void cg_col_sum(CudaGen *G, const char *what, const CgColSum *q)
{
    CgChunks ch = cg_col_chunks(q->rows, q->nout);
    CgLoc part = {AREA_WS, 0};
    char name[64], b[32];
    cg_need_ws(G, (int64_t)ch.nchunks * q->nout * 8);
    snprintf(name, sizeof name, "%s_partial", what);
    cg_kernel_begin(G, name, (unsigned)cg_cdiv(q->nout, CG_BLOCK), (unsigned)ch.nchunks, CG_BLOCK, 0,
                    "ws[chunk][j] = sum of %s over the chunk's rows of [%lld, %lld]; %d chunks of %lld rows",
                    q->mul ? "dy * other" : "dy", (long long)q->rows, (long long)q->nout, ch.nchunks,
                    (long long)ch.chunk);
    cg_ptr(G, "double", "part", part, NULL, "partial sums (workspace)");
    cg_ptr(G, "const float", "dy", q->dy, NULL, NULL);
    if (q->mul)
        cg_ptr(G, "const float", "other", q->other, NULL, NULL);
    else
        cg_line(G, "const float *other = 0;");
    cg_line(G, "kanc_col_partial<%d>(part, dy, other, %lldLL, %lldLL, %lldLL, %lldLL);", q->mul, (long long)q->rows,
            (long long)q->nout, (long long)q->nother, (long long)ch.chunk);
    cg_kernel_end(G);
    cg_kernel_begin(G, what, cg_blocks_for(q->nout), 1, CG_BLOCK, 0,
                    "out (+)= %s * the %d partial sums of each column", cg_dlit(b, q->s), ch.nchunks);
    cg_ptr(G, "float", "out", q->out, q->out_shape, q->out_note);
    cg_ptr(G, "const double", "part", part, NULL, "partial sums (workspace)");
    cg_line(G, "kanc_col_finish<%d>(out, part, %lldLL, %d, %s);", q->acc, (long long)q->nout, ch.nchunks,
            cg_dlit(b, q->s));
    cg_kernel_end(G);
}

/* ------------------------------------------------------------------------ */
/* GEMM: a LAUNCH_GEMM for cuBLASLt, or a generated tiled kernel             */
/* ------------------------------------------------------------------------ */

void cg_gemm(CudaGen *G, const char *what, const CgGemm *q, const char *note)
{
    char ba[32], bb[32];
    if (G->o.use_cublas) {
        char name[64];
        snprintf(name, sizeof name, "n%d_%s", G->n->id, what);
        CudaLaunch *l = cg_add_launch(G, LAUNCH_GEMM, name);
        l->gemm = (GemmDesc){.trans_a = q->ta,
                             .trans_b = q->tb,
                             .m = q->m,
                             .n = q->n,
                             .k = q->k,
                             .lda = q->lda,
                             .ldb = q->ldb,
                             .ldc = q->ldc,
                             .alpha = q->alpha,
                             .beta = q->beta,
                             .area_a = q->a.area,
                             .area_b = q->b.area,
                             .area_c = q->c.area,
                             .off_a = q->a.off,
                             .off_b = q->b.off,
                             .off_c = q->c.off};
        sb_printf(&G->src,
                  "/* node %d %s: %s\n   launch %s: GEMM for the runtime (cuBLASLt): C[%lld,%lld] = "
                  "%g op(A) op(B) + %g C, trans %d %d, k %lld;\n   A = %s, B = %s, C = %s */\n\n",
                  G->n->id, op_name(G->n->op), note, name, (long long)q->m, (long long)q->n, (double)q->alpha,
                  (double)q->beta, q->ta, q->tb, (long long)q->k, q->na, q->nb, q->nc);
        return;
    }
    int TM = G->o.tile_m, TN = G->o.tile_n, TK = G->o.tile_k;
    cg_kernel_begin(G, what, (unsigned)cg_cdiv(q->n, TN), (unsigned)cg_cdiv(q->m, TM), CG_BLOCK, 1,
                    "%s\n   C[%lld,%lld] = %g op(A) op(B) + %g C, trans %d %d, k %lld", note, (long long)q->m,
                    (long long)q->n, (double)q->alpha, (double)q->beta, q->ta, q->tb, (long long)q->k);
    const char *type[3] = {"const float", "const float", "float"}, *var[3] = {"A", "B", "C"};
    const char *what3[3] = {q->na, q->nb, q->nc};
    CgLoc loc[3] = {q->a, q->b, q->c};
    for (int i = 0; i < 3; i++)
        sb_printf(&G->src, "    %s *%s = KANC_PTR(%s, args->%s, %lld); /* %s */\n", type[i], var[i], type[i],
                  kanc_area_name(loc[i].area), (long long)loc[i].off, what3[i]);
    cg_line(G,
            "kanc_gemm<%d, %d, %d, %d, %d>(A, B, C, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %s, %s);",
            q->ta, q->tb, TM, TN, TK, (long long)q->m, (long long)q->n, (long long)q->k, (long long)q->lda,
            (long long)q->ldb, (long long)q->ldc, cg_flit(ba, q->alpha), cg_flit(bb, q->beta));
    cg_kernel_end(G);
}
