/* exec_cpu.h: runs a planned graph with the native CPU kernels.
 *
 * Holds the storage a plan needs (arena, parameters, gradients, AdamW moments,
 * buffers, kernel workspace) and executes node ranges: the forward graph for
 * evaluation and sampling, the whole graph for a training step. The same code
 * runs in float (the training path) or double (tests against finite
 * differences), chosen by the plan's real_size.
 */
#ifndef KANC_EXEC_CPU_H
#define KANC_EXEC_CPU_H

#include <stdint.h>

#include "plan.h"

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    double clip; /* max global gradient norm; <= 0: no clipping */
} AdamWConfig;

typedef struct {
    Plan *plan;
    Graph *g;
    size_t rs;            /* real size: 4 or 8 */
    unsigned char *arena;
    void *params, *grads, *m, *v, *buffers, *ws;
    uint64_t seed;        /* dropout randomness */
    int64_t step;         /* optimizer steps taken (AdamW's t is step + 1) */
    int training;         /* dropout active */
    AdamWConfig opt;
    double grad_norm;     /* set by OP_GRAD_NORM */
    double *op_seconds;   /* non-NULL: time spent per op kind is added here (OP__COUNT) */
    double clip_scale;    /* the factor the gradients were multiplied by */
} CpuExec;

/* Allocates every area (zeroed) for plan p. */
void cpu_exec_init(CpuExec *e, Plan *p);
void cpu_exec_free(CpuExec *e);

/* Runs nodes [from, to). The whole step: cpu_exec_run(e, 0, g->n); the
   gradient area is zeroed first when the range contains the first backward
   node (g->n_forward). */
void cpu_exec_run(CpuExec *e, int from, int to);

/* 1 if op has a CPU runner in both precisions (every op of ops/ops.def must). */
int cpu_exec_has_runner(GOp op);

/* Pointer to node i's value (arena, parameter or buffer area). */
void *cpu_exec_value(CpuExec *e, int i);
/* Pointer to the gradient of parameter node i. */
void *cpu_exec_grad(CpuExec *e, int i);
/* Reads a scalar value (loss, norm) as double. */
double cpu_exec_scalar(CpuExec *e, int i);

#endif
