/* ops.c: the op table, built from ops/ops.def. */
#include "ops.h"

#define FAMILY(name) extern const OpFamily op_family_##name;
#include "ops.def"

static const OpInfo OPS[] = {
#define OP(kind, ENUM, name, family, flags) [OP_##ENUM] = {#name, OPK_##kind, flags, &op_family_##family},
#include "ops.def"
};
_Static_assert(sizeof OPS / sizeof *OPS == OP__COUNT, "ops.def and GOp disagree");

const OpInfo *op_info(GOp op) { return &OPS[op]; }

int op_writes_param_grads(const GNode *n)
{
    return op_is_backward(n->op) && (n->gparam >= 0 || (op_info(n->op)->flags & OPF_WRITES_INPUT_GRADS));
}

double op_flops(const Graph *g, const GNode *n)
{
    const OpFamily *f = op_info(n->op)->family;
    return f->flops ? f->flops(g, n) : 0;
}

double op_elementwise_flops(const Graph *g, const GNode *n)
{
    const OpFamily *f = op_info(n->op)->family;
    return f->elementwise_flops ? f->elementwise_flops(g, n) : 0;
}

FlopClass op_flop_class(GOp op)
{
    return (FlopClass)((op_info(op)->flags & OPF_FLOPS_MASK) >> OPF_FLOPS_SHIFT);
}

const char *flop_class_name(FlopClass c)
{
    static const char *const names[FLOPS__COUNT] = {
        [FLOPS_ELEMENTWISE] = "elementwise", [FLOPS_KAN] = "KAN GEMMs", [FLOPS_GEMM] = "other GEMMs",
        [FLOPS_ATTENTION] = "attention"};
    return c >= 0 && c < FLOPS__COUNT ? names[c] : "?";
}

int64_t op_aux_bytes(const GNode *n, size_t real_size, int gemm_bf16)
{
    const OpFamily *f = op_info(n->op)->family;
    int64_t b = gemm_bf16 && f->aux_bytes_bf16 ? f->aux_bytes_bf16(n) : 0;
    return b > 0 ? b : n->aux_numel * (int64_t)real_size;
}

int64_t op_cpu_workspace(const Graph *g, const GNode *n, size_t real_size)
{
    const OpFamily *f = op_info(n->op)->family;
    return f->cpu_workspace ? f->cpu_workspace(g, n, real_size) : 0;
}
