/* linear.c: y = x W^T + b (torch.nn.Linear). */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

/* 2 rows in out for the forward and for each backward product */
static double linear_flops(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    return 2 * (double)shape_rows(&f->shape) * (double)shape_last(&g->nodes[f->in[0]].shape) *
           (double)shape_last(&f->shape);
}

/* the bias: one add per output element forward, one per dy element into db */
static double linear_arith(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    return f->a.has_bias && n->op != OP_LINEAR_BWD_X ? (double)shape_numel(&f->shape) : 0;
}

const OpFamily op_family_linear = {.name = "linear", .flops = linear_flops, .elementwise_flops = linear_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

/* tie = "transformer.wte.weight": the weight is that parameter (an
   embedding's [V, C] serves as the head's [out = V, in = C]), nanoGPT's tying */
static Value L_linear(Elab *E, Args *A)
{
    int x, bias;
    int64_t out;
    double std;
    if (!el_arg_real(E, A, 0, 1, &x) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &out) ||
        !el_arg_bool(E, A, 2, 1, &bias) || !el_arg_num(E, A, 3, 0.02, &std))
        return VERR;
    if (!(std >= 0)) return el_bad_arg(E, A, 3, "must not be negative"), VERR;
    GShape xs = el_tshape(E, x);
    GShape ws = shape_of(2, out, shape_last(&xs));
    if (A->given[4] && A->given[3])
        return el_err(E, el_arg_loc(A, 3), "'%s': init_std has no meaning for a tied weight (it keeps its own init)",
                      A->callee);
    int w = A->given[4] ? el_tied_param(E, A, 4, ws, "weight") : el_param(E, A, "weight", ws, INIT_NORMAL, std, 1);
    int b = bias && w >= 0 ? el_param(E, A, "bias", shape_of(1, out), INIT_ZEROS, 0, 0) : -2;
    if (w < 0 || b == -1) return VERR;
    GAttr at = {.has_bias = bias};
    return vnode(
        el_emit(E, A->call, A->scope, OP_LINEAR, (int[]){x, w, b}, bias ? 3 : 2, el_with_last(xs, out), &at));
}

const Builtin layer_linear = {"linear",
                              L_linear,
                              2,
                              0,
                              1,
                              "linear(x, out, bias = true, init_std = 0.02, tie = \"name.weight\")",
                              {"x", "out", "bias", "init_std", "tie"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* dW += dy^T x and db += sum dy (one node), dx = dy W */
void op_vjp_linear(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    GAttr a = {.has_bias = n->a.has_bias};
    if (ad_wants(ad, in[1]))
        ad_contribute(ad, in[1], OP_LINEAR_BWD_W, (int[]){dy, in[0], in[1], in[2]}, n->a.has_bias ? 4 : 3, a);
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_LINEAR_BWD_X, (int[]){dy, in[1]}, 2, a);
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

static void describe(CudaGen *G, CgGemm *q, const char *ra, int ia, const char *rb, int ib, const char *rc,
                     char *sa, char *sb, char *sc)
{
    const GNode *a = &G->g->nodes[ia], *b = &G->g->nodes[ib], *n = G->n;
    char t[96];
    snprintf(sa, 160, "%s %s%s%s", ra, cg_shp(&a->shape, t), a->name ? " " : "", a->name ? a->name : "");
    snprintf(sb, 160, "%s %s%s%s", rb, cg_shp(&b->shape, t), b->name ? " " : "", b->name ? b->name : "");
    const GNode *tg = op_is_backward(n->op) && n->gparam >= 0 ? &G->g->nodes[n->gparam] : NULL;
    snprintf(sc, 160, "%s %s%s%s%s", rc, cg_shp(&n->shape, t), tg ? " grad of " : "",
             tg && tg->name ? tg->name : "", cg_node_acc(n) ? " (accumulate)" : "");
    q->na = sa;
    q->nb = sb;
    q->nc = sc;
}

void cuda_emit_linear(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), in = shape_last(&CG_IN(0)->shape), out = shape_last(&n->shape);
    CgLoc y = cg_out_loc(G, n);
    if (n->a.has_bias) { /* y = b first, then the GEMM adds x W^T (the CPU's order) */
        cg_kernel_begin(G, "linear_bias", cg_blocks_for(N * out), 1, CG_BLOCK, 0, "y[n, :] = b");
        cg_out_ptr(G, "y");
        cg_in_ptr(G, "b", 2);
        char body[96];
        snprintf(body, sizeof body, "y[e] = b[e %% %lld];", (long long)out);
        cg_loop(G, N * out, body);
        cg_kernel_end(G);
    }
    CgGemm q = {.ta = 0,
                .tb = 1,
                .m = N,
                .n = out,
                .k = in,
                .lda = in,
                .ldb = in,
                .ldc = out,
                .alpha = 1,
                .beta = n->a.has_bias ? 1 : 0,
                .a = cg_value_loc(G, n->in[0]),
                .b = cg_value_loc(G, n->in[1]),
                .c = y};
    char note[128], s1[160], s2[160], s3[160];
    snprintf(note, sizeof note, "y%s (+)= x%s W^T", cg_shp(&n->shape, s1), cg_shp(&CG_IN(0)->shape, s2));
    describe(G, &q, "x", n->in[0], "W", n->in[1], "y", s1, s2, s3);
    cg_gemm(G, "linear_gemm", &q, note);
}

void cuda_emit_linear_bwd_x(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), in = shape_last(&n->shape), out = shape_last(&CG_IN(0)->shape);
    CgGemm q = {.ta = 0,
                .tb = 0,
                .m = N,
                .n = in,
                .k = out,
                .lda = out,
                .ldb = in,
                .ldc = in,
                .alpha = 1,
                .beta = cg_node_acc(n) ? 1 : 0,
                .a = cg_value_loc(G, n->in[0]),
                .b = cg_value_loc(G, n->in[1]),
                .c = cg_out_loc(G, n)};
    char s1[160], s2[160], s3[160];
    describe(G, &q, "dy", n->in[0], "W", n->in[1], "dx", s1, s2, s3);
    cg_gemm(G, "linear_bwd_x", &q, "dx (+)= dy W");
}

void cuda_emit_linear_bwd_w(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), in = shape_last(&CG_IN(1)->shape),
            out = shape_last(&CG_IN(0)->shape);
    CgGemm q = {.ta = 1,
                .tb = 0,
                .m = out,
                .n = in,
                .k = N,
                .lda = out,
                .ldb = in,
                .ldc = in,
                .alpha = 1,
                .beta = 1,
                .a = cg_value_loc(G, n->in[0]),
                .b = cg_value_loc(G, n->in[1]),
                .c = cg_out_loc(G, n)};
    char s1[160], s2[160], s3[160];
    describe(G, &q, "dy", n->in[0], "x", n->in[1], "dW", s1, s2, s3);
    cg_gemm(G, "linear_bwd_w", &q, "dW += dy^T x");
    if (n->a.has_bias) {
        CgColSum b = {.out = cg_grad_loc(G, n->in[3]),
                      .dy = cg_value_loc(G, n->in[0]),
                      .out_shape = &CG_IN(3)->shape,
                      .out_note = "grad of bias",
                      .rows = N,
                      .nout = out,
                      .nother = 1,
                      .s = 1.0,
                      .acc = 1};
        cg_col_sum(G, "linear_bwd_b", &b);
    }
}
