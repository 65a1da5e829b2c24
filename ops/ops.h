/* ops.h: what the compiler knows about each op, from ops/ops.def.
 *
 * One row per op: its kind, family and flags (ops.def), and the family's
 * functions for FLOPs and CPU workspace. The VJP rules (autodiff.h), CPU
 * runners (runtime/exec/exec_cpu.c) and CUDA emitters (compiler/codegen_cuda.c)
 * are tables indexed by the same GOp, built from ops.def with the op's name:
 * a missing piece does not link, and tests/test_ops.c checks every table.
 */
#ifndef KANC_OPS_H
#define KANC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

typedef enum { OPK_LEAF, OPK_FWD, OPK_BWD, OPK_OPT } OpKind;

/* Where an op's matrix-product FLOPs (OpFamily.flops) go in kanc --report:
   the KAN layers' fused products, the other GEMMs (Linear layers, lm_head),
   attention's two products per head (QK^T, PV). Arithmetic outside matrix
   products (OpFamily.elementwise_flops: norms, activations, softmax, losses,
   the optimizer) is FLOPS_ELEMENTWISE whatever the op's class. */
typedef enum { FLOPS_ELEMENTWISE, FLOPS_KAN, FLOPS_GEMM, FLOPS_ATTENTION, FLOPS__COUNT } FlopClass;

enum {
    OPF_READS_FWD_AUX = 1 << 0,      /* a backward op reading its forward node's aux tensor */
    OPF_WRITES_INPUT_GRADS = 1 << 1, /* writes the gradients of parameter inputs (dw, db, ...) */
    /* bits 2-3: the op's FlopClass (ops.def: OPF_FLOPS(FLOPS_KAN)); 0: elementwise */
    OPF_FLOPS_SHIFT = 2,
    OPF_FLOPS_MASK = 3 << OPF_FLOPS_SHIFT,
};
#define OPF_FLOPS(cls) ((cls) << OPF_FLOPS_SHIFT)

/* What an op family provides besides its ops' pieces (ops/<family>.c). */
typedef struct {
    const char *name;
    /* multiply-adds times 2 of node n's matrix products (0 for ops without); may be NULL */
    double (*flops)(const Graph *g, const GNode *n);
    /* node n's other arithmetic, counted per element from its kernel (an add,
       a multiply, an exp or a tanh is one FLOP); may be NULL (none) */
    double (*elementwise_flops)(const Graph *g, const GNode *n);
    /* CPU workspace elements node n needs, in reals of real_size bytes; may be NULL */
    int64_t (*cpu_workspace)(const Graph *g, const GNode *n, size_t real_size);
    /* bytes of node n's aux tensor in a CUDA step with bf16 GEMM operands, 0 for
       the aux_numel reals it has otherwise; may be NULL (always those) */
    int64_t (*aux_bytes_bf16)(const GNode *n);
} OpFamily;

typedef struct {
    const char *name;
    OpKind kind;
    unsigned flags;
    const OpFamily *family;
} OpInfo;

/* The row of op (a valid GOp). */
const OpInfo *op_info(GOp op);

/* Backward and optimizer ops: made by autodiff, never by a model. */
static inline int op_is_backward(GOp op) { return op_info(op)->kind >= OPK_BWD; }

/* Node n writes into the gradient area: a parameter's gradient (gparam) or
   its parameter inputs' (OPF_WRITES_INPUT_GRADS). */
int op_writes_param_grads(const GNode *n);

/* Multiply-adds times 2 of node n's matrix products (the model FLOPs of MFU);
   its other arithmetic; the class its matrix products count in; its CPU
   workspace in reals. */
double op_flops(const Graph *g, const GNode *n);
double op_elementwise_flops(const Graph *g, const GNode *n);
FlopClass op_flop_class(GOp op);
/* "KAN GEMMs", "other GEMMs", "attention", "elementwise" */
const char *flop_class_name(FlopClass c);
int64_t op_cpu_workspace(const Graph *g, const GNode *n, size_t real_size);
/* the bytes of node n's aux tensor (gemm_bf16: in a step with bf16 GEMM operands) */
int64_t op_aux_bytes(const GNode *n, size_t real_size, int gemm_bf16);

#endif
