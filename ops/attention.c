/* attention.c: causal multi-head self-attention on a fused qkv (minGPT). */
#include "autodiff.h"
#include "ops.h"

/* [B, T, C]: two T x T x C products per batch forward, four backward */
static double attention_flops(const Graph *g, const GNode *n)
{
    const GShape *s = &(n->fwd >= 0 ? &g->nodes[n->fwd] : n)->shape;
    double two = 2 * (double)s->d[0] * (double)s->d[1] * (double)s->d[1] * (double)s->d[2];
    return n->op == OP_ATTENTION ? 2 * two : 4 * two;
}

const OpFamily op_family_attention = {.name = "attention", .flops = attention_flops};

void op_vjp_attention(AdCtx *ad, const GNode *n, int dy)
{
    GAttr a = n->a;
    a.acc = 0;
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ATTENTION_BWD, (int[]){dy, n->in[0]}, 2, a);
}
