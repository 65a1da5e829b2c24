/* cpu_node.h: what a CPU runner sees of the node it runs.
 *
 * A runner (cpu_run_<op>_f32 / _f64 in ops/<family>_cpu.inc, one per op of
 * ops/ops.def) maps a node's inputs and attributes to its family's kernel.
 * The executor (exec_cpu.c) fills a CpuNode per node and calls the runner
 * from its table. The accessors below need REAL defined and a `c` in scope.
 */
#ifndef KANC_CPU_NODE_H
#define KANC_CPU_NODE_H

#include <stdint.h>

#include "exec_cpu.h"

typedef struct {
    CpuExec *e;
    const Graph *g;
    const GNode *n;  /* the node */
    const GAttr *a;  /* its attributes */
    const GNode *f;  /* the forward node of a backward node, else NULL */
    void *y;         /* the output: the node's value, or the gradient of the parameter it targets */
    void *aux;       /* the node's aux tensor, or NULL */
    void *faux;      /* its forward node's aux tensor, or NULL */
    int acc;         /* add into the output */
    int64_t numel;   /* elements of the output */
    uint64_t stream; /* the dropout stream of the (forward) node at this step */
    double p_drop;   /* dropout probability in effect (0 when not training) */
} CpuNode;

typedef void (*CpuRunner)(const CpuNode *c);

#define OUT ((REAL *)c->y)
#define AUX ((REAL *)c->aux)
#define FAUX ((REAL *)c->faux)
#define IN(j) ((REAL *)cpu_exec_value(c->e, c->n->in[j]))             /* input j's value */
#define IN_IDX(j) ((const int32_t *)cpu_exec_value(c->e, c->n->in[j])) /* input j as ids */
#define IN_SHAPE(j) (&c->g->nodes[c->n->in[j]].shape)                  /* input j's shape */
#define IN_GRAD(j) ((REAL *)cpu_exec_grad(c->e, c->n->in[j]))          /* parameter input j's gradient */

#endif
