/* test_mfu.c: the FLOP split of kanc --report, the GPU peak table, and the
 * model FLOP/s and MFU that kanrun bench and kanrun train print.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "frontend.h"
#include "kan_basis.h"
#include "plan.h"
#include "test_util.h"
#include "util.h"

/* the training graph (forward, backward, optimizer) of a model source */
static void compile_step(const char *path, const char *src, const KdlSet *sets, int nsets, Graph *g)
{
    graph_init(g);
    cr_assert_eq(kdl_compile(path, src, strlen(src), sets, nsets, g, NULL, stderr), 0, "%s", path);
    g->n_forward = g->n;
    char err[256];
    cr_assert_eq(autodiff(g, g->loss, -1, 0, err, sizeof err), 0, "%s", err);
    autodiff_add_optimizer(g);
}

static void compile_model_file(const char *rel, const KdlSet *sets, int nsets, Graph *g)
{
    char *path = test_repo_path(rel);
    char *src = read_file(path, NULL);
    cr_assert(src, "cannot read %s", path);
    compile_step(path, src, sets, nsets, g);
    free(src);
    free(path);
}

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b)); }

/* the matrix-product classes sum to plan_flops; the elementwise row is the rest */
static void check_sums(const Graph *g, int64_t tokens, double want_fwd, double want_step)
{
    Plan p;
    plan_build(&p, (Graph *)g, 4);
    double fwd, step;
    plan_flops(&p, tokens, &fwd, &step);
    FlopSplit s;
    plan_flop_split(&p, tokens, &s);
    double mf = s.fwd[FLOPS_KAN] + s.fwd[FLOPS_GEMM] + s.fwd[FLOPS_ATTENTION];
    double ms = s.step[FLOPS_KAN] + s.step[FLOPS_GEMM] + s.step[FLOPS_ATTENTION];
    cr_expect(close_rel(mf, fwd), "forward classes sum to %.6g, plan_flops %.6g", mf, fwd);
    cr_expect(close_rel(ms, step), "step classes sum to %.6g, plan_flops %.6g", ms, step);
    /* the totals --report printed before the split (4 digits) */
    cr_expect(fabs(fwd / want_fwd - 1) < 5e-4, "forward %.6g, expected %.4g", fwd, want_fwd);
    cr_expect(fabs(step / want_step - 1) < 5e-4, "step %.6g, expected %.4g", step, want_step);
    cr_expect(s.fwd[FLOPS_ELEMENTWISE] > 0 && s.step[FLOPS_ELEMENTWISE] > s.fwd[FLOPS_ELEMENTWISE]);
    cr_expect(s.fwd[FLOPS_ELEMENTWISE] == s.elementwise_fwd && s.step[FLOPS_ELEMENTWISE] == s.elementwise_step);
    /* every op with matrix products has a class of its own */
    for (int i = 0; i < g->n; i++)
        if (op_flops(g, &g->nodes[i]) > 0)
            cr_expect_neq(op_flop_class(g->nodes[i].op), FLOPS_ELEMENTWISE, "%s has products but no class",
                          op_name(g->nodes[i].op));
    plan_free(&p);
}

Test(mfu, report_split_sums_to_the_model_flops)
{
    /* gpt-nano: n_layer 3, n_head 3, n_embd 48, block 64, batch 16 (the model defaults) */
    KdlSet sets[] = {{"n_layer", "3", 0}, {"n_head", "3", 0}, {"n_embd", "48", 0},
                     {"vocab_size", "256", 0}, {"block_size", "64", 0}, {"batch", "16", 0}};
    Graph g;
    compile_model_file("models/kansformers.kdl", sets, 6, &g);
    check_sums(&g, 1024, 1.751e6, 5.253e6);
    graph_free(&g);
    compile_model_file("models/mingpt.kdl", sets, 6, &g);
    check_sums(&g, 1024, 2.273e5, 6.82e5);
    graph_free(&g);
}

/* one KAN layer of N rows: forward 2 N in out (nf + base); the step adds the
   weight gradient (the same product) and, when its input needs a gradient,
   the input gradient (the same again) */
static void check_one_kan(const char *opts, int grad_x, int nf, int base, int linear_base)
{
    const int64_t N = 24, in = 7, out = 5;
    char src[1024];
    snprintf(src, sizeof src,
             "model one(x: real[%lld, %lld]) {\n"
             "  h = %s\n"
             "  y = kan_linear(h, %lld%s)\n"
             "  loss = sum(y)\n"
             "  return y, loss\n}\n",
             (long long)N, (long long)in, grad_x ? "layernorm(x)" : "x", (long long)out, opts);
    Graph g;
    compile_step("one_kan.kdl", src, NULL, 0, &g);
    Plan p;
    plan_build(&p, &g, 4);
    FlopSplit s;
    plan_flop_split(&p, 1, &s);
    double fwd = 2.0 * N * in * out * (nf + base);
    cr_expect(close_rel(s.fwd[FLOPS_KAN], fwd), "%s: forward KAN FLOPs %.6g, closed form %.6g", src,
              s.fwd[FLOPS_KAN], fwd);
    cr_expect(close_rel(s.step[FLOPS_KAN], (grad_x ? 3 : 2) * fwd), "%s: step KAN FLOPs %.6g, closed form %.6g",
              src, s.step[FLOPS_KAN], (grad_x ? 3 : 2) * fwd);
    /* FastKAN's base branch is a Linear layer of its own: other GEMMs */
    double lin = linear_base ? 2.0 * N * in * out : 0;
    cr_expect(close_rel(s.fwd[FLOPS_GEMM], lin) && close_rel(s.step[FLOPS_GEMM], 3 * lin),
              "%s: other GEMMs %.6g forward, %.6g step", src, s.fwd[FLOPS_GEMM], s.step[FLOPS_GEMM]);
    cr_expect(s.step[FLOPS_ATTENTION] == 0);
    plan_free(&p);
    graph_free(&g);
}

Test(mfu, one_kan_layer_matches_the_closed_form)
{
    int G = 5, k = 3; /* the defaults: B-spline nf = G + k */
    check_one_kan("", 0, G + k, 1, 0);
    check_one_kan("", 1, G + k, 1, 0);
    check_one_kan(", grid_size = 8, spline_order = 2", 1, 8 + 2, 1, 0);
    check_one_kan(", base = \"none\"", 1, G + k, 1, 0); /* identity base: still a base weight */
    check_one_kan(", basis = \"chebyshev\", degree = 4", 1, 4 + 1, 0, 0); /* ChebyKAN: no base branch */
    check_one_kan(", basis = \"rbf\", num_grids = 6", 1, 6, 0, 1);
}
