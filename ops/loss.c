/* loss.c: softmax cross-entropy (mean over counted rows), the sum, and the mean squared error. */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"
#include "reduce.h"

/* per logit: cross-entropy's max, exp(x - max), sum (4); its gradient
   exp(x - lse) times the scale (3). The sum adds once per element; the
   squared error subtracts, squares and adds (3), its gradient 3 too. */
static double loss_arith(const Graph *g, const GNode *n)
{
    switch (n->op) {
    case OP_CROSS_ENTROPY: return 4 * (double)shape_numel(&g->nodes[n->in[0]].shape);
    case OP_CE_BWD: return 3 * (double)shape_numel(&n->shape);
    case OP_SUM: return (double)shape_numel(&g->nodes[n->in[0]].shape);
    case OP_MSE: return 3 * (double)shape_numel(&g->nodes[n->in[0]].shape);
    case OP_MSE_BWD: return 3 * (double)shape_numel(&n->shape);
    default: return 0;
    }
}

const OpFamily op_family_loss = {.name = "loss", .elementwise_flops = loss_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

/* cross_entropy(logits [..., V], targets [...] ids; -1 = ignored) -> [] mean */
static Value L_cross_entropy(Elab *E, Args *A)
{
    int logits, targets;
    if (!el_arg_real(E, A, 0, 1, &logits) || !el_arg_tensor(E, A, 1, DT_I32, &targets)) return VERR;
    GShape ls = el_tshape(E, logits), ts = el_tshape(E, targets), want = ls;
    want.nd--;
    if (!shape_eq(&ts, &want))
        return el_err(E, el_arg_loc(A, 1),
                      "argument 'targets' of '%s' must have shape %s (the logits' "
                      "shape %s without the last dimension), got %s",
                      A->callee, el_shape_text(E, &want), el_shape_text(E, &ls), el_shape_text(E, &ts));
    int y = el_emit(E, A->call, A->scope, OP_CROSS_ENTROPY, (int[]){logits, targets}, 2, (GShape){0}, NULL);
    if (y >= 0) {
        el_graph(E)->nodes[y].aux = shape_of(1, shape_rows(&ls));
        el_graph(E)->nodes[y].aux_numel = shape_rows(&ls);
    }
    return vnode(y);
}

/* sum(x): the scalar sum (OP_SUM); sum(x, axis, keepdim): ops/reduce.c's axis sum */
static Value L_sum(Elab *E, Args *A) { return reduce_layer(E, A, 0); }

/* mse(pred, target): both real, the same shape -> [] mean of (pred - target)^2 */
static Value L_mse(Elab *E, Args *A)
{
    int pred, target;
    if (!el_arg_real(E, A, 0, 0, &pred) || !el_arg_real(E, A, 1, 0, &target)) return VERR;
    GShape ps = el_tshape(E, pred), ts = el_tshape(E, target);
    if (!shape_eq(&ps, &ts))
        return el_err(E, el_arg_loc(A, 1), "argument 'target' of '%s' must have the shape of 'pred' %s, got %s",
                      A->callee, el_shape_text(E, &ps), el_shape_text(E, &ts));
    return vnode(el_emit(E, A->call, A->scope, OP_MSE, (int[]){pred, target}, 2, (GShape){0}, NULL));
}

const Builtin layer_cross_entropy = {
    "cross_entropy", L_cross_entropy, 2, 0, 1, "cross_entropy(logits, targets)", {"logits", "targets"}};
const Builtin layer_sum = {"sum", L_sum, 1, 0, 1, "sum(x) or sum(x, axis, keepdim = false)",
                           {"x", "axis", "keepdim"}};
const Builtin layer_mse = {"mse", L_mse, 2, 0, 1, "mse(pred, target)", {"pred", "target"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

void op_vjp_cross_entropy(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_CE_BWD, (int[]){dy, in[0], in[1]}, 3, (GAttr){0});
}

void op_vjp_sum(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_SUM_BWD, &dy, 1, (GAttr){0});
}

/* d pred = 2 (pred - target) dloss / N, d target its negative (attr.scale +1, -1) */
void op_vjp_mse(AdCtx *ad, const GNode *n, int dy)
{
    for (int k = 0; k < 2; k++)
        if (ad_wants(ad, n->in[k]))
            ad_contribute(ad, n->in[k], OP_MSE_BWD, (int[]){dy, n->in[0], n->in[1]}, 3,
                          (GAttr){.scale = k ? -1.0 : 1.0});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

/* loss = mean (pred - target)^2: one block, a fixed share per thread, so the
   sum is the same on every run */
void cuda_emit_mse(CudaGen *G)
{
    int64_t N = shape_numel(&CG_IN(0)->shape);
    cg_kernel_begin(G, "mse", 1, 1, CG_BLOCK, 1, "loss = mean of (pred - target)^2; one block");
    cg_out_ptr(G, "loss");
    cg_in_ptr(G, "pred", 0);
    cg_in_ptr(G, "target", 1);
    cg_line(G, "kanc_mse(loss, pred, target, %lldLL);", (long long)N);
    cg_kernel_end(G);
}

void cuda_emit_mse_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char b[32], body[192];
    cg_kernel_begin(G, "mse_bwd", cg_blocks_for(N), 1, CG_BLOCK, 0, "dx (+)= %s2 (pred - target) dloss / N",
                    n->a.scale < 0 ? "-" : "");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "pred", 1);
    cg_in_ptr(G, "target", 2);
    /* the factor as the CPU rounds it: scale * 2 / N in double, then float */
    snprintf(body, sizeof body, "dx[e] = %s%s * dy[0] * (pred[e] - target[e]);", cg_node_acc(n) ? "dx[e] + " : "",
             cg_flit(b, (float)(n->a.scale * 2.0 / (double)N)));
    cg_loop(G, N, body);
    cg_kernel_end(G);
}


void cuda_emit_sum_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char body[96];
    cg_kernel_begin(G, "sum_bwd", cg_blocks_for(N), 1, CG_BLOCK, 0, "dx (+)= dloss");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    snprintf(body, sizeof body, "dx[e] = %sdy[0];", cg_node_acc(n) ? "dx[e] + " : "");
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

/* whole-tensor sum, in two deterministic passes through the workspace:
   partial sums of fixed grid-stride shares, then one block adds them */
void cuda_emit_sum(CudaGen *G)
{
    int64_t N = shape_numel(&CG_IN(0)->shape);
    int parts = cg_sum_parts(N);
    cg_need_ws(G, parts * 8);
    cg_kernel_begin(G, "sum_partial", (unsigned)parts, 1, CG_BLOCK, 1, "ws[block] = partial sums of x");
    cg_in_ptr(G, "x", 0);
    cg_ptr(G, "double", "part", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_line(G, "kanc_sum_partial<0>(part, x, %lldLL);", (long long)N);
    cg_kernel_end(G);
    cg_kernel_begin(G, "sum", 1, 1, CG_BLOCK, 1, "y = the sum of the %d partial sums", parts);
    cg_out_ptr(G, "y");
    cg_ptr(G, "const double", "part", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_line(G, "double s = kanc_sum_parts(part, %d);", parts);
    cg_line(G, "if (threadIdx.x == 0) y[0] = (float)s;");
    cg_kernel_end(G);
}

/* out (+)= s * column sums of dy (ACC) or of dy * other (MUL_BWD) */
void cuda_emit_cross_entropy(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), V = shape_last(&CG_IN(0)->shape);
    GShape ls = shape_of(1, N);
    cg_kernel_begin(G, "ce_lse", (unsigned)N, 1, cg_row_threads(V), 1,
                    "lse[r] = log sum exp logits[r, :]; one block per row");
    cg_ptr(G, "float", "lse", cg_aux_loc(G, n->id), &ls, "log-sum-exp");
    cg_in_ptr(G, "logits", 0);
    cg_line(G, "kanc_ce_lse(lse, logits, %lld);", (long long)V);
    cg_kernel_end(G);
    cg_kernel_begin(G, "ce_loss", 1, 1, CG_BLOCK, 1,
                    "loss = mean over rows with a target of lse - logit[target]");
    cg_out_ptr(G, "loss");
    cg_ptr(G, "const float", "lse", cg_aux_loc(G, n->id), &ls, "log-sum-exp");
    cg_in_ptr(G, "logits", 0);
    cg_in_ptr(G, "targets", 1);
    cg_line(G, "kanc_ce_loss(loss, lse, logits, targets, %lldLL, %lld);", (long long)N, (long long)V);
    cg_kernel_end(G);
}

void cuda_emit_ce_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(1)->shape), V = shape_last(&CG_IN(1)->shape);
    GShape ls = shape_of(1, N);
    cg_need_ws(G, 4);
    cg_kernel_begin(G, "ce_bwd_scale", 1, 1, CG_BLOCK, 1, "ws[0] = dloss / (rows with a target)");
    cg_ptr(G, "float", "g", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_in_ptr(G, "dloss", 0);
    cg_in_ptr(G, "targets", 2);
    cg_line(G, "kanc_ce_scale(g, dloss, targets, %lldLL);", (long long)N);
    cg_kernel_end(G);
    cg_kernel_begin(G, "ce_bwd", cg_blocks_for(N * V), 1, CG_BLOCK, 0,
                    "dlogits (+)= g (softmax - onehot(target)); rows without a target: 0");
    cg_out_ptr(G, "dl");
    cg_ptr(G, "const float", "g", (CgLoc){AREA_WS, 0}, NULL, NULL);
    cg_in_ptr(G, "logits", 1);
    cg_in_ptr(G, "targets", 2);
    cg_ptr(G, "const float", "lse", cg_aux_loc(G, n->fwd), &ls, "log-sum-exp");
    cg_line(G, "kanc_ce_bwd<%d>(dl, g, logits, targets, lse, %lldLL, %lld);", cg_node_acc(n), (long long)N,
            (long long)V);
    cg_kernel_end(G);
}
