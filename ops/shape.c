/* shape.c: slice and concat of the last dimension, reshape. */
#include "autodiff.h"
#include "ops.h"

const OpFamily op_family_shape = {.name = "shape"};

void op_vjp_slice(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0]))
        ad_contribute(ad, n->in[0], OP_SLICE_BWD, &dy, 1, (GAttr){.start = n->a.start, .len = n->a.len});
}

/* each input's gradient is its slice of dy */
void op_vjp_concat(AdCtx *ad, const GNode *n, int dy)
{
    Graph *g = ad_graph(ad);
    int64_t ca = shape_last(&g->nodes[n->in[0]].shape);
    for (int j = 0; j < 2; j++) {
        if (!ad_wants(ad, n->in[j])) continue;
        GShape s = g->nodes[n->in[j]].shape;
        GAttr a = {.start = j ? ca : 0, .len = shape_last(&s)};
        int piece = ad_emit(ad, OP_SLICE, &dy, 1, s, &a, -1);
        ad_contribute_value(ad, n->in[j], piece);
    }
}

void op_vjp_reshape(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ACC, &dy, 1, (GAttr){.scale = 1});
}
