/* test_ops.c: the op table (ops/ops.def) is complete: every op has the pieces its kind needs.
 *
 * The tables are built from ops.def with each op's name, so a missing VJP
 * rule, CPU runner or CUDA emitter already fails the link; these cases check
 * the tables' contents and the flags that plan.c and the tests read.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "autodiff.h"
#include "codegen_cuda.h"
#include "exec_cpu.h"
#include "ops.h"

TestSuite(ops);

Test(ops, every_op_has_its_pieces)
{
    for (int op = 0; op < OP__COUNT; op++) {
        const OpInfo *o = op_info(op);
        cr_assert_not_null(o->name, "op %d has no row", op);
        cr_assert_str_eq(op_name(op), o->name);
        cr_assert_not_null(o->family, "%s has no family", o->name);
        cr_assert(cpu_exec_has_runner(op), "%s has no CPU runner", o->name);
        cr_assert(codegen_cuda_has_emitter(op), "%s has no CUDA emitter", o->name);
        if (o->kind == OPK_FWD)
            cr_assert_not_null(autodiff_rule(op), "forward op %s has no VJP rule", o->name);
        else
            cr_assert_null(autodiff_rule(op), "%s is not a forward op but has a VJP rule", o->name);
    }
}

Test(ops, kinds_are_in_enum_order)
{
    /* leaves, forward, then backward and optimizer ops: op_is_backward relies on it */
    int last = OPK_LEAF;
    for (int op = 0; op < OP__COUNT; op++) {
        int k = op_info(op)->kind;
        cr_assert_geq(k, last, "%s breaks the kind order", op_name(op));
        if (k > last) last = k;
    }
    cr_assert_eq(op_info(OP_INPUT)->kind, OPK_LEAF);
    cr_assert_eq(op_info(OP_KAN)->kind, OPK_FWD);
    cr_assert(op_is_backward(OP_SEED) && op_is_backward(OP_ADAMW) && !op_is_backward(OP_SUM));
}

Test(ops, flags)
{
    /* the backward ops that read their forward's aux: what plan.c keeps alive */
    const GOp reads[] = {OP_LAYERNORM_BWD, OP_RMSNORM_BWD, OP_ATTENTION_BWD, OP_CE_BWD, OP_KAN_REG_BWD};
    int n = 0;
    for (int op = 0; op < OP__COUNT; op++)
        if (op_info(op)->flags & OPF_READS_FWD_AUX) {
            n++;
            int known = 0;
            for (size_t j = 0; j < sizeof reads / sizeof *reads; j++) known |= reads[j] == (GOp)op;
            cr_assert(known, "%s reads the forward aux", op_name(op));
            cr_assert(op_is_backward(op));
        }
    cr_assert_eq(n, (int)(sizeof reads / sizeof *reads));
    GNode lnb = {.op = OP_LAYERNORM_BWD, .gparam = -1};
    cr_assert(op_writes_param_grads(&lnb), "layernorm_bwd writes dw and db");
    GNode acc = {.op = OP_ACC, .gparam = -1};
    cr_assert(!op_writes_param_grads(&acc));
    acc.gparam = 3;
    cr_assert(op_writes_param_grads(&acc), "a node targeting a parameter writes its gradient");
    GNode lin = {.op = OP_LINEAR, .gparam = -1};
    cr_assert(!op_writes_param_grads(&lin));
}
