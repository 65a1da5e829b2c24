/* attention.c: causal multi-head self-attention on a fused qkv (minGPT), and
   rotary position embeddings (RoPE) as an op of their own that attention's
   rope = true puts before it. */
#include <stdio.h>

#include <math.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

/* [B, T, C]: two T x T x C products per batch forward, four backward */
static double attention_flops(const Graph *g, const GNode *n)
{
    const GShape *s = &(n->fwd >= 0 ? &g->nodes[n->fwd] : n)->shape;
    double two = 2 * (double)s->d[0] * (double)s->d[1] * (double)s->d[1] * (double)s->d[2];
    return n->op == OP_ATTENTION ? 2 * two : 4 * two;
}

/* per score (B H T T): forward scale, max, exp(s - max), sum, divide (6),
   dropout on P (1); backward P (dP - rowsum(P dP)) (4), scale (1), dropout (1).
   The causal mask's skipped half is counted as the products count it: whole. */
static double attention_arith(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    const GShape *s = &f->shape;
    double scores = (double)s->d[0] * (double)f->a.heads * (double)s->d[1] * (double)s->d[1];
    double drop = f->a.p > 0;
    return scores * (n->op == OP_ATTENTION ? 6 + drop : 5 + drop);
}

/* rope: per rotated element two products and a sum, and its pair's cos and
   sin once per two elements (1); a copied column costs nothing */
static double rope_arith(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    return 4 * (double)shape_rows(&f->shape) * (double)f->a.len;
}

static double attention_family_arith(const Graph *g, const GNode *n)
{
    return n->op == OP_ROPE || n->op == OP_ROPE_BWD ? rope_arith(g, n) : attention_arith(g, n);
}

static double attention_family_flops(const Graph *g, const GNode *n)
{
    return n->op == OP_ROPE || n->op == OP_ROPE_BWD ? 0 : attention_flops(g, n);
}

static int64_t attention_aux_bytes_bf16(const GNode *n);

const OpFamily op_family_attention = {.name = "attention", .flops = attention_family_flops,
                                      .elementwise_flops = attention_family_arith,
                                      .aux_bytes_bf16 = attention_aux_bytes_bf16};

/* the rope node on x [..., T, W]: rotates the first `cols` columns, `groups`
   heads of D = cols / groups (even) each; -1 after an error */
static int emit_rope(Elab *E, Args *A, int x, int64_t groups, int64_t cols, double base)
{
    GAttr at = {.heads = (int)groups, .len = cols, .rope_base = base};
    return el_emit(E, A->call, A->scope, OP_ROPE, &x, 1, el_tshape(E, x), &at);
}

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

/* attention(qkv [B, T, 3C], heads): multi-head self-attention. A causal one
   also makes minGPT's mask buffer `bias` [1, 1, T, T] in the current scope.
   rope = true rotates q and k first (a rope node on qkv's first 2C columns). */
static Value L_attention(Elab *E, Args *A)
{
    int qkv, causal, rope;
    int64_t H;
    double p, base;
    if (!el_arg_real(E, A, 0, 1, &qkv) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &H) ||
        !el_arg_bool(E, A, 2, 1, &causal) || !el_arg_prob(E, A, 3, &p) || !el_arg_bool(E, A, 4, 0, &rope) ||
        !el_arg_num(E, A, 5, 10000.0, &base))
        return VERR;
    if (!(base > 1)) return el_bad_arg(E, A, 5, "must be greater than 1"), VERR;
    if (A->given[5] && !rope)
        return el_err(E, el_arg_loc(A, 5), "'%s': rope_base is given but rope is false", A->callee);
    GShape s = el_tshape(E, qkv);
    if (s.nd != 3 || s.d[2] % 3)
        return el_err(E, el_arg_loc(A, 0), "argument 'qkv' of '%s' must have shape [B, T, 3*C], got %s",
                      A->callee, el_shape_text(E, &s));
    int64_t B = s.d[0], T = s.d[1], C = s.d[2] / 3;
    if (C % H)
        return el_err(E, el_arg_loc(A, 1), "'%s': the width C = %lld is not divisible by heads = %lld",
                      A->callee, (long long)C, (long long)H);
    if (rope && (C / H) % 2)
        return el_err(E, el_arg_loc(A, 4), "'%s': rope needs an even head width, got C / heads = %lld",
                      A->callee, (long long)(C / H));
    if (rope && (qkv = emit_rope(E, A, qkv, 2 * H, 2 * C, base)) < 0) return VERR;
    if (causal) {
        int mask = el_buffer(E, A, "bias", shape_of(4, (int64_t)1, (int64_t)1, T, T), INIT_TRIL);
        if (mask < 0) return VERR;
        el_graph(E)->nodes[mask].optional = 1;
    }
    GAttr at = {.heads = (int)H, .causal = causal, .p = p};
    GShape aux = shape_of(4, B, H, T, T);
    if (!el_shape_ok(E, A->call, &aux)) return VERR;
    int y = el_emit(E, A->call, A->scope, OP_ATTENTION, &qkv, 1, shape_of(3, B, T, C), &at);
    if (y >= 0) {
        el_graph(E)->nodes[y].aux = aux;
        el_graph(E)->nodes[y].aux_numel = shape_numel(&aux);
    }
    return vnode(y);
}

const Builtin layer_attention = {"attention",
                                 L_attention,
                                 2,
                                 0,
                                 1,
                                 "attention(qkv, heads, causal = true, dropout = 0.0, rope = false, rope_base = 10000.0)",
                                 {"qkv", "heads", "causal", "dropout", "rope", "rope_base"}};

/* rope(x [..., T, C], heads, base): the rotary embedding of every head of x
   (for q or k held apart from each other) */
static Value L_rope(Elab *E, Args *A)
{
    int x;
    int64_t H;
    double base;
    if (!el_arg_real(E, A, 0, 2, &x) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &H) ||
        !el_arg_num(E, A, 2, 10000.0, &base))
        return VERR;
    if (!(base > 1)) return el_bad_arg(E, A, 2, "must be greater than 1"), VERR;
    GShape s = el_tshape(E, x);
    int64_t C = shape_last(&s);
    if (C % H || (C / H) % 2)
        return el_err(E, el_arg_loc(A, 1), "'%s': the width C = %lld must split into heads = %lld of an even width",
                      A->callee, (long long)C, (long long)H);
    return vnode(emit_rope(E, A, x, H, C, base));
}

const Builtin layer_rope = {"rope", L_rope, 2, 0, 1, "rope(x, heads, base = 10000.0)", {"x", "heads", "base"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

void op_vjp_attention(AdCtx *ad, const GNode *n, int dy)
{
    GAttr a = n->a;
    a.acc = 0;
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ATTENTION_BWD, (int[]){dy, n->in[0]}, 2, a);
}

/* the inverse rotation of dy (a rotation's transpose) */
void op_vjp_rope(AdCtx *ad, const GNode *n, int dy)
{
    GAttr a = n->a;
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ROPE_BWD, &dy, 1, a);
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

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
static void att_consts(CudaGen *G, const AttDims *a)
{
    char b1[32], b2[32];
    cg_line(G, "const float scale = %s, keep = %s; /* 1/sqrt(D), 1/(1-p) */",
            cg_flit(b1, (float)(1.0 / sqrt((double)(a->C / a->H)))), cg_flit(b2, cg_keep_scale(a->p)));
}

/* Attention on cuBLASLt when GEMMs go there (CudaOptions.use_cublas) and
   there is no dropout: the products as strided-batched GEMMs (per head,
   batched over B: cuBLASLt takes one stride, and qkv's heads and batches
   stride differently), softmax and its backward as kernels. With dropout the
   fused kernels below stay (a dropped copy of P would be another tensor as
   large as P), and they are the path for generated GEMMs (use_cublas 0). */
static int att_on_gemms(const CudaGen *G, const AttDims *a) { return G->o.use_cublas && a->p == 0; }

/* An operand of attention's products: `off` elements into loc, rows ld apart,
   the batch's matrices stride apart; fp32 in place, or (under bf16, as cg_gemm's
   operands) a bf16 copy in the operand copies (CG_AREA_CAST) that a cast kernel
   writes just before the products that read it: qkv and dy whole, [B T, W] with
   rows padded to 16 bytes, once per node; P (or dS over it) a head at a time. */
typedef struct {
    CgLoc loc;
    int64_t off, ld, stride;
    int type; /* GemmType */
} AttMat;

/* the token rows [B T, W] at src (qkv or dy) as an operand, itself or its bf16
   copy at byte *at of the copies (then *at moves past it) */
static AttMat att_tokens(CudaGen *G, const char *what, CgLoc src, const AttDims *a, int64_t W, int64_t *at,
                         const char *name)
{
    AttMat m = {src, 0, W, a->T * W, GEMM_F32};
    if (G->o.precision != CUDA_BF16) return m;
    m.ld = cg_cast_bf16(G, what, src, a->B * a->T, W, W, *at, name);
    m = (AttMat){{CG_AREA_CAST, *at}, 0, m.ld, a->T * m.ld, GEMM_BF16};
    *at += cg_bf16_copy_bytes(a->B * a->T, W);
    if (*at > G->cast_bytes) G->cast_bytes = *at;
    return m;
}

/* the columns from col of a token operand: a head's q, k or v (or dy) */
static AttMat att_cols(AttMat m, int64_t col)
{
    m.off += col;
    return m;
}

/* Under bf16, the GEMM path (no dropout) stores P in bf16 as the node's aux,
   rows padded to att_p_ld elements (16 bytes, as cuBLASLt's bf16 operands
   need), so the softmax kernels write the GEMMs' operands themselves and no
   cast touches P or dS; a plan for bf16 (plan_build_for) gives the aux these
   bytes only, half the fp32 P's. Padded rows fit the fp32 P's bytes for T >= 4;
   below that P stays fp32 with per-head copies. */
static int64_t att_p_ld(const AttDims *a) { return cg_cdiv(a->T, 8) * 8; }
static int att_p_storable(const AttDims *a) { return a->p == 0 && att_p_ld(a) * 2 <= a->T * 4; }
static int att_p_bf16(const CudaGen *G, const AttDims *a)
{
    return G->o.precision == CUDA_BF16 && att_p_storable(a);
}

static int64_t attention_aux_bytes_bf16(const GNode *n)
{
    if (n->op != OP_ATTENTION) return 0;
    AttDims a = att_dims(n);
    return att_p_storable(&a) ? a.B * a.H * a.T * att_p_ld(&a) * 2 : 0;
}

/* head h of P (or dS) [B, H, T, T] as an operand: itself (fp32, or bf16 with
   att_p_bf16), or a bf16 copy of its B matrices at byte `at` of the copies */
static AttMat att_head(CudaGen *G, const char *what, CgLoc P, const AttDims *a, int64_t h, int64_t at,
                       const char *name)
{
    int64_t TT = a->T * a->T, pl = att_p_ld(a);
    if (att_p_bf16(G, a)) return (AttMat){P, h * a->T * pl, pl, a->H * a->T * pl, GEMM_BF16};
    AttMat m = {P, h * TT, a->T, a->H * TT, GEMM_F32};
    if (G->o.precision != CUDA_BF16) return m;
    int64_t ld = cg_cast_bf16(G, what, (CgLoc){P.area, P.off + h * TT * 4}, a->B, TT, a->H * TT, at, name);
    if (at + cg_bf16_copy_bytes(a->B, TT) > G->cast_bytes) G->cast_bytes = at + cg_bf16_copy_bytes(a->B, TT);
    return (AttMat){{CG_AREA_CAST, at}, 0, a->T, ld, GEMM_BF16};
}

/* a strided-batched GEMM for the runtime: C = alpha op(A) op(B) + beta C per
   batch; m gives the shape, transposes, scalars, batch and C's ldc, stride and
   byte offset from c */
static void att_gemm(CudaGen *G, const char *what, int h, GemmDesc m, AttMat a, AttMat b, CgLoc c,
                     const char *note)
{
    char name[64];
    snprintf(name, sizeof name, "n%d_%s_h%d", G->n->id, what, h);
    m.area_a = a.loc.area, m.off_a = a.loc.off + a.off * gemm_type_size(a.type), m.lda = a.ld;
    m.stride_a = a.stride, m.type_a = a.type;
    m.area_b = b.loc.area, m.off_b = b.loc.off + b.off * gemm_type_size(b.type), m.ldb = b.ld;
    m.stride_b = b.stride, m.type_b = b.type;
    m.area_c = c.area, m.off_c += c.off;
    CudaLaunch *l = cg_add_launch(G, LAUNCH_GEMM, name);
    l->gemm = m;
    sb_printf(&G->src,
              "/* node %d %s: %s, head %d\n   launch %s: strided-batched GEMM for the runtime (cuBLASLt): %d x "
              "C[%lld,%lld] = %g op(A) op(B) + %g C, trans %d %d, k %lld; A, B %s, C fp32 */\n\n",
              G->n->id, op_name(G->n->op), note, h, name, m.batch, (long long)m.m, (long long)m.n,
              (double)m.alpha, (double)m.beta, m.trans_a, m.trans_b, (long long)m.k, gemm_type_name(a.type));
}

/* the softmax kernel over P, in place (all heads), or (att_p_bf16) from
   head h's scores in the workspace into its bf16 P */
static void att_softmax(CudaGen *G, const AttDims *a, CgLoc P, int64_t h)
{
    const GNode *n = G->n;
    int64_t B = a->B, T = a->T, H = a->H, TT = T * T, ld = att_p_ld(a);
    int bf = att_p_bf16(G, a);
    int64_t rows = bf ? B * T : B * H * T;
    char s1[96];
    cg_kernel_begin(G, "attention_softmax", (unsigned)cg_cdiv(rows, CG_WARPS_PER_BLOCK), 1, 32 * CG_WARPS_PER_BLOCK,
                    1, "%s softmax of the scores: P%s%s; one warp per row", a->causal ? "causal" : "bidirectional",
                    cg_shp(&n->aux, s1), bf ? " in bf16 (rows padded to 16 bytes), from one head's scores" : " in place");
    if (bf) {
        GShape ss = shape_of(3, B, T, T);
        cg_ptr(G, "__nv_bfloat16", "P", (CgLoc){P.area, P.off + h * T * ld * 2}, NULL, "the head's P, bf16");
        cg_ptr(G, "float", "S", (CgLoc){AREA_WS, 0}, &ss, "the head's scores (workspace)");
        cg_line(G, "kanc_attention_softmax<%d>(P, S, %lld, 1, %lld, %lldLL, 0LL, %lldLL, 0LL, %lld);", a->causal,
                (long long)B, (long long)T, (long long)TT, (long long)(H * T * ld), (long long)ld);
    } else {
        cg_ptr(G, "float", "P", P, &n->aux, "scores in, softmax out");
        cg_line(G, "kanc_attention_softmax<%d>(P, P, %lld, %lld, %lld, %lldLL, %lldLL, %lldLL, %lldLL, %lld);",
                a->causal, (long long)B, (long long)H, (long long)T, (long long)(H * TT), (long long)TT,
                (long long)(H * TT), (long long)TT, (long long)T);
    }
    cg_kernel_end(G);
}

/* y_h = P_h v_h */
static void att_pv(CudaGen *G, const AttDims *a, CgLoc P, AttMat qkv, CgLoc y, int64_t h, int64_t at)
{
    int64_t T = a->T, C = a->C, D = C / a->H;
    att_gemm(G, "attention_pv", (int)h,
             (GemmDesc){.m = T, .n = D, .k = T, .ldc = C, .alpha = 1, .off_c = h * D * 4, .batch = (int)a->B,
                        .stride_c = T * C},
             att_head(G, "attention_pv", P, a, h, at, "P"), att_cols(qkv, 2 * C + h * D), y, "y = P v");
}

/* forward: S_h = q_h k_h^T / sqrt(D) into P (per head), softmax in place, y_h = P_h v_h;
   with att_p_bf16 head by head: S_h into the workspace, its softmax into P_h (bf16), y_h */
static void att_fwd_gemms(CudaGen *G, const AttDims *a)
{
    const GNode *n = G->n;
    int64_t B = a->B, T = a->T, C = a->C, H = a->H, D = C / H, C3 = 3 * C;
    CgLoc P = cg_aux_loc(G, n->id), y = cg_out_loc(G, n), ws = {AREA_WS, 0};
    int64_t at = 0; /* the operand copies (bf16) */
    AttMat qkv = att_tokens(G, "attention", cg_value_loc(G, n->in[0]), a, C3, &at, "qkv");
    float scale = (float)(1.0 / sqrt((double)D));
    int bf = att_p_bf16(G, a);
    if (bf) cg_need_ws(G, B * T * T * 4);
    for (int64_t h = 0; h < H; h++) {
        att_gemm(G, "attention_qk", (int)h,
                 (GemmDesc){.trans_b = 1, .m = T, .n = T, .k = D, .ldc = T, .alpha = scale,
                            .off_c = bf ? 0 : h * T * T * 4, .batch = (int)B, .stride_c = bf ? T * T : H * T * T},
                 att_cols(qkv, h * D), att_cols(qkv, C + h * D), bf ? ws : P,
                 bf ? "S = q k^T / sqrt(D) (workspace)" : "S = q k^T / sqrt(D) into P");
        if (bf) {
            att_softmax(G, a, P, h);
            att_pv(G, a, P, qkv, y, h, at);
        }
    }
    if (bf) return;
    att_softmax(G, a, P, 0);
    for (int64_t h = 0; h < H; h++) att_pv(G, a, P, qkv, y, h, at);
}

/* backward: dv_h (+)= P_h^T dy_h for every head (before dS overwrites P);
   per head dP = dy_h v_h^T (workspace), dS_h over P_h; dq_h (+)= dS_h k_h,
   dk_h (+)= dS_h^T q_h */
static void att_bwd_gemms(CudaGen *G, const AttDims *a)
{
    const GNode *n = G->n, *f = &G->g->nodes[n->fwd];
    int64_t B = a->B, T = a->T, C = a->C, H = a->H, D = C / H, C3 = 3 * C;
    CgLoc P = cg_aux_loc(G, f->id), dq = cg_out_loc(G, n), ws = {AREA_WS, 0};
    int64_t at = 0; /* the operand copies (bf16) */
    AttMat dy = att_tokens(G, "attention_bwd", cg_value_loc(G, n->in[0]), a, C, &at, "dy");
    AttMat qkv = att_tokens(G, "attention_bwd", cg_value_loc(G, n->in[1]), a, C3, &at, "qkv");
    float beta = cg_node_acc(n) ? 1.0f : 0.0f;
    int bf = att_p_bf16(G, a);
    cg_need_ws(G, B * T * T * 4);
    for (int64_t h = 0; h < H; h++)
        att_gemm(G, "attention_dv", (int)h,
                 (GemmDesc){.trans_a = 1, .m = T, .n = D, .k = T, .ldc = C3, .alpha = 1, .beta = beta,
                            .off_c = (2 * C + h * D) * 4, .batch = (int)B, .stride_c = T * C3},
                 att_head(G, "attention_dv", P, a, h, at, "P"), att_cols(dy, h * D), dq, "dv (+)= P^T dy");
    GShape dps = shape_of(3, B, T, T);
    char b1[32];
    for (int64_t h = 0; h < H; h++) {
        att_gemm(G, "attention_dp", (int)h,
                 (GemmDesc){.trans_b = 1, .m = T, .n = T, .k = D, .ldc = T, .alpha = 1, .batch = (int)B,
                            .stride_c = T * T},
                 att_cols(dy, h * D), att_cols(qkv, 2 * C + h * D), ws, "dP = dy v^T (workspace)");
        cg_kernel_begin(G, "attention_softmax_bwd", (unsigned)cg_cdiv(B * T, CG_WARPS_PER_BLOCK), 1,
                        32 * CG_WARPS_PER_BLOCK, 1,
                        "dS = P (dP - rowsum(P dP)) / sqrt(D) over one head's rows of P%s; one warp per row",
                        bf ? " (bf16, rows padded to 16 bytes)" : "");
        cg_ptr(G, bf ? "__nv_bfloat16" : "float", "PdS", P, bf ? NULL : &f->aux, "P in, dS out");
        cg_ptr(G, "const float", "dP", ws, &dps, "dy v^T of the head (workspace)");
        int ha = cg_arg(G, CUDA_ARG_INT, h);
        cg_line(G, "kanc_attention_softmax_bwd<%d>(PdS, dP, %lld, %lld, %lld, (int)la.v[%d], %lld, %s);", a->causal,
                (long long)B, (long long)T, (long long)H, ha, (long long)(bf ? att_p_ld(a) : T),
                cg_flit(b1, (float)(1.0 / sqrt((double)D))));
        cg_kernel_end(G);
        AttMat dS = att_head(G, "attention_dq", P, a, h, at, "dS");
        att_gemm(G, "attention_dq", (int)h,
                 (GemmDesc){.m = T, .n = D, .k = T, .ldc = C3, .alpha = 1, .beta = beta, .off_c = h * D * 4,
                            .batch = (int)B, .stride_c = T * C3},
                 dS, att_cols(qkv, C + h * D), dq, "dq (+)= dS k");
        att_gemm(G, "attention_dk", (int)h,
                 (GemmDesc){.trans_a = 1, .m = T, .n = D, .k = T, .ldc = C3, .alpha = 1, .beta = beta,
                            .off_c = (C + h * D) * 4, .batch = (int)B, .stride_c = T * C3},
                 dS, att_cols(qkv, h * D), dq, "dk (+)= dS^T q");
    }
}

void cuda_emit_attention(CudaGen *G)
{
    const GNode *n = G->n;
    AttDims a = att_dims(n);
    if (att_on_gemms(G, &a)) {
        att_fwd_gemms(G, &a);
        return;
    }
    int64_t rows = a.B * a.H * a.T;
    char s1[96];
    cg_kernel_begin(G, "attention_fwd", (unsigned)cg_cdiv(rows, CG_WARPS_PER_BLOCK), 1,
                    32 * CG_WARPS_PER_BLOCK, 1,
                    "%s attention, %lld heads: y = dropout(softmax(q k^T / sqrt(D))) v, P = softmax;\n"
                    "   one warp per row of P%s",
                    a.causal ? "causal" : "bidirectional", (long long)a.H, cg_shp(&n->aux, s1));
    cg_out_ptr(G, "y");
    cg_ptr(G, "float", "P", cg_aux_loc(G, n->id), &n->aux, "softmax (before dropout)");
    cg_in_ptr(G, "qkv", 0);
    cg_dropout_params(G, a.p, n->id);
    att_consts(G, &a);
    cg_line(G, "kanc_attention_fwd<%d>(y, P, qkv, %lld, %lld, %lld, %lld, scale, p, keep, seed, stream);",
            a.causal, (long long)a.B, (long long)a.T, (long long)a.C, (long long)a.H);
    cg_kernel_end(G);
}

/* three kernels: dv from P; dS written over P (dead after this node: no
   workspace as large as P); dq and dk from dS */
void cuda_emit_attention_bwd(CudaGen *G)
{
    const GNode *n = G->n, *f = &G->g->nodes[n->fwd];
    AttDims a = att_dims(f);
    if (att_on_gemms(G, &a)) {
        att_bwd_gemms(G, &a);
        return;
    }
    int64_t rows = a.B * a.H * a.T, nv = a.B * a.T * a.C;
    char dims[96];
    snprintf(dims, sizeof dims, "%lld, %lld, %lld, %lld", (long long)a.B, (long long)a.T, (long long)a.C,
             (long long)a.H);
    cg_kernel_begin(G, "attention_bwd_dv", cg_blocks_for(nv), 1, CG_BLOCK, 0,
                    "dv_j (+)= sum_i mask P_ij dy_i; one thread per element of dv");
    cg_out_ptr(G, "dqkv");
    cg_in_ptr(G, "dy", 0);
    cg_ptr(G, "const float", "P", cg_aux_loc(G, f->id), &f->aux, "softmax (before dropout)");
    cg_dropout_params(G, a.p, f->id);
    att_consts(G, &a);
    cg_line(G, "(void)scale;");
    cg_line(G, "kanc_attention_bwd_dv<%d, %d>(dqkv, dy, P, %s, p, keep, seed, stream);", a.causal,
            cg_node_acc(n), dims);
    cg_kernel_end(G);
    cg_kernel_begin(G, "attention_bwd_ds", (unsigned)cg_cdiv(rows, CG_WARPS_PER_BLOCK), 1,
                    32 * CG_WARPS_PER_BLOCK, 1,
                    "dS = P (dP - rowsum(P dP)) / sqrt(D), written over P; one warp per row");
    cg_ptr(G, "float", "PdS", cg_aux_loc(G, f->id), &f->aux, "P in, dS out");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "qkv", 1);
    cg_dropout_params(G, a.p, f->id);
    att_consts(G, &a);
    cg_line(G, "kanc_attention_bwd_ds<%d>(PdS, dy, qkv, %s, scale, p, keep, seed, stream);", a.causal, dims);
    cg_kernel_end(G);
    cg_kernel_begin(G, "attention_bwd_dqk", cg_blocks_for(2 * nv), 1, CG_BLOCK, 0,
                    "dq (+)= dS k, dk (+)= dS^T q; one thread per element of dq and dk");
    cg_out_ptr(G, "dqkv");
    cg_ptr(G, "const float", "dS", cg_aux_loc(G, f->id), &f->aux, "dS (over P)");
    cg_in_ptr(G, "qkv", 1);
    cg_line(G, "kanc_attention_bwd_dqk<%d, %d>(dqkv, dS, qkv, %s);", a.causal, cg_node_acc(n), dims);
    cg_kernel_end(G);
}

/* rope: one thread per element; the backward is the same kernel rotating back */
static void emit_rope_kernel(CudaGen *G, const GNode *f, int inverse)
{
    const GShape *s = &f->shape;
    int64_t n = shape_numel(s), W = shape_last(s), T = s->d[s->nd - 2], D = f->a.len / f->a.heads;
    char b[32];
    cg_kernel_begin(G, inverse ? "rope_bwd" : "rope_fwd", cg_blocks_for(n), 1, CG_BLOCK, 0,
                    "%s: pairs (i, i + %lld) of %d heads of %lld, angle t base^(-2i/D); columns from %lld copied",
                    inverse ? "dx (+)= the inverse rotation of dy" : "y = x rotated", (long long)(D / 2), f->a.heads,
                    (long long)D, (long long)f->a.len);
    cg_out_ptr(G, inverse ? "dx" : "y");
    cg_in_ptr(G, inverse ? "dy" : "x", 0);
    cg_line(G, "kanc_rope<%d, %d>(%s, %s, %lldLL, %lld, %lld, %lld, %lld, %s);", inverse, inverse && cg_node_acc(G->n),
            inverse ? "dx" : "y", inverse ? "dy" : "x", (long long)n, (long long)T, (long long)W,
            (long long)f->a.len, (long long)D, cg_dlit(b, f->a.rope_base));
    cg_kernel_end(G);
}

void cuda_emit_rope(CudaGen *G) { emit_rope_kernel(G, G->n, 0); }

void cuda_emit_rope_bwd(CudaGen *G) { emit_rope_kernel(G, &G->g->nodes[G->n->fwd], 1); }
