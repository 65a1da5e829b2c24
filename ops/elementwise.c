/* elementwise.c: add, sub, mul (with trailing broadcast), scale, the activations
 * and dropout; their gradients reduce over the broadcast dimensions. */
#include "autodiff.h"
#include "ops.h"

const OpFamily op_family_elementwise = {.name = "elementwise"};

/* d a = dy, d b = s * reduce(dy), s = +1 (add) or -1 (sub for b) */
static void vjp_add_sub(AdCtx *ad, const GNode *n, int dy, double sign_b)
{
    for (int j = 0; j < 2; j++)
        if (ad_wants(ad, n->in[j]))
            ad_contribute(ad, n->in[j], OP_ACC, &dy, 1, (GAttr){.scale = j ? sign_b : 1});
}

void op_vjp_add(AdCtx *ad, const GNode *n, int dy) { vjp_add_sub(ad, n, dy, 1); }
void op_vjp_sub(AdCtx *ad, const GNode *n, int dy) { vjp_add_sub(ad, n, dy, -1); }

/* d a = dy * b, d b = reduce(dy * a) */
void op_vjp_mul(AdCtx *ad, const GNode *n, int dy)
{
    for (int j = 0; j < 2; j++)
        if (ad_wants(ad, n->in[j]))
            ad_contribute(ad, n->in[j], OP_MUL_BWD, (int[]){dy, n->in[1 - j]}, 2, (GAttr){0});
}

void op_vjp_scale(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ACC, &dy, 1, (GAttr){.scale = n->a.scale});
}

/* dx = dy * f'(x) */
static void vjp_act(AdCtx *ad, const GNode *n, int dy, GAct act)
{
    if (ad_wants(ad, n->in[0]))
        ad_contribute(ad, n->in[0], OP_ACT_BWD, (int[]){dy, n->in[0]}, 2, (GAttr){.act = act});
}

void op_vjp_gelu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_GELU); }
void op_vjp_silu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_SILU); }
void op_vjp_relu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_RELU); }

/* dx = dy * mask / (1 - p), the forward's mask drawn again from its node id */
void op_vjp_dropout(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_DROPOUT_BWD, &dy, 1, (GAttr){.p = n->a.p});
}
