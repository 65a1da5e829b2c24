/* test_autodiff.c: every op's VJP rule against central finite differences.
 *
 * Each case builds a small graph by hand: trainable parameters (some used
 * directly, some through an intermediate value so the activation-gradient
 * path and in-place accumulation are exercised), the op under test, and the
 * scalar loss sum(out * R) for a fixed random R. The graph is differentiated,
 * planned in double precision and run on the CPU kernels; every parameter
 * gradient is compared with (L(p + h) - L(p - h)) / 2h. Shapes are ragged.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "autodiff.h"
#include "exec_cpu.h"
#include "init.h"
#include "plan.h"
#include "rng.h"
#include "graph_build.h"
#include "kan_basis.h"


static double urand(uint64_t seed, uint64_t stream, uint64_t i)
{
    return 2.0 * (double)(kanc_rng_bits(seed, stream, i) >> 11) / 9007199254740992.0 - 1.0;
}

static double run_loss(CpuExec *e, int nf, int loss)
{
    cpu_exec_run(e, 0, nf);
    return cpu_exec_scalar(e, loss);
}

/* Fills parameters and buffers (R, grids: `fill` callback may override), runs
   the step and checks every parameter gradient element against finite
   differences. */
typedef void (*FillFn)(Case *c, CpuExec *e);

static void check(Case *c, FillFn fill, double tol)
{
    Graph *g = &c->g;
    Plan p;
    plan_build(&p, g, 8);
    CpuExec e;
    cpu_exec_init(&e, &p);
    e.training = 1;
    e.seed = 1234;
    e.step = 3;
    for (int i = 0; i < g->n; i++) {
        GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER) continue;
        double *v = cpu_exec_value(&e, i);
        for (int64_t j = 0; j < shape_numel(&n->shape); j++) v[j] = urand(c->seed, (uint64_t)i, (uint64_t)j);
    }
    if (fill) fill(c, &e);
    int nf = g->n_forward;
    cpu_exec_run(&e, 0, g->n);
    for (int i = 0; i < g->n; i++) {
        GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM) continue;
        int64_t numel = shape_numel(&n->shape);
        double *v = cpu_exec_value(&e, i), *gr = cpu_exec_grad(&e, i);
        double *analytic = malloc(sizeof(double) * (size_t)numel);
        memcpy(analytic, gr, sizeof(double) * (size_t)numel);
        double diff2 = 0, ref2 = 0;
        for (int64_t j = 0; j < numel; j++) {
            double keep = v[j], h = 1e-6;
            v[j] = keep + h;
            double lp = run_loss(&e, nf, g->loss);
            v[j] = keep - h;
            double lm = run_loss(&e, nf, g->loss);
            v[j] = keep;
            double fd = (lp - lm) / (2 * h);
            diff2 += (fd - analytic[j]) * (fd - analytic[j]);
            ref2 += fd * fd;
        }
        double rel = sqrt(diff2 / (ref2 > 0 ? ref2 : 1));
        cr_expect(rel < tol, "gradient of %s: relative error %.3e vs finite differences", n->name, rel);
        cr_expect(ref2 > 0 || !strcmp(n->name, "zero"), "gradient of %s is all zero", n->name);
        free(analytic);
    }
    cpu_exec_free(&e);
    plan_free(&p);
    graph_free(&c->g);
}

#define TOL 1e-6

Test(autodiff, add_sub_mul_broadcast_and_fanout)
{
    Case c = {.seed = 1};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)3, (int64_t)5), t = shape_of(2, (int64_t)3, (int64_t)5);
    int a = value(&c, "a", s), b = param(&c, "b", t), d = value(&c, "d", t);
    int x = op(&c, OP_ADD, (int[]){a, b}, 2, s, (GAttr){0});
    int y = op(&c, OP_MUL, (int[]){x, d}, 2, s, (GAttr){0});
    int z = op(&c, OP_SUB, (int[]){y, a}, 2, s, (GAttr){0}); /* a fans out */
    int w = op(&c, OP_MUL, (int[]){z, z}, 2, s, (GAttr){0}); /* same value twice */
    finish(&c, w);
    check(&c, NULL, TOL);
}

Test(autodiff, scale_reshape_slice_concat)
{
    Case c = {.seed = 2};
    graph_init(&c.g);
    int a = value(&c, "a", shape_of(2, (int64_t)4, (int64_t)7));
    int b = param(&c, "b", shape_of(2, (int64_t)4, (int64_t)3));
    int s1 = op(&c, OP_SLICE, &a, 1, shape_of(2, (int64_t)4, (int64_t)3), (GAttr){.start = 2, .len = 3});
    int cat = op(&c, OP_CONCAT, (int[]){s1, b}, 2, shape_of(2, (int64_t)4, (int64_t)6), (GAttr){0});
    int sc = op(&c, OP_SCALE, &cat, 1, shape_of(2, (int64_t)4, (int64_t)6), (GAttr){.scale = -2.5});
    int r = op(&c, OP_RESHAPE, &sc, 1, shape_of(3, (int64_t)2, (int64_t)2, (int64_t)6), (GAttr){0});
    int s2 = op(&c, OP_SLICE, &a, 1, shape_of(2, (int64_t)4, (int64_t)2), (GAttr){.start = 5, .len = 2});
    int m = op(&c, OP_MUL, (int[]){s2, s2}, 2, shape_of(2, (int64_t)4, (int64_t)2), (GAttr){0});
    int flat = op(&c, OP_RESHAPE, &r, 1, shape_of(2, (int64_t)4, (int64_t)6), (GAttr){0});
    int cat2 = op(&c, OP_CONCAT, (int[]){m, flat}, 2, shape_of(2, (int64_t)4, (int64_t)8), (GAttr){0});
    finish(&c, cat2);
    check(&c, NULL, TOL);
}

Test(autodiff, linear_with_and_without_bias)
{
    for (int bias = 0; bias < 2; bias++) {
        Case c = {.seed = 3 + (uint64_t)bias};
        graph_init(&c.g);
        int x = value(&c, "x", shape_of(3, (int64_t)2, (int64_t)3, (int64_t)5));
        int w = param(&c, "w", shape_of(2, (int64_t)4, (int64_t)5));
        int in[3] = {x, w, bias ? param(&c, "b", shape_of(1, (int64_t)4)) : -1};
        int y = op(&c, OP_LINEAR, in, bias ? 3 : 2, shape_of(3, (int64_t)2, (int64_t)3, (int64_t)4),
                   (GAttr){.has_bias = bias});
        finish(&c, y);
        check(&c, NULL, TOL);
    }
}

static void fill_kan_grids(Case *c, CpuExec *e) { test_fill_kan_grids(&c->g, e); }

static void kan_case(uint64_t seed, int G, int k, int act, int scaler, int through_value)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int64_t N = 7, in = 3, out = 4;
    GShape xs = shape_of(2, N, in);
    int x = through_value ? value(&c, "x", xs) : param(&c, "x", xs);
    int grid = leaf(&c, OP_BUFFER, "grid", shape_of(2, in, (int64_t)(G + 2 * k + 1)), DT_REAL);
    int base = param(&c, "base_weight", shape_of(2, out, in));
    int spline = param(&c, "spline_weight", shape_of(3, out, in, (int64_t)(G + k)));
    int sc = scaler ? param(&c, "spline_scaler", shape_of(2, out, in)) : -1;
    GAttr a = {.grid_size = G, .spline_order = k, .has_scaler = scaler, .act = act};
    int y = op(&c, OP_KAN, (int[]){x, grid, base, spline, sc}, scaler ? 5 : 4, shape_of(2, N, out), a);
    /* a second use of x: the input gradient accumulates */
    int y2 = op(&c, OP_KAN, (int[]){x, grid, base, spline, sc}, scaler ? 5 : 4, shape_of(2, N, out), a);
    int s = op(&c, OP_MUL, (int[]){y, y2}, 2, shape_of(2, N, out), (GAttr){0});
    finish(&c, s);
    check(&c, fill_kan_grids, TOL);
}

Test(autodiff, kan_orders_and_options)
{
    kan_case(10, 5, 3, ACT_SILU, 1, 1);
    kan_case(11, 3, 1, ACT_SILU, 1, 0);
    kan_case(12, 8, 2, ACT_GELU, 0, 1);
    kan_case(13, 4, 3, ACT_RELU, 1, 1);
    kan_case(14, 6, 0, ACT_NONE, 1, 1);
}

/* a KAN op of another basis family (no base branch, no scaler, a shared grid),
   twice on the same x; x scaled by 2 so that tanh and the Gaussians' tails are
   reached */
static void kan_basis_case(uint64_t seed, KanBasisId basis, int G, int64_t in, int64_t out)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int64_t N = 7;
    const KanBasis *b = kan_basis(basis);
    int x0 = value(&c, "x", shape_of(2, N, in));
    int x = op(&c, OP_SCALE, &x0, 1, shape_of(2, N, in), (GAttr){.scale = 2.0});
    int grid = leaf(&c, OP_BUFFER, "grid", shape_of(1, (int64_t)b->grid_len(G, 0)), DT_REAL);
    c.g.nodes[grid].init = INIT_KAN_GRID;
    c.g.nodes[grid].init_a = -1.5, c.g.nodes[grid].init_b = 1.5;
    int w = param(&c, "w", b->weight_in_major ? shape_of(3, in, out, (int64_t)b->nf(G, 0))
                                               : shape_of(3, out, in, (int64_t)b->nf(G, 0)));
    GAttr a = {.grid_size = G, .no_base = 1, .basis = basis};
    int y = op(&c, OP_KAN, (int[]){x, grid, w}, 3, shape_of(2, N, out), a);
    int y2 = op(&c, OP_KAN, (int[]){x, grid, w}, 3, shape_of(2, N, out), a);
    int s = op(&c, OP_MUL, (int[]){y, y2}, 2, shape_of(2, N, out), (GAttr){0});
    finish(&c, s);
    check(&c, fill_kan_grids, TOL);
}

Test(autodiff, kan_chebyshev_and_rbf)
{
    kan_basis_case(20, KAN_BASIS_CHEBYSHEV, 4, 3, 4);
    kan_basis_case(21, KAN_BASIS_CHEBYSHEV, 1, 2, 3);
    kan_basis_case(22, KAN_BASIS_CHEBYSHEV, 7, 3, 2);
    kan_basis_case(23, KAN_BASIS_RBF, 8, 3, 4);
    kan_basis_case(24, KAN_BASIS_RBF, 2, 4, 3);
}

/* efficient-kan's regularization loss of one layer's spline weights */
Test(autodiff, kan_regularization)
{
    Case c = {.seed = 24};
    graph_init(&c.g);
    int w = param(&c, "spline_weight", shape_of(3, (int64_t)4, (int64_t)3, (int64_t)6));
    int y = with_aux(&c, OP_KAN_REG, &w, 1, shape_of(0), (GAttr){.reg_activation = 0.7, .reg_entropy = 1.3},
                     shape_of(1, (int64_t)2));
    finish(&c, y);
    check(&c, NULL, TOL);
}

Test(autodiff, layernorm)
{
    Case c = {.seed = 20};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)3, (int64_t)7);
    int x = value(&c, "x", s);
    int w = param(&c, "w", shape_of(1, (int64_t)7)), b = param(&c, "b", shape_of(1, (int64_t)7));
    int y = with_aux(&c, OP_LAYERNORM, (int[]){x, w, b}, 3, s, (GAttr){.eps = 1e-5},
                     shape_of(2, (int64_t)6, (int64_t)2));
    finish(&c, y);
    check(&c, NULL, TOL);
}

/* x feeds the norm and, through a product, the loss: dx accumulates */
Test(autodiff, rmsnorm)
{
    Case c = {.seed = 21};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)3, (int64_t)7);
    int x = value(&c, "x", s);
    int w = param(&c, "w", shape_of(1, (int64_t)7));
    int y = with_aux(&c, OP_RMSNORM, (int[]){x, w}, 2, s, (GAttr){.eps = 1e-6}, shape_of(1, (int64_t)6));
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
    finish(&c, z);
    check(&c, NULL, TOL);
}

static void attention_case(uint64_t seed, int causal, double p)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int64_t B = 2, T = 5, C = 6, H = 3;
    int qkv = value(&c, "qkv", shape_of(3, B, T, 3 * C));
    int y = with_aux(&c, OP_ATTENTION, &qkv, 1, shape_of(3, B, T, C),
                     (GAttr){.heads = (int)H, .causal = causal, .p = p}, shape_of(4, B, H, T, T));
    finish(&c, y);
    check(&c, NULL, TOL);
}

Test(autodiff, attention)
{
    attention_case(30, 1, 0);
    attention_case(31, 0, 0);
    attention_case(32, 1, 0.3);
}

/* rope on a qkv-like tensor: the first 8 of 12 columns rotated (heads of 4),
   the rest copied; x also feeds the loss directly, so dx accumulates */
Test(autodiff, rope)
{
    Case c = {.seed = 33};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)5, (int64_t)12);
    int x = value(&c, "x", s);
    int y = op(&c, OP_ROPE, &x, 1, s, (GAttr){.heads = 2, .len = 8, .rope_base = 10.0});
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
    finish(&c, z);
    check(&c, NULL, TOL);
}

/* attention with rope = true: the rope node before attention, differentiated together */
Test(autodiff, attention_with_rope)
{
    Case c = {.seed = 34};
    graph_init(&c.g);
    int64_t B = 2, T = 5, C = 8, H = 2;
    int qkv = value(&c, "qkv", shape_of(3, B, T, 3 * C));
    int r = op(&c, OP_ROPE, &qkv, 1, shape_of(3, B, T, 3 * C),
               (GAttr){.heads = (int)(2 * H), .len = 2 * C, .rope_base = 10000.0});
    int y = with_aux(&c, OP_ATTENTION, &r, 1, shape_of(3, B, T, C), (GAttr){.heads = (int)H, .causal = 1},
                     shape_of(4, B, H, T, T));
    finish(&c, y);
    check(&c, NULL, TOL);
}

/* The rope op against a direct transcription of Hugging Face's LLaMA
   (apply_rotary_pos_emb): inv_freq = 1 / base^(arange(0, D, 2) / D),
   emb = cat(t inv_freq, t inv_freq), q' = q cos(emb) + rotate_half(q) sin(emb),
   rotate_half(q) = cat(-q[D/2:], q[:D/2]). */
Test(autodiff, rope_is_llamas_rotate_half)
{
    Case c = {.seed = 35};
    graph_init(&c.g);
    int64_t B = 2, T = 7, H = 3, D = 6, W = 2 * H * D + 5; /* q, k rotated; 5 more columns copied */
    double base = 500.0;
    GShape s = shape_of(3, B, T, W);
    int x = param(&c, "x", s);
    int y = op(&c, OP_ROPE, &x, 1, s, (GAttr){.heads = (int)(2 * H), .len = 2 * H * D, .rope_base = base});
    c.g.n_forward = c.g.n;
    Plan p;
    plan_build(&p, &c.g, 8);
    CpuExec e;
    cpu_exec_init(&e, &p);
    double *xv = cpu_exec_value(&e, x);
    for (int64_t j = 0; j < B * T * W; j++) xv[j] = urand(9, 1, (uint64_t)j);
    cpu_exec_run(&e, 0, c.g.n_forward);
    const double *yv = cpu_exec_value(&e, y);
    double maxerr = 0, moved = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const double *xr = xv + (b * T + t) * W, *yr = yv + (b * T + t) * W;
            for (int64_t h = 0; h < 2 * H; h++)
                for (int64_t d = 0; d < D; d++) {
                    double inv_freq = 1.0 / pow(base, (double)(2 * (d % (D / 2))) / (double)D);
                    double emb = (double)t * inv_freq;
                    const double *q = xr + h * D;
                    double rot = d < D / 2 ? -q[d + D / 2] : q[d - D / 2];
                    double want = q[d] * cos(emb) + rot * sin(emb);
                    maxerr = fmax(maxerr, fabs(yr[h * D + d] - want));
                    moved = fmax(moved, fabs(yr[h * D + d] - q[d]));
                }
            for (int64_t j = 2 * H * D; j < W; j++) maxerr = fmax(maxerr, fabs(yr[j] - xr[j]));
        }
    cr_expect(maxerr < 1e-12, "rope vs the reference: max error %.3e", maxerr);
    cr_expect(moved > 0.1, "rope rotated nothing");
    cpu_exec_free(&e);
    plan_free(&p);
    graph_free(&c.g);
}

Test(autodiff, activations_and_dropout)
{
    GOp ops[] = {OP_GELU, OP_SILU, OP_RELU, OP_DROPOUT};
    for (int i = 0; i < 4; i++) {
        Case c = {.seed = 40 + (uint64_t)i};
        graph_init(&c.g);
        GShape s = shape_of(2, (int64_t)5, (int64_t)9);
        int x = value(&c, "x", s);
        int y = op(&c, ops[i], &x, 1, s, (GAttr){.p = 0.25});
        finish(&c, y);
        check(&c, NULL, TOL);
    }
}

/* the unary ops through an affine scale (y = s x + c, also checked): log and
   1/x on x + 2.5, positive for the parameters' values in [-1, 1] */
Test(autodiff, unary_ops_and_affine_scale)
{
    GOp ops[] = {OP_TANH, OP_SIGMOID, OP_EXP, OP_LOG, OP_ABS, OP_RECIP};
    for (int i = 0; i < 6; i++) {
        Case c = {.seed = 70 + (uint64_t)i};
        graph_init(&c.g);
        GShape s = shape_of(2, (int64_t)5, (int64_t)9);
        int positive = ops[i] == OP_LOG || ops[i] == OP_RECIP;
        int x = value(&c, "x", s);
        int u = op(&c, OP_SCALE, &x, 1, s, positive ? (GAttr){.scale = 1, .shift = 2.5} : (GAttr){.scale = 1.5, .shift = -0.25});
        int y = op(&c, ops[i], &u, 1, s, (GAttr){0});
        int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0}); /* x's gradient accumulates */
        finish(&c, z);
        check(&c, NULL, TOL);
    }
}

/* softmax over ragged rows, its input used again (the gradient accumulates) */
Test(autodiff, softmax)
{
    Case c = {.seed = 80};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)3, (int64_t)7);
    int x = value(&c, "x", s);
    int y = op(&c, OP_SOFTMAX, &x, 1, s, (GAttr){0});
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
    finish(&c, z);
    check(&c, NULL, TOL);
}

/* the axis sum: of a value (mean) and of a parameter directly (its gradient
   goes to the gradient area), with K = 1 and A = 1 views */
Test(autodiff, sum_axis)
{
    Case c = {.seed = 81};
    graph_init(&c.g);
    GShape s = shape_of(3, (int64_t)2, (int64_t)5, (int64_t)3), t = shape_of(2, (int64_t)2, (int64_t)3);
    int x = value(&c, "x", s), w = param(&c, "w", shape_of(3, (int64_t)1, (int64_t)4, (int64_t)3));
    int m = op(&c, OP_SUM_AXIS, &x, 1, t, (GAttr){.scale = 0.2});
    int v = op(&c, OP_SUM_AXIS, &w, 1, shape_of(2, (int64_t)1, (int64_t)3), (GAttr){.scale = 1});
    int r = op(&c, OP_RESHAPE, &x, 1, shape_of(3, (int64_t)6, (int64_t)1, (int64_t)5), (GAttr){0});
    int k1 = op(&c, OP_SUM_AXIS, &r, 1, shape_of(2, (int64_t)6, (int64_t)5), (GAttr){.scale = 1});
    int a = op(&c, OP_ADD, (int[]){m, v}, 2, t, (GAttr){0});
    int b = op(&c, OP_RESHAPE, &k1, 1, shape_of(2, (int64_t)2, (int64_t)15), (GAttr){0});
    int cat = op(&c, OP_CONCAT, (int[]){a, b}, 2, shape_of(2, (int64_t)2, (int64_t)18), (GAttr){0});
    finish(&c, cat);
    check(&c, NULL, TOL);
}

static void fill_tokens(Case *c, CpuExec *e)
{
    for (int i = 0; i < c->g.n; i++) {
        GNode *n = &c->g.nodes[i];
        if (n->op != OP_INPUT) continue;
        int32_t *ids = cpu_exec_value(e, i);
        for (int64_t j = 0; j < shape_numel(&n->shape); j++) ids[j] = (int32_t)((j * 7 + 3) % 11);
        if (!strcmp(n->name, "targets")) ids[2] = -1; /* ignored position */
    }
}

Test(autodiff, embedding_and_cross_entropy)
{
    Case c = {.seed = 50};
    graph_init(&c.g);
    int64_t B = 2, T = 3, V = 11, C = 4;
    int idx = leaf(&c, OP_INPUT, "idx", shape_of(2, B, T), DT_I32);
    int targets = leaf(&c, OP_INPUT, "targets", shape_of(2, B, T), DT_I32);
    int wte = param(&c, "wte", shape_of(2, V, C));
    int emb = op(&c, OP_EMBEDDING, (int[]){idx, wte}, 2, shape_of(3, B, T, C), (GAttr){0});
    int w = param(&c, "w", shape_of(2, V, C));
    int logits = op(&c, OP_LINEAR, (int[]){emb, w}, 2, shape_of(3, B, T, V), (GAttr){0});
    int loss = with_aux(&c, OP_CROSS_ENTROPY, (int[]){logits, targets}, 2, shape_of(0), (GAttr){0},
                        shape_of(1, B * T));
    c.g.n_forward = c.g.n;
    c.g.loss = loss;
    char err[256];
    cr_assert_eq(autodiff(&c.g, loss, -1, 0, err, sizeof err), 0, "%s", err);
    check(&c, fill_tokens, TOL);
}

/* mse(pred, target): gradients into both sides; pred, a value, is the target of
   a second mse too (its gradient accumulates) */
Test(autodiff, mse)
{
    Case c = {.seed = 70};
    graph_init(&c.g);
    GShape s = shape_of(2, (int64_t)5, (int64_t)3);
    int pred = value(&c, "pred", s), target = param(&c, "target", s);
    int m = op(&c, OP_MSE, (int[]){pred, target}, 2, shape_of(0), (GAttr){0});
    int other = value(&c, "other", s);
    int m2 = op(&c, OP_MSE, (int[]){other, pred}, 2, shape_of(0), (GAttr){0}); /* pred as the target too */
    int both = op(&c, OP_ADD, (int[]){m, m2}, 2, shape_of(0), (GAttr){0});
    finish(&c, both);
    check(&c, NULL, TOL);
}

Test(autodiff, rejects_what_it_cannot_differentiate)
{
    Case c = {.seed = 60};
    graph_init(&c.g);
    int x = leaf(&c, OP_BUFFER, "x", shape_of(1, (int64_t)3), DT_REAL);
    int s = op(&c, OP_SUM, &x, 1, shape_of(0), (GAttr){0});
    c.g.n_forward = c.g.n;
    char err[256];
    cr_expect_neq(autodiff(&c.g, s, -1, 0, err, sizeof err), 0);
    cr_expect(strstr(err, "no trainable parameter") != NULL, "%s", err);
    int p = param(&c, "p", shape_of(1, (int64_t)3));
    int y = op(&c, OP_SCALE, &p, 1, shape_of(1, (int64_t)3), (GAttr){.scale = 2});
    c.g.n_forward = c.g.n;
    cr_expect_neq(autodiff(&c.g, y, -1, 0, err, sizeof err), 0, "a vector output needs a seed");
    graph_free(&c.g);
}
