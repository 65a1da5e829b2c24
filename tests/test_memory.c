/* test_memory.c: the KAN basis tensor is never allocated.
 *
 * A training graph for one KAN layer and for one Linear layer of the same
 * shape, at a size where the (N, in, G+k) basis tensor would dominate. Both
 * save only x for the backward pass; the KAN layer's input gradient also
 * reads x (B'(x)), so x and dx coexist once: the stated bound is
 *     KAN arena <= Linear arena + N * in * 4 bytes,
 * far below the basis tensor (N * in * (G+k) * 4 bytes). The kernel workspace
 * (one block of rows, a few MiB) must stay far below the basis tensor too and
 * must not grow with N.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "autodiff.h"
#include "frontend.h"
#include "graph_build.h"
#include "util.h"
#include "plan.h"
#include "test_util.h"

/* loss = sum(layer(x)), x an input; returns the planned arena and workspace */
static void plan_layer(int kan, int64_t N, int64_t in, int64_t out, int G, int k,
                       int64_t *arena, int64_t *ws)
{
    Case c = {0};
    Graph *g = &c.g;
    graph_init(g);
    int x = leaf(&c, OP_INPUT, "x", shape_of(2, N, in), DT_REAL);
    int y;
    GShape ys = shape_of(2, N, out);
    if (kan) {
        int grid = leaf(&c, OP_BUFFER, "grid", shape_of(2, in, (int64_t)(G + 2 * k + 1)), DT_REAL);
        int b = param(&c, "base_weight", shape_of(2, out, in));
        int s = param(&c, "spline_weight", shape_of(3, out, in, (int64_t)(G + k)));
        int sc = param(&c, "spline_scaler", shape_of(2, out, in));
        GAttr a = {.grid_size = G, .spline_order = k, .has_scaler = 1, .act = ACT_SILU};
        y = graph_op(g, OP_KAN, (int[]){x, grid, b, s, sc}, 5, ys, &a);
    } else {
        int w = param(&c, "weight", shape_of(2, out, in));
        y = graph_op(g, OP_LINEAR, (int[]){x, w}, 2, ys, NULL);
    }
    int loss = graph_op(g, OP_SUM, &y, 1, shape_of(0), NULL);
    g->n_forward = g->n;
    g->loss = loss;
    char err[128];
    cr_assert_eq(autodiff(g, loss, -1, 1, err, sizeof err), 0, "%s", err);
    autodiff_add_optimizer(g);
    Plan p;
    plan_build(&p, g, 4);
    *arena = p.arena_bytes;
    *ws = p.ws_elems * 4;
    plan_free(&p);
    graph_free(g);
}

Test(memory, kan_layer_saves_only_its_input)
{
    const int64_t N = 16384, in = 64, out = 64;
    const int G = 5, k = 3;
    int64_t basis_bytes = N * in * (G + k) * 4; /* 32 MiB: what the PyTorch layer keeps */
    int64_t kan_arena, kan_ws, lin_arena, lin_ws;
    plan_layer(1, N, in, out, G, k, &kan_arena, &kan_ws);
    plan_layer(0, N, in, out, G, k, &lin_arena, &lin_ws);
    cr_log_info("N=%lld: KAN arena %lld + workspace %lld bytes; Linear arena %lld; basis %lld",
                (long long)N, (long long)kan_arena, (long long)kan_ws, (long long)lin_arena,
                (long long)basis_bytes);
    int64_t x_bytes = N * in * 4;
    cr_expect_leq(kan_arena, lin_arena + x_bytes, "KAN arena %lld vs Linear arena %lld + x %lld",
                  (long long)kan_arena, (long long)lin_arena, (long long)x_bytes);
    cr_expect_lt(kan_arena * 2, basis_bytes, "KAN arena %lld vs basis %lld", (long long)kan_arena,
                 (long long)basis_bytes);
    /* the workspace (fused weight, its gradient, one row block) is < 1/4 of the basis */
    cr_expect_lt(kan_ws * 4, basis_bytes, "workspace %lld vs basis %lld", (long long)kan_ws,
                 (long long)basis_bytes);
    /* and does not grow with the number of rows */
    int64_t a2, ws2;
    plan_layer(1, 4 * N, in, out, G, k, &a2, &ws2);
    cr_expect_eq(ws2, kan_ws, "workspace grew with N: %lld -> %lld", (long long)kan_ws, (long long)ws2);
}

/* arena of a shipped model's training step, at gpt-micro size (context 128) */
static int64_t model_arena(const char *model)
{
    char *path = xasprintf("%s/models/%s", test_root(), model);
    size_t len;
    char *src = read_file(path, &len);
    cr_assert(src, "cannot read %s", path);
    KdlSet sets[] = {{"n_layer", "4", 0}, {"n_head", "4", 0}, {"n_embd", "128", 0}, {"block_size", "128", 0}};
    Graph g;
    graph_init(&g);
    cr_assert_eq(kdl_compile(path, src, len, sets, 4, &g, NULL, stderr), 0);
    g.n_forward = g.n;
    char err[128];
    cr_assert_eq(autodiff(&g, g.loss, -1, 0, err, sizeof err), 0, "%s", err);
    autodiff_add_optimizer(&g);
    Plan p;
    plan_build(&p, &g, 4);
    int64_t bytes = p.arena_bytes;
    plan_free(&p);
    graph_free(&g);
    free(src);
    free(path);
    return bytes;
}

Test(memory, kan_gpt_arena_is_within_a_small_factor_of_the_mlp_gpt)
{
    int64_t kan = model_arena("kansformers.kdl"), hybrid = model_arena("hybrid.kdl"),
            mlp = model_arena("mingpt.kdl");
    cr_log_info("gpt-micro arenas: kansformers %lld, hybrid %lld, mingpt %lld bytes", (long long)kan,
                (long long)hybrid, (long long)mlp);
    /* the KAN models keep what the MLP model keeps: no basis tensors */
    cr_expect_leq(kan, 2 * mlp, "kansformers arena %lld vs mingpt %lld", (long long)kan, (long long)mlp);
    cr_expect_leq(hybrid, 2 * mlp, "hybrid arena %lld vs mingpt %lld", (long long)hybrid, (long long)mlp);
}
