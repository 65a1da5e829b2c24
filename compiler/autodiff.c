/* autodiff.c: reverse mode over the static graph, one VJP rule per forward op (ops/).
 *
 * Walks the forward nodes backwards. grad_of[i] is the node holding the
 * gradient accumulated so far for forward node i; a further contribution to it
 * is a node with attr.acc = 1 whose last input is that partial sum (the planner
 * lets it share the partial sum's storage). Parameter gradients are not values:
 * their nodes accumulate into the gradient area (gparam).
 */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

struct AdCtx {
    Graph *g;
    int *grad_of;   /* per forward node */
    char *needs;    /* per forward node: a gradient must flow into it */
    int cur;        /* the forward node whose rule is being applied */
};
typedef AdCtx AD;

/* The rules, one per forward op of ops/ops.def (op_vjp_<name> in ops/<family>.c). */
#define OP_LEAF(ENUM, name)
#define OP_FWD(ENUM, name) void op_vjp_##name(AdCtx *ad, const GNode *n, int dy);
#define OP_BWD(ENUM, name)
#define OP_OPT(ENUM, name)
#define OP(kind, ENUM, name, family, flags) OP_##kind(ENUM, name)
#include "ops.def"
#undef OP_FWD
#define OP_FWD(ENUM, name) [OP_##ENUM] = op_vjp_##name,
#define OP(kind, ENUM, name, family, flags) OP_##kind(ENUM, name)
static const AdRule RULES[OP__COUNT] = {
#include "ops.def"
};
#undef OP_LEAF
#undef OP_FWD
#undef OP_BWD
#undef OP_OPT

AdRule autodiff_rule(GOp op) { return op >= 0 && op < OP__COUNT ? RULES[op] : NULL; }
Graph *ad_graph(AdCtx *ad) { return ad->g; }

static int node_trainable(const GNode *n) { return n->op == OP_PARAM && n->trainable; }

/* A backward node: inputs, shape, attributes; fwd = the node being differentiated. */
int ad_emit(AD *ad, GOp op, const int *in, int nin, GShape shape, const GAttr *a, int gparam)
{
    GNode n = {0};
    n.op = op;
    n.nin = nin;
    if (nin) memcpy(n.in, in, sizeof(int) * (size_t)nin);
    n.shape = shape;
    n.dtype = DT_REAL;
    if (a) n.a = *a;
    n.fwd = ad->cur;
    n.gparam = gparam;
    n.init_ref = -1;
    const GNode *f = &ad->g->nodes[ad->cur];
    n.src_line = f->src_line;
    n.src_col = f->src_col;
    return graph_add(ad->g, &n);
}

/*
 * Adds a contribution to the gradient of forward node `target`. For a value
 * target, the node (op, in[0..nin)) gets the partial sum as an extra last
 * input and acc = 1 when a partial sum exists. For a parameter target, the
 * node writes into the gradient area. Returns the new node.
 */
int ad_contribute(AD *ad, int target, GOp op, const int *in, int nin, GAttr a)
{
    Graph *g = ad->g;
    const GNode *t = &g->nodes[target];
    int ins[G_MAXIN];
    memcpy(ins, in, sizeof(int) * (size_t)nin);
    if (node_trainable(t)) {
        a.acc = 1;
        return ad_emit(ad, op, ins, nin, t->shape, &a, target);
    }
    a.acc = 0;
    if (ad->grad_of[target] >= 0) {
        ins[nin++] = ad->grad_of[target];
        a.acc = 1;
    }
    int id = ad_emit(ad, op, ins, nin, t->shape, &a, -1);
    ad->grad_of[target] = id;
    return id;
}

/* Contribution that is already a value of target's shape (e.g. a slice of dy). */
void ad_contribute_value(AD *ad, int target, int value)
{
    if (node_trainable(&ad->g->nodes[target]) || ad->grad_of[target] >= 0) {
        GAttr a = {.scale = 1};
        ad_contribute(ad, target, OP_ACC, &value, 1, a);
    } else {
        ad->grad_of[target] = value;
    }
}

int ad_wants(AD *ad, int id) { return ad->needs[id]; }

/* The VJP rule of forward node i, whose output gradient is dy. */
static int vjp(AD *ad, int i, int dy, char *err, size_t errlen)
{
    GNode n = ad->g->nodes[i]; /* copy: emitting may move the array */
    AdRule rule = autodiff_rule(n.op);
    if (!rule) {
        snprintf(err, errlen, "autodiff: op %s (node %d) has no gradient rule", op_name(n.op), i);
        return -1;
    }
    ad->cur = i;
    rule(ad, &n, dy);
    return 0;
}

/* needs[i]: node i lies on a path from something differentiable to `out` */
static void mark_needs(Graph *g, int out, int inputs_too, char *needs)
{
    char *reaches = xcalloc((size_t)g->n, 1); /* i depends on a differentiable leaf */
    for (int i = 0; i <= out; i++) {
        const GNode *n = &g->nodes[i];
        if (node_trainable(n) || (inputs_too && n->op == OP_INPUT && n->dtype == DT_REAL))
            reaches[i] = 1;
        for (int j = 0; j < n->nin; j++)
            if (reaches[n->in[j]]) reaches[i] = 1;
    }
    char *feeds = xcalloc((size_t)g->n, 1); /* out depends on i */
    feeds[out] = 1;
    for (int i = out; i >= 0; i--)
        if (feeds[i])
            for (int j = 0; j < g->nodes[i].nin; j++) feeds[g->nodes[i].in[j]] = 1;
    for (int i = 0; i < g->n; i++) needs[i] = reaches[i] && feeds[i];
    free(reaches);
    free(feeds);
}

int autodiff(Graph *g, int out, int seed, int inputs_too, char *err, size_t errlen)
{
    int nf = g->n_forward ? g->n_forward : g->n;
    if (out < 0 || out >= nf) {
        snprintf(err, errlen, "autodiff: no output to differentiate");
        return -1;
    }
    AD ad = {.g = g};
    ad.grad_of = xmalloc(sizeof(int) * (size_t)nf);
    for (int i = 0; i < nf; i++) ad.grad_of[i] = -1;
    ad.needs = xcalloc((size_t)nf, 1);
    mark_needs(g, out, inputs_too, ad.needs);
    if (!ad.needs[out]) {
        snprintf(err, errlen, "autodiff: the output depends on no trainable parameter");
        free(ad.grad_of);
        free(ad.needs);
        return -1;
    }
    if (seed < 0) {
        if (g->nodes[out].shape.nd != 0) {
            snprintf(err, errlen, "autodiff: a non-scalar output needs an explicit seed gradient");
            free(ad.grad_of);
            free(ad.needs);
            return -1;
        }
        ad.cur = out;
        seed = ad_emit(&ad, OP_SEED, NULL, 0, shape_of(0), NULL, -1);
    } else if (!shape_eq(&g->nodes[seed].shape, &g->nodes[out].shape)) {
        snprintf(err, errlen, "autodiff: the seed gradient's shape differs from the output's");
        free(ad.grad_of);
        free(ad.needs);
        return -1;
    }
    ad.grad_of[out] = seed;
    for (int i = out; i >= 0; i--) {
        const GNode *n = &g->nodes[i];
        if (!ad.needs[i] || ad.grad_of[i] < 0 || n->op == OP_PARAM || n->op == OP_INPUT ||
            n->op == OP_BUFFER)
            continue;
        if (vjp(&ad, i, ad.grad_of[i], err, errlen)) {
            free(ad.grad_of);
            free(ad.needs);
            return -1;
        }
    }
    free(ad.needs);
    free(g->grad_of);
    g->grad_of = xmalloc(sizeof(int) * (size_t)g->n);
    for (int i = 0; i < g->n; i++) g->grad_of[i] = i < nf ? ad.grad_of[i] : -1;
    free(ad.grad_of);
    return 0;
}

void autodiff_add_optimizer(Graph *g)
{
    GAttr a = {0};
    int norm = graph_op(g, OP_GRAD_NORM, NULL, 0, shape_of(1, (int64_t)1), NULL);
    g->nodes[norm].fwd = -1;
    g->nodes[norm].gparam = -1;
    int step = graph_op(g, OP_ADAMW, &norm, 1, shape_of(0), &a);
    g->nodes[step].shape.nd = 0;
    g->nodes[step].fwd = -1;
    g->nodes[step].gparam = -1;
}
