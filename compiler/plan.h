/* plan.h: the step plan: storage for every value of the training graph.
 *
 * Activations and gradients of activations live in one arena, placed by
 * liveness (a value's bytes are reused once its last reader has run). A node
 * that accumulates into a partial gradient shares that partial's storage.
 * Parameters, their gradients and AdamW moments live in four parallel areas of
 * n_param_elems reals; buffers (knot grids, masks) in a fifth. Offsets are in
 * bytes for the arena and in elements for the parameter and buffer areas.
 */
#ifndef KANC_PLAN_H
#define KANC_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "graph.h"
#include "ops.h" /* FlopClass */

#define PLAN_ALIGN 64

typedef struct {
    Graph *g;
    size_t real_size;     /* 4 (float) or 8 (double) */
    int64_t *off;         /* per node: arena byte offset of its value, -1 if none */
    int64_t *aux_off;     /* per node: arena byte offset of its aux tensor, -1 if none */
    int64_t *pos;         /* per param/buffer node: element offset in its area, else -1 */
    int64_t arena_bytes;  /* peak of the arena */
    int64_t n_param_elems, n_buffer_elems;
    int64_t ws_elems;     /* the largest kernel workspace (the fused KAN layer's) */
    int n_params, n_buffers;
    int gemm_bf16;        /* laid out for a CUDA step with bf16 GEMM operands (aux tensors
                             the op keeps in bf16 are half the size: op_aux_bytes) */
} Plan;

/* 1 if node n produces a value (parameter-gradient and optimizer nodes don't) */
int node_has_value(const GNode *n);
int64_t node_bytes(const GNode *n, size_t real_size);

void plan_build(Plan *p, Graph *g, size_t real_size);
/* plan_build for the step a device runs: gemm_bf16 for a CUDA step with bf16
   GEMM operands (attention's P then in bf16), 0 for every other */
void plan_build_for(Plan *p, Graph *g, size_t real_size, int gemm_bf16);
void plan_free(Plan *p);

/* FLOPs per token of the forward graph and of the whole step (2 per
   multiply-add of the matrix products: the model FLOPs of MFU). The step is
   forward, backward, gradient norm and AdamW, each node once (no recompute). */
void plan_flops(const Plan *p, int64_t tokens, double *fwd, double *step);

/* The same per token by FlopClass (ops/ops.h), forward and whole step: the
   matrix products of each class (their sum over classes is plan_flops), and
   `elementwise` the arithmetic outside them (norms, activations, softmax,
   losses, the optimizer; not in the model FLOPs). */
typedef struct {
    double fwd[FLOPS__COUNT], step[FLOPS__COUNT];
    double elementwise_fwd, elementwise_step;
} FlopSplit;
void plan_flop_split(const Plan *p, int64_t tokens, FlopSplit *s);
/* kanc --report: parameters, arena, workspace, FLOPs, the step's op list */
void plan_report(const Plan *p, int64_t tokens, FILE *f);

#endif
