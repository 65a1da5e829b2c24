/* autodiff.h: reverse-mode differentiation of the forward graph, and the optimizer nodes.
 *
 * Appends to the graph, after its forward nodes, one or more backward nodes per
 * forward node (its VJP rule), accumulating where a value fans out; then, for
 * training, the global gradient norm and the AdamW update (with clipping).
 */
#ifndef KANC_AUTODIFF_H
#define KANC_AUTODIFF_H

#include "graph.h"

/* Differentiates node `out`. seed: a node holding d/d(out) (same shape as out),
   or -1 for a scalar `out` (seeded with 1). Gradients are computed for every
   trainable parameter and, when inputs_too, for float OP_INPUT nodes; see
   g->grad_of. Returns 0, or -1 with a message in err when out does not depend
   on anything differentiable or the seed's shape is wrong. */
int autodiff(Graph *g, int out, int seed, int inputs_too, char *err, size_t errlen);

/* Appends the optimizer: OP_GRAD_NORM then OP_ADAMW (clipping the global norm
   as torch's clip_grad_norm_; its limit is a runtime setting). Call after
   autodiff. */
void autodiff_add_optimizer(Graph *g);

/* ---- for the VJP rules (ops/<family>.c) ---- */

/* The state of one differentiation; a rule sees it only through these calls. */
typedef struct AdCtx AdCtx;

/* The VJP rule of a forward op: adds the contributions of node n (a copy:
   emitting may move the graph's array), whose output gradient is node dy. */
typedef void (*AdRule)(AdCtx *ad, const GNode *n, int dy);

/* The rule of op, or NULL for an op without one (leaves, backward ops). */
AdRule autodiff_rule(GOp op);

Graph *ad_graph(AdCtx *ad);
/* A gradient must flow into node id. */
int ad_wants(AdCtx *ad, int id);
/* A backward node (op, in, shape, a) of the node being differentiated;
   gparam: the parameter whose gradient it writes, or -1. Returns its id. */
int ad_emit(AdCtx *ad, GOp op, const int *in, int nin, GShape shape, const GAttr *a, int gparam);
/* Adds a contribution (op, in[0..nin), a) to the gradient of node target:
   for a value, the node gets the partial sum so far as an extra last input
   (a.acc = 1); for a parameter, it writes into the gradient area. */
int ad_contribute(AdCtx *ad, int target, GOp op, const int *in, int nin, GAttr a);
/* A contribution that is already a value of target's shape (a slice of dy). */
void ad_contribute_value(AdCtx *ad, int target, int value);

#endif
