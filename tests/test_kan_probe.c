/* test_kan_probe.c: each KAN layer's input batch, read between pieces of the forward pass.
 *
 * A stack kan(x, [5, 3]) over 4 inputs: the first layer must see x itself and
 * the second exactly the output of a model that is the first layer alone (same
 * seed, so the same parameters). The out-of-grid fraction counts the samples
 * outside [lo, hi] per input.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kan_probe.h"
#include "model.h"

TestSuite(kan_probe);

#define ROWS 6
#define IN 4

static void make(Model *m, const char *widths)
{
    char src[512], err[256];
    snprintf(src, sizeof src,
             "model probe(x: real[2, 3, %d]) {\n"
             "  h = layernorm(x)\n"
             "  y = kan(h, [%s], grid_range = [-1, 1])\n"
             "  return y\n"
             "}\n",
             IN, widths);
    cr_assert_eq(model_compile(m, "probe.kdl", src, NULL, 0, MODEL_FORWARD, 8, "cpu", stderr), 0);
    cr_assert_eq(model_init_params(m, 7, err, sizeof err), 0, "%s", err);
    double xs[ROWS * IN];
    for (int i = 0; i < ROWS * IN; i++) xs[i] = sin(1.7 * i) * (i % 3 + 1); /* some past [-1, 1] */
    StTensor t = {.name = "x", .dtype = ST_F64, .rank = 3, .shape = {2, 3, IN}, .numel = ROWS * IN,
                  .nbytes = sizeof xs, .data = xs};
    cr_assert_eq(model_set_input(m, model_input(m, "x"), &t, err, sizeof err), 0, "%s", err);
}

Test(kan_probe, layers_see_their_inputs)
{
    Model two, one;
    make(&two, "5, 3");
    make(&one, "5");
    KanProbe p;
    cr_assert_eq(kan_probe_init(&p, &two), 2);
    cr_expect_str_eq(p.layers[0].name, "layers.0");
    cr_expect_str_eq(p.layers[1].name, "layers.1");
    cr_expect_eq(p.layers[0].rows, ROWS);
    cr_expect_eq(p.layers[0].in, IN);
    cr_expect_eq(p.layers[1].in, 5);
    kan_probe_collect(&p, &two);

    double h[ROWS * IN], y1[ROWS * 5];
    int kan1 = -1;
    for (int i = 0; i < one.g.n_forward; i++)
        if (one.g.nodes[i].op == OP_KAN) kan1 = i;
    one.dev->ops->run(one.dev, 0, kan1);
    model_read_value(&one, one.g.nodes[kan1].in[0], h);
    one.dev->ops->run(one.dev, kan1, one.g.n_forward);
    model_read_value(&one, one.g.output, y1);
    for (int i = 0; i < ROWS * IN; i++) cr_expect_eq(p.layers[0].x[i], h[i], "layer 0 sample %d", i);
    for (int i = 0; i < ROWS * 5; i++) cr_expect_eq(p.layers[1].x[i], y1[i], "layer 1 sample %d", i);

    /* out of [-1, 1], counted by hand */
    int outside = 0;
    for (int i = 0; i < ROWS * IN; i++) outside += fabs(h[i]) > 1;
    cr_assert(outside > 0 && outside < ROWS * IN, "the batch should straddle the grid range");
    double frac[2];
    kan_probe_out_of_grid_all(&p, &two, frac);
    cr_expect_float_eq(frac[0], (double)outside / (ROWS * IN), 1e-15);
    kan_probe_free(&p);
    model_free(&two);
    model_free(&one);
}

Test(kan_probe, no_kan_layers)
{
    Model m;
    char err[256];
    const char *src = "model lin(x: real[2, 4]) {\n  y = linear(x, 3)\n  return y\n}\n";
    cr_assert_eq(model_compile(&m, "lin.kdl", src, NULL, 0, MODEL_FORWARD, 4, "cpu", stderr), 0);
    cr_assert_eq(model_init_params(&m, 1, err, sizeof err), 0, "%s", err);
    KanProbe p;
    cr_expect_eq(kan_probe_init(&p, &m), 0);
    kan_probe_collect(&p, &m);
    kan_probe_free(&p);
    model_free(&m);
}
