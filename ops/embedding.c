/* embedding.c: the token embedding: y[n, :] = W[idx[n], :]. */
#include "autodiff.h"
#include "ops.h"

const OpFamily op_family_embedding = {.name = "embedding"};

/* dW += scatter(dy) by the ids */
void op_vjp_embedding(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    if (ad_wants(ad, in[1])) ad_contribute(ad, in[1], OP_EMBEDDING_BWD, (int[]){in[0], dy}, 2, (GAttr){0});
}
