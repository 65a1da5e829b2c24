/* kan_op.h: where the fused KAN op (ops/ops.def) keeps each input.
 *
 *   kan:                  x, grid, base_weight (unless attr.no_base), the spline
 *                         weights, spline_scaler (if attr.has_scaler)
 *   kan_bwd_w, kan_bwd_x: dy, then the same list (kan_bwd_x then prev?)
 *
 * The base branch and the scaler are optional (ChebyKAN has neither; FastKAN's
 * base is an ordinary linear node beside the op), so the positions after the
 * grid depend on the attributes: ask here, never count.
 */
#ifndef KANC_KAN_OP_H
#define KANC_KAN_OP_H

#include "graph.h"
#include "kan_basis.h"

/* positions in the forward op's inputs; -1 for an input the op has not */
static inline int kan_in_base(const GAttr *a) { return a->no_base ? -1 : 2; }
static inline int kan_in_spline(const GAttr *a) { return a->no_base ? 2 : 3; }
static inline int kan_in_scaler(const GAttr *a) { return a->has_scaler ? kan_in_spline(a) + 1 : -1; }
/* the forward op's input count */
static inline int kan_nin(const GAttr *a) { return kan_in_spline(a) + 1 + (a->has_scaler != 0); }

/* 1 when node n is a KAN grid buffer whose family holds integers (ChebyKAN's
   arange): state_dicts and checkpoints store it as I64, as PyTorch does */
static inline int kan_grid_is_i64(const GNode *n)
{
    return n->op == OP_BUFFER && n->init == INIT_KAN_GRID && kan_basis(n->a.basis)->grid_i64;
}

#endif
