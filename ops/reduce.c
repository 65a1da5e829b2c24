/* reduce.c: row-wise and axis reductions: softmax over the last dimension, and
 * the sum over one axis (sum(x, axis), mean(x, axis)).
 *
 * An axis sum is one op on a [A, K, B] view of x (A the product of the
 * dimensions before the axis, K the axis, B those after): the layer wraps it
 * in reshapes, which the plan places at their input's offset (no copy), so
 * the op needs no axis attribute and every axis of every rank is one kernel.
 */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"
#include "reduce.h"

/* per element: softmax's max, x - max, exp, sum, divide (5); its gradient
   dy y, the row sum, dy - s, times y (4). An axis sum adds once per input
   element (and scales once per output element for mean); its gradient copies
   (and scales). */
static double reduce_arith(const Graph *g, const GNode *n)
{
    double out = (double)shape_numel(&n->shape);
    switch (n->op) {
    case OP_SOFTMAX: return 5 * out;
    case OP_SOFTMAX_BWD: return 4 * out;
    case OP_SUM_AXIS:
        return (double)shape_numel(&g->nodes[n->in[0]].shape) + (n->a.scale != 1 ? out : 0);
    case OP_SUM_AXIS_BWD: return n->a.scale != 1 ? out : 0;
    default: return 0;
    }
}

const OpFamily op_family_reduce = {.name = "reduce", .elementwise_flops = reduce_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

static Value L_softmax(Elab *E, Args *A)
{
    int x;
    if (!el_arg_real(E, A, 0, 1, &x)) return VERR;
    return vnode(el_emit(E, A->call, A->scope, OP_SOFTMAX, &x, 1, el_tshape(E, x), NULL));
}

/* node x viewed as shape s: x itself when it has that shape already */
static int view_as(Elab *E, Args *A, int x, GShape s)
{
    GShape xs = el_tshape(E, x);
    if (x < 0 || shape_eq(&xs, &s)) return x;
    return el_emit(E, A->call, A->scope, OP_RESHAPE, &x, 1, s, NULL);
}

Value reduce_layer(Elab *E, Args *A, int mean)
{
    int x, keep;
    if (!el_arg_real(E, A, 0, 0, &x) || !el_arg_bool(E, A, 2, 0, &keep)) return VERR;
    GShape s = el_tshape(E, x);
    if (!A->given[1]) { /* the whole tensor: a scalar */
        if (A->given[2]) return el_bad_arg(E, A, 2, "needs an axis"), VERR;
        int y = el_emit(E, A->call, A->scope, OP_SUM, &x, 1, (GShape){0}, NULL);
        if (!mean || y < 0) return vnode(y);
        GAttr at = {.scale = 1.0 / (double)shape_numel(&s)};
        return vnode(el_emit(E, A->call, A->scope, OP_SCALE, &y, 1, (GShape){0}, &at));
    }
    if (s.nd == 0) return el_bad_arg(E, A, 1, "cannot be given for a scalar (it has no axes)"), VERR;
    int64_t axis;
    if (!el_arg_int(E, A, 1, 0, -s.nd, s.nd - 1, &axis)) return VERR;
    if (axis < 0) axis += s.nd; /* -1 is the last axis */
    int64_t outer = 1, K = s.d[axis], inner = 1;
    for (int i = 0; i < s.nd; i++) {
        if (i < axis) outer *= s.d[i];
        if (i > axis) inner *= s.d[i];
    }
    GShape out = {0}; /* s without the axis, or with it as 1 (keepdim) */
    for (int i = 0; i < s.nd; i++)
        if (i != axis || keep) out.d[out.nd++] = i == axis ? 1 : s.d[i];
    GAttr at = {.scale = mean ? 1.0 / (double)K : 1.0};
    int v = view_as(E, A, x, shape_of(3, outer, K, inner));
    if (v < 0) return VERR;
    int y = el_emit(E, A->call, A->scope, OP_SUM_AXIS, &v, 1, shape_of(2, outer, inner), &at);
    return vnode(y < 0 ? -1 : view_as(E, A, y, out));
}

static Value L_mean(Elab *E, Args *A) { return reduce_layer(E, A, 1); }

const Builtin layer_softmax = {"softmax", L_softmax, 1, 0, 1, "softmax(x)", {"x"}};
const Builtin layer_mean = {"mean", L_mean, 1, 0, 1, "mean(x) or mean(x, axis, keepdim = false)",
                            {"x", "axis", "keepdim"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* dx = y (dy - sum_row(dy y)): reads the forward's own value y */
void op_vjp_softmax(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_SOFTMAX_BWD, (int[]){dy, n->id}, 2, (GAttr){0});
}

/* dx[a, k, b] = scale dy[a, b] */
void op_vjp_sum_axis(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0]))
        ad_contribute(ad, n->in[0], OP_SUM_AXIS_BWD, &dy, 1, (GAttr){.scale = n->a.scale});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

void cuda_emit_softmax(CudaGen *G)
{
    int64_t N = shape_rows(&G->n->shape), C = shape_last(&G->n->shape);
    cg_kernel_begin(G, "softmax", (unsigned)N, 1, cg_row_threads(C), 1,
                    "y = exp(x - max) / sum exp(x - max) over each row; one block per row");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    cg_line(G, "kanc_softmax_fwd(y, x, %lld);", (long long)C);
    cg_kernel_end(G);
}

void cuda_emit_softmax_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&n->shape), C = shape_last(&n->shape);
    cg_kernel_begin(G, "softmax_bwd", (unsigned)N, 1, cg_row_threads(C), 1,
                    "dx (+)= y (dy - sum(dy y)) over each row; one block per row");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "y", 1);
    cg_line(G, "kanc_softmax_bwd<%d>(dx, dy, y, %lld);", cg_node_acc(n), (long long)C);
    cg_kernel_end(G);
}

/* out[a, b] = s sum_k x[a, k, b]: a thread per output element, k in order;
   over the last axis (B = 1) a block per row, whose reads coalesce */
void cuda_emit_sum_axis(CudaGen *G)
{
    const GShape *xs = &CG_IN(0)->shape;
    int64_t A = xs->d[0], K = xs->d[1], B = xs->d[2];
    char b[32];
    if (B == 1 && K >= 32) {
        cg_kernel_begin(G, "sum_rows", (unsigned)A, 1, cg_row_threads(K), 1,
                        "y[a] = s * sum over k of x[a, k]; one block per row");
        cg_out_ptr(G, "y");
        cg_in_ptr(G, "x", 0);
        cg_line(G, "kanc_sum_rows(y, x, %lldLL, %s);", (long long)K, cg_dlit(b, G->n->a.scale));
        cg_kernel_end(G);
        return;
    }
    cg_kernel_begin(G, "sum_axis", cg_blocks_for(A * B), 1, CG_BLOCK, 0,
                    "y[a, b] = s * sum over k of x[a, k, b] (x viewed as [%lld, %lld, %lld])", (long long)A,
                    (long long)K, (long long)B);
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    cg_line(G, "kanc_sum_axis(y, x, %lldLL, %lldLL, %lldLL, %s);", (long long)A, (long long)K, (long long)B,
            cg_dlit(b, G->n->a.scale));
    cg_kernel_end(G);
}

void cuda_emit_sum_axis_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    const GShape *xs = &n->shape;
    int64_t A = xs->d[0], K = xs->d[1], B = xs->d[2];
    char b[32];
    cg_kernel_begin(G, "sum_axis_bwd", cg_blocks_for(A * K * B), 1, CG_BLOCK, 0,
                    "dx[a, k, b] (+)= s * dy[a, b]");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_line(G, "kanc_sum_axis_bwd<%d>(dx, dy, %lldLL, %lldLL, %lldLL, %s);", cg_node_acc(n), (long long)A,
            (long long)K, (long long)B, cg_dlit(b, n->a.scale));
    cg_kernel_end(G);
}
