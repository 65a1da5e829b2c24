/* loss.c: softmax cross-entropy (mean over counted rows) and the sum. */
#include "autodiff.h"
#include "ops.h"

const OpFamily op_family_loss = {.name = "loss"};

void op_vjp_cross_entropy(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_CE_BWD, (int[]){dy, in[0], in[1]}, 3, (GAttr){0});
}

void op_vjp_sum(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_SUM_BWD, &dy, 1, (GAttr){0});
}
