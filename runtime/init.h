/* init.h: initial values of parameters and buffers, from each node's init rule.
 *
 * Follows the PyTorch reference's rules (minGPT's normal(0, 0.02), torch's
 * kaiming_uniform_, efficient-kan's least-squares spline fit of small noise,
 * uniform knots, the causal mask), drawing from the project's counter RNG:
 * the same seed gives the same model on every machine; the draws are not
 * torch's.
 */
#ifndef KANC_INIT_H
#define KANC_INIT_H

#include <stdint.h>

#include "plan.h"

/* Fills host copies of the parameter and buffer areas (plan order, the plan's
   real type): buffers first (a spline fit needs its knots), then parameters.
   Returns 0, or -1 with a message in err (no rule, a failed fit). */
int init_state(const Plan *p, void *params, void *buffers, uint64_t seed, char *err, size_t errlen);

/* Only the buffers, which are derived from the model (knots, masks). */
void init_buffers(const Plan *p, void *buffers);

#endif
