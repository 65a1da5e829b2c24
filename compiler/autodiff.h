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

#endif
