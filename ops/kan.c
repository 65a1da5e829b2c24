/* kan.c: the fused KAN layer (efficient-kan's KANLinear; DESIGN.md 4). */
#include "autodiff.h"
#include "cpu_kernels.h"
#include "ops.h"

static const GNode *kan_forward(const Graph *g, const GNode *n) { return n->fwd >= 0 ? &g->nodes[n->fwd] : n; }

/* one product of K = in * (G+k+1) columns, forward and for each backward product */
static double kan_flops(const Graph *g, const GNode *n)
{
    const GNode *f = kan_forward(g, n);
    return 2 * (double)shape_rows(&f->shape) * (double)shape_last(&g->nodes[f->in[0]].shape) *
           (f->a.grid_size + f->a.spline_order + 1) * (double)shape_last(&f->shape);
}

static int64_t kan_cpu_workspace(const Graph *g, const GNode *n, size_t real_size)
{
    const GNode *k = kan_forward(g, n);
    const GShape *xs = &g->nodes[k->in[0]].shape;
    int64_t N = shape_rows(xs), in = shape_last(xs), out = shape_last(&k->shape);
    return real_size == 8 ? kan_workspace_elems_f64(N, in, out, k->a.grid_size, k->a.spline_order)
                          : kan_workspace_elems_f32(N, in, out, k->a.grid_size, k->a.spline_order);
}

const OpFamily op_family_kan = {.name = "kan", .flops = kan_flops, .cpu_workspace = kan_cpu_workspace};

/* both backward nodes take (dy, x, grid, base, spline, scaler?) */
void op_vjp_kan(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    GAttr a = n->a;
    a.acc = 0;
    int kin[G_MAXIN] = {dy, in[0], in[1], in[2], in[3], in[4]};
    int nk = n->a.has_scaler ? 6 : 5;
    if (ad_wants(ad, in[2])) ad_contribute(ad, in[2], OP_KAN_BWD_W, kin, nk, a);
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_KAN_BWD_X, kin, nk, a);
}
