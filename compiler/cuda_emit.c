/* cuda_emit.c: the helpers of cuda_emit.h: storage locations, literals, kernels (one copy of each
 * distinct text) and launches with their arguments. */
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
    case ACT_TANH: return "tanh";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_EXP: return "exp";
    case ACT_LOG: return "log";
    case ACT_ABS: return "abs";
    case ACT_RECIP: return "recip";
    default: return "identity";
    }
}

const char *cg_act_name(int act)
{
    switch (act) {
    case ACT_SILU: return "KANC_ACT_SILU";
    case ACT_GELU: return "KANC_ACT_GELU";
    case ACT_RELU: return "KANC_ACT_RELU";
    case ACT_TANH: return "KANC_ACT_TANH";
    case ACT_SIGMOID: return "KANC_ACT_SIGMOID";
    case ACT_EXP: return "KANC_ACT_EXP";
    case ACT_LOG: return "KANC_ACT_LOG";
    case ACT_ABS: return "KANC_ACT_ABS";
    case ACT_RECIP: return "KANC_ACT_RECIP";
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

int cg_arg(CudaGen *G, int area, int64_t value)
{
    CudaLaunch *l = &G->launch[G->klaunch];
    if (l->n_args == KANC_MAX_LAUNCH_ARGS) {
        cg_fail(G, "cuda: node %d: kernel %s needs more than %d launch arguments (KANC_MAX_LAUNCH_ARGS)",
                G->n->id, G->kwhat, KANC_MAX_LAUNCH_ARGS);
        return 0;
    }
    l->arg[l->n_args] = (CudaArg){area, value};
    return l->n_args++;
}

/* the node's label for comments: its name, or its forward node's */
static const char *node_label(const CudaGen *G, const GNode *n)
{
    const char *label = n->name;
    if (!label && n->fwd >= 0) label = G->g->nodes[n->fwd].name;
    return label;
}

void cg_kernel_begin(CudaGen *G, const char *what, unsigned gx, unsigned gy, unsigned block, int sync,
                     const char *note, ...)
{
    snprintf(G->kwhat, sizeof G->kwhat, "%s", what);
    G->ksync = sync;
    G->kblock = block;
    if (gy > 65535)
        cg_fail(G, "cuda: node %d: %s needs %u row tiles, over the grid's 65535; use a larger tile_m",
                G->n->id, what, gy);
    G->klaunch = G->n_launch;
    CudaLaunch *l = cg_add_launch(G, LAUNCH_KERNEL, what);
    l->grid[0] = gx;
    l->grid[1] = gy;
    l->block[0] = block;
    G->khead = (StrBuf){0};
    va_list ap;
    va_start(ap, note);
    sb_vprintf(&G->khead, note, ap);
    va_end(ap);
    /* the body goes to a buffer of its own until cg_kernel_end knows whether it is new */
    G->outer = G->src;
    G->src = (StrBuf){0};
}

/* text without its comments (the generator writes no string literals) */
static char *strip_comments(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1), *w = out;
    for (const char *p = s; *p;) {
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n') p++;
        } else {
            *w++ = *p++;
        }
    }
    *w = 0;
    return out;
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void cg_kernel_end(CudaGen *G)
{
    StrBuf body = G->src;
    G->src = G->outer;
    G->outer = (StrBuf){0};
    if (!body.s) sb_puts(&body, "");
    char *key = strip_comments(body.s);
    uint64_t h = text_hash(key);
    CgKernel *k = NULL;
    for (int i = 0; i < G->n_kern && !k; i++) {
        CgKernel *c = &G->kern[i];
        if (c->hash == h && c->block == G->kblock && c->sync == G->ksync && !strcmp(c->key, key)) k = c;
    }
    if (k) {
        free(key);
        free(body.s);
        free(G->khead.s);
    } else {
        if (G->n_kern == G->cap_kern) {
            G->cap_kern = G->cap_kern ? 2 * G->cap_kern : 32;
            G->kern = xrealloc(G->kern, sizeof *G->kern * (size_t)G->cap_kern);
        }
        k = &G->kern[G->n_kern];
        *k = (CgKernel){.block = G->kblock, .sync = G->ksync, .key = key, .hash = h, .head = G->khead.s,
                        .body = body.s, .at = G->src.n};
        snprintf(k->name, sizeof k->name, "k%d_%s", G->n_kern, G->kwhat);
        G->n_kern++;
    }
    G->khead = (StrBuf){0};
    CudaLaunch *l = &G->launch[G->klaunch];
    snprintf(l->name, sizeof l->name, "%s", k->name);
    const char *label = node_label(G, G->n);
    char shp[96];
    sb_printf(&k->users, "     launch %d: node %d %s%s%s%s %s, grid (%u, %u)\n", G->klaunch, G->n->id,
              op_name(G->n->op), label ? " (" : "", label ? label : "", label ? ")" : "", cg_shp(&G->n->shape, shp),
              l->grid[0], l->grid[1]);
    k->n_users++;
}

char *cg_assemble(CudaGen *G)
{
    StrBuf out = {0};
    size_t done = 0;
    const char *src = G->src.s ? G->src.s : "";
    for (int i = 0; i < G->n_kern; i++) {
        const CgKernel *k = &G->kern[i];
        sb_append(&out, src + done, k->at - done);
        done = k->at;
        sb_printf(&out, "/* %s: %s\n   block %u; %d launch%s:\n%s*/\n", k->name, k->head ? k->head : "", k->block,
                  k->n_users, k->n_users == 1 ? "" : "es", k->users.s ? k->users.s : "");
        sb_printf(&out,
                  "extern \"C\" __global__ void __launch_bounds__(%u) %s(const KancArgs *args, const KancLaunchArgs la)\n"
                  "{\n%s}\n#ifdef KANC_EMU\nKANC_EMU_HOST(%s, %d)\n#endif\n\n",
                  k->block, k->name, k->body, k->name, k->sync);
    }
    sb_puts(&out, src + done);
    return out.s;
}

void cg_free_kernels(CudaGen *G)
{
    for (int i = 0; i < G->n_kern; i++) {
        free(G->kern[i].key);
        free(G->kern[i].head);
        free(G->kern[i].body);
        free(G->kern[i].users.s);
    }
    free(G->kern);
    G->kern = NULL;
    G->n_kern = G->cap_kern = 0;
    free(G->outer.s);
    free(G->khead.s);
    G->outer = G->khead = (StrBuf){0};
}

/* a pointer to a tensor, a launch argument: `const float *x = KANC_LA_PTR(const float, la, 2); / * [shape] name * /` */
void cg_ptr(CudaGen *G, const char *type, const char *var, CgLoc l, const GShape *s, const char *name)
{
    char sb[96];
    int a = cg_arg(G, l.area, l.off);
    sb_printf(&G->src, "    %s *%s = KANC_LA_PTR(%s, la, %d);", type, var, type, a);
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

/* the dropout probability p (0 unless training) and stream of node `node`
   (the node id is a launch argument: one kernel serves every dropout of a shape) */
void cg_dropout_params(CudaGen *G, double p, int node)
{
    char b[32];
    int a = cg_arg(G, CUDA_ARG_INT, node);
    cg_line(G, "const KancScalars *sc = KANC_SCALARS(args);");
    cg_line(G, "const double p = sc->training ? %s : 0.0;", cg_dlit(b, p));
    cg_line(G, "const uint64_t seed = sc->seed, stream = kanc_dropout_stream(sc->step, (uint32_t)la.v[%d]); "
               "/* node %d */", a, node);
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

int64_t cg_cast_bf16(CudaGen *G, const char *what, CgLoc src, int64_t rows, int64_t cols, int64_t ld, int64_t at,
                     const char *name)
{
    int64_t ld16 = cg_cdiv(cols, 8) * 8;
    char a1[32], a2[32], a3[32], a4[32];
    cg_kernel_begin(G, "gemm_cast_bf16", cg_blocks_for(rows * cols), 1, CG_BLOCK, 0,
                    "a GEMM operand [rows, cols] (row stride ld) in fp32 -> bf16 (round to nearest even, "
                    "rows padded to 16 bytes); first: %s [%lld, %lld] for %s", name, (long long)rows,
                    (long long)cols, what);
    cg_ptr(G, "__nv_bfloat16", "dst", (CgLoc){CG_AREA_CAST, at}, NULL, "its bf16 copy (workspace)");
    cg_ptr(G, "const float", "src", src, NULL, name);
    snprintf(a1, sizeof a1, "(long long)la.v[%d]", cg_arg(G, CUDA_ARG_INT, rows));
    snprintf(a2, sizeof a2, "(long long)la.v[%d]", cg_arg(G, CUDA_ARG_INT, cols));
    snprintf(a3, sizeof a3, "(long long)la.v[%d]", cg_arg(G, CUDA_ARG_INT, ld));
    snprintf(a4, sizeof a4, "(long long)la.v[%d]", cg_arg(G, CUDA_ARG_INT, ld16));
    cg_line(G, "kanc_cast_bf16_rows(dst, src, %s, %s, %s, %s);", a1, a2, a3, a4);
    cg_kernel_end(G);
    return ld16;
}

/* One bf16 GEMM launch (its operands already bf16). */
static void bf16_gemm_launch(CudaGen *G, const char *what, const CgGemm *q, const char *note, int part, int parts)
{
    char name[64];
    if (parts > 1)
        snprintf(name, sizeof name, "n%d_%s_%d", G->n->id, what, part);
    else
        snprintf(name, sizeof name, "n%d_%s", G->n->id, what);
    CudaLaunch *l = cg_add_launch(G, LAUNCH_GEMM, name);
    l->gemm = (GemmDesc){.trans_a = q->ta, .trans_b = q->tb, .m = q->m, .n = q->n, .k = q->k,
                         .lda = q->lda, .ldb = q->ldb, .ldc = q->ldc, .alpha = q->alpha, .beta = q->beta,
                         .area_a = q->a.area, .area_b = q->b.area, .area_c = q->c.area,
                         .off_a = q->a.off, .off_b = q->b.off, .off_c = q->c.off,
                         .type_a = GEMM_BF16, .type_b = GEMM_BF16};
    sb_printf(&G->src,
              "/* node %d %s: %s%s\n   launch %s: GEMM for the runtime (cuBLASLt): C[%lld,%lld] = "
              "%g op(A) op(B) + %g C, trans %d %d, k %lld; A, B bf16, C fp32, fp32 accumulation;\n"
              "   A = %s, B = %s, C = %s */\n\n",
              G->n->id, op_name(G->n->op), note, parts > 1 ? " (a part of the operand copies' size)" : "", name,
              (long long)q->m, (long long)q->n, (double)q->alpha, (double)q->beta, q->ta, q->tb, (long long)q->k,
              q->na, q->nb, q->nc);
}

int64_t cg_bf16_copy_bytes(int64_t rows, int64_t cols) { return cg_cdiv(rows * cg_cdiv(cols, 8) * 8 * 2, 256) * 256; }

/* An operand of a bf16 GEMM: its stored matrix, the GEMM dimension of its rows
   and of its columns (0 m, 1 n, 2 k), whether it is stored in bf16 already. */
typedef struct {
    CgLoc loc;
    int64_t ld;
    int rdim, cdim;
    int bf16;
    const char *name;
} Bf16Operand;

/* Under CUDA_BF16: the operands' fp32 copies in parts of at most
   CudaOptions.gemm_copy_bytes. When both copies fit, one cast per operand and
   one GEMM. Otherwise the GEMM is split along one of m, n, k (the split
   leaving the fewest parts): an operand that does not span the split
   dimension is copied once, the others part by part, each part a GEMM of its
   own (along k: beta 1 after the first part, the fp32 C accumulating). */
static void cg_gemm_bf16(CudaGen *G, const char *what, const CgGemm *q, const char *note)
{
    int64_t dim[3] = {q->m, q->n, q->k};
    Bf16Operand op[2] = {{q->a, q->lda, q->ta ? 2 : 0, q->ta ? 0 : 2, q->type_a == GEMM_BF16, q->na},
                         {q->b, q->ldb, q->tb ? 1 : 2, q->tb ? 2 : 1, q->type_b == GEMM_BF16, q->nb}};
    if (!q->m || !q->n) { /* nothing to compute: the runtime skips it */
        CgGemm b = *q;
        bf16_gemm_launch(G, what, &b, note, 0, 1);
        return;
    }
    /* the split: per dimension d, the bytes of the copies that do not span d
       (made once) and of those that do, per unit of d */
    int best = -1;
    int64_t best_parts = 0, best_chunk = 0;
    int64_t budget = G->o.gemm_copy_bytes > 0 ? G->o.gemm_copy_bytes : INT64_MAX / 4;
    int64_t whole = 0;
    for (int i = 0; i < 2; i++)
        if (!op[i].bf16) whole += cg_bf16_copy_bytes(dim[op[i].rdim], dim[op[i].cdim]);

    if (whole > budget) {
        for (int d = 0; d < 3; d++) {
            int64_t fixed = 0, unit = 0;
            for (int i = 0; i < 2; i++) {
                if (op[i].bf16) continue;
                int64_t r = dim[op[i].rdim], c = dim[op[i].cdim];
                if (op[i].rdim == d) unit += cg_cdiv(c, 8) * 8 * 2;
                else if (op[i].cdim == d) unit += r * 2; /* about: the padding of a column part aside */
                else fixed += cg_bf16_copy_bytes(r, c);
            }
            if (!unit) continue;
            int64_t chunk = (budget - fixed - 512) / unit / 16 * 16;
            if (chunk < 16) continue;
            chunk = cg_imin(chunk, dim[d]);
            int64_t parts = cg_cdiv(dim[d], chunk);
            if (best < 0 || parts < best_parts) best = d, best_parts = parts, best_chunk = chunk;
        }
        if (best < 0) { /* even 16 units of k do not fit: take them anyway */
            best = 2, best_chunk = cg_imin(16, q->k), best_parts = cg_cdiv(q->k, best_chunk);
        }
    } else {
        best = 2, best_chunk = q->k, best_parts = 1;
    }
    /* the copies that do not span the split dimension, once (all of them when unsplit) */
    int64_t at = 0, ld16[2] = {op[0].ld, op[1].ld};
    CgLoc copy[2] = {op[0].loc, op[1].loc};
    for (int i = 0; i < 2; i++) {
        if (op[i].bf16 || (best_parts > 1 && (op[i].rdim == best || op[i].cdim == best))) continue;
        int64_t r = dim[op[i].rdim], c = dim[op[i].cdim];
        ld16[i] = cg_cast_bf16(G, what, op[i].loc, r, c, op[i].ld, at, op[i].name);
        copy[i] = (CgLoc){CG_AREA_CAST, at};
        at += cg_bf16_copy_bytes(r, c);
    }
    int64_t part0 = at;
    int split = best_parts > 1 ? best : -1; /* the dimension cut into parts, -1: none */
    for (int64_t p = 0; p < best_parts; p++) {
        int64_t u0 = p * best_chunk, un = cg_imin(best_chunk, dim[best] - u0);
        CgGemm b = *q;
        b.m = best == 0 ? un : q->m;
        b.n = best == 1 ? un : q->n;
        b.k = best == 2 ? un : q->k;
        if (best == 2 && p) b.beta = 1;
        if (split == 0) b.c.off += u0 * q->ldc * 4;
        if (split == 1) b.c.off += u0 * 4;
        at = part0;
        for (int i = 0; i < 2; i++) {
            int64_t r = dim[op[i].rdim], c = dim[op[i].cdim], off = 0;
            int cut_rows = op[i].rdim == split, cut_cols = op[i].cdim == split;
            if (!cut_rows && !cut_cols) { /* whole: its copy from above, or itself in bf16 */
                if (i == 0) b.a = copy[0], b.lda = ld16[0]; else b.b = copy[1], b.ldb = ld16[1];
                continue;
            }
            if (cut_rows) r = un, off = u0 * op[i].ld;
            if (cut_cols) c = un, off = u0;
            CgLoc loc = op[i].loc;
            int64_t ld = op[i].ld;
            if (op[i].bf16) { /* a part of a bf16 operand: no copy */
                loc.off += off * 2;
            } else {
                CgLoc src = {loc.area, loc.off + off * 4};
                ld = cg_cast_bf16(G, what, src, r, c, op[i].ld, at, op[i].name);
                loc = (CgLoc){CG_AREA_CAST, at};
                at += cg_bf16_copy_bytes(r, c);
            }
            if (i == 0) b.a = loc, b.lda = ld; else b.b = loc, b.ldb = ld;
        }
        if (at > G->cast_bytes) G->cast_bytes = at;
        bf16_gemm_launch(G, what, &b, note, (int)p, (int)best_parts);
    }
}

void cg_gemm(CudaGen *G, const char *what, const CgGemm *q, const char *note)
{
    char ba[32], bb[32];
    if (G->o.precision == CUDA_BF16 && G->o.use_cublas) {
        cg_gemm_bf16(G, what, q, note);
        return;
    }
    if (q->type_a != GEMM_F32 || q->type_b != GEMM_F32) {
        cg_fail(G, "cuda: node %d: GEMM %s has a bf16 operand in an fp32 step", G->n->id, what);
        return;
    }
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
        sb_printf(&G->src, "    %s *%s = KANC_LA_PTR(%s, la, %d); /* %s */\n", type[i], var[i], type[i],
                  cg_arg(G, loc[i].area, loc[i].off), what3[i]);
    cg_line(G,
            "kanc_gemm<%d, %d, %d, %d, %d>(A, B, C, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %lldLL, %s, %s);",
            q->ta, q->tb, TM, TN, TK, (long long)q->m, (long long)q->n, (long long)q->k, (long long)q->lda,
            (long long)q->ldb, (long long)q->ldc, cg_flit(ba, q->alpha), cg_flit(bb, q->beta));
    cg_kernel_end(G);
}
