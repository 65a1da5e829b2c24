/* linear.c: y = x W^T + b (torch.nn.Linear). */
#include "autodiff.h"
#include "ops.h"

/* 2 rows in out for the forward and for each backward product */
static double linear_flops(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    return 2 * (double)shape_rows(&f->shape) * (double)shape_last(&g->nodes[f->in[0]].shape) *
           (double)shape_last(&f->shape);
}

const OpFamily op_family_linear = {.name = "linear", .flops = linear_flops};

/* dW += dy^T x and db += sum dy (one node), dx = dy W */
void op_vjp_linear(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    GAttr a = {.has_bias = n->a.has_bias};
    if (ad_wants(ad, in[1]))
        ad_contribute(ad, in[1], OP_LINEAR_BWD_W, (int[]){dy, in[0], in[1], in[2]}, n->a.has_bias ? 4 : 3, a);
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_LINEAR_BWD_X, (int[]){dy, in[1]}, 2, a);
}
