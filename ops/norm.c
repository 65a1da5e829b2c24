/* norm.c: layernorm over the last dimension (torch.nn.LayerNorm). */
#include "autodiff.h"
#include "ops.h"

const OpFamily op_family_norm = {.name = "norm"};

/* one backward node computes dx, dw and db; its value is dx */
void op_vjp_layernorm(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    ad_contribute(ad, in[0], OP_LAYERNORM_BWD, (int[]){dy, in[0], in[1], in[2]}, 4, (GAttr){.eps = n->a.eps});
}
