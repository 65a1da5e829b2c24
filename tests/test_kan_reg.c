/* test_kan_reg.c: kan_regularization() against efficient-kan's KAN.regularization_loss.
 *
 * The shared fixture kan-workflow/kan_reg_loss.safetensors holds a KAN stack
 * (widths from its config) under its state_dict names, a batch x, dy and the
 * reference's results in float64. The model below is that stack with
 *     total = sum(y * dy) + kan_regularization(activation = a, entropy = e)
 * compiled in double and differentiated from its first output (so x's
 * gradient is computed too): total's parts and every gradient are compared
 * with the fixture, and a model whose loss is the regularization alone gives
 * the gradients of reg_loss (zero for the tensors it does not read).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"
#include "test_util.h"
#include "util.h"

TestSuite(kan_reg);

/* the regularization reads only the spline weights: float64 agreement. The stack's
   output goes through the file's F32 knots, equally spaced to float precision, on
   which the B-splines' fast path uses the uniform closed form: agreement to ~1e-7. */
#define TOL_REG 1e-9
#define TOL_STACK 1e-5

typedef struct {
    StFile f;
    cJSON *cfg;
    char src[4096];
} Fixture;

static void open_fixture(Fixture *fx, int reg_only)
{
    char *path = test_fixture_path("kan-workflow/kan_reg_loss.safetensors"), err[512];
    cr_assert_eq(st_open(&fx->f, path, err, sizeof err), 0, "%s", err);
    free(path);
    const char *cfg = st_meta(&fx->f, "config");
    cr_assert(cfg, "the fixture has no config");
    fx->cfg = cJSON_Parse(cfg);
    const cJSON *w = cJSON_GetObjectItem(fx->cfg, "widths"), *range = cJSON_GetObjectItem(fx->cfg, "grid_range");
    int nw = cJSON_GetArraySize(w);
    char widths[256] = "";
    for (int i = 1; i < nw; i++)
        snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "%s%d", i > 1 ? ", " : "",
                 cJSON_GetArrayItem(w, i)->valueint);
    snprintf(fx->src, sizeof fx->src,
             "model reg(x: real[%d, %d], dy: real[%d, %d]) {\n"
             "  y = kan(x, [%s], grid_size = %d, spline_order = %d, grid_range = [%.17g, %.17g])\n"
             "  reg = kan_regularization(activation = %.17g, entropy = %.17g)\n"
             "  total = %s\n"
             "  return total, y, reg\n"
             "}\n",
             cJSON_GetArrayItem(cJSON_GetObjectItem(fx->cfg, "lead_shape"), 0)->valueint,
             cJSON_GetArrayItem(w, 0)->valueint,
             cJSON_GetArrayItem(cJSON_GetObjectItem(fx->cfg, "lead_shape"), 0)->valueint,
             cJSON_GetArrayItem(w, nw - 1)->valueint, widths,
             cJSON_GetObjectItem(fx->cfg, "grid_size")->valueint,
             cJSON_GetObjectItem(fx->cfg, "spline_order")->valueint, cJSON_GetArrayItem(range, 0)->valuedouble,
             cJSON_GetArrayItem(range, 1)->valuedouble,
             cJSON_GetObjectItem(fx->cfg, "regularize_activation")->valuedouble,
             cJSON_GetObjectItem(fx->cfg, "regularize_entropy")->valuedouble,
             reg_only ? "reg" : "sum(y * dy) + reg");
}

static void close_fixture(Fixture *fx)
{
    cJSON_Delete(fx->cfg);
    st_close(&fx->f);
}

/* relative error norm of got against the fixture's tensor name */
static double rel_err(const StFile *f, const char *name, const double *got, int64_t n)
{
    const StTensor *t = st_find(f, name);
    cr_assert(t, "the fixture has no '%s'", name);
    cr_assert_eq(t->numel, n, "'%s': %lld elements, the model has %lld", name, (long long)t->numel, (long long)n);
    double *want = xmalloc(sizeof(double) * (size_t)n), d2 = 0, w2 = 0;
    st_read_f64(t, want);
    for (int64_t i = 0; i < n; i++) {
        d2 += (got[i] - want[i]) * (got[i] - want[i]);
        w2 += want[i] * want[i];
    }
    free(want);
    return w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
}

/* the model on the fixture's state and batch, seeded d(total) = 1, run forward and backward */
static void run_model(Model *m, Fixture *fx)
{
    char err[512];
    cr_assert_eq(model_compile(m, "kan_reg.kdl", fx->src, NULL, 0, MODEL_GRAD_OUTPUT, 8, "cpu", stderr), 0,
                 "%s", fx->src);
    cr_assert_eq(model_load_state(m, &fx->f, NULL, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < m->g.n; i++)
        if (m->g.nodes[i].op == OP_INPUT && strcmp(m->g.nodes[i].name, "dtotal"))
            cr_assert_eq(model_set_input(m, i, st_find(&fx->f, m->g.nodes[i].name), err, sizeof err), 0, "%s", err);
    double one = 1;
    StTensor seed = {.name = "dtotal", .dtype = ST_F64, .rank = 0, .numel = 1, .nbytes = 8, .data = &one};
    cr_assert_eq(model_set_input(m, m->seed_input, &seed, err, sizeof err), 0, "%s", err);
    m->dev->ops->run(m->dev, 0, m->g.n);
}

/* every parameter's gradient against <prefix>.<name> */
static void compare_param_grads(Model *m, const StFile *f, const char *prefix, double tol)
{
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        int64_t numel = shape_numel(&n->shape);
        double *g = xmalloc(sizeof(double) * (size_t)numel);
        model_read_grad(m, i, g);
        char name[256];
        snprintf(name, sizeof name, "%s.%s", prefix, n->name);
        double e = rel_err(f, name, g, numel);
        cr_expect(e <= tol, "%s: relative error %.3e", name, e);
        free(g);
    }
}

static int output(const Model *m, const char *name)
{
    for (int i = 0; i < m->g.n_outputs; i++)
        if (!strcmp(m->g.output_names[i], name)) return m->g.outputs[i];
    cr_assert_fail("no output %s", name);
    return -1;
}

Test(kan_reg, the_loss_and_every_gradient_match_efficient_kan)
{
    Fixture fx;
    open_fixture(&fx, 0);
    Model m;
    run_model(&m, &fx);
    double reg, y[4096];
    model_read_value(&m, output(&m, "reg"), &reg);
    cr_expect(rel_err(&fx.f, "reg_loss", &reg, 1) <= TOL_REG, "reg_loss: %.17g", reg);
    int64_t ny = model_read_value(&m, output(&m, "y"), y);
    double ey = rel_err(&fx.f, "y", y, ny);
    cr_expect(ey <= TOL_STACK, "y: relative error %.3e", ey);
    compare_param_grads(&m, &fx.f, "grad_total", TOL_STACK);
    int x = model_input(&m, "x");
    double gx[4096];
    int64_t nx = model_read_value(&m, m.g.grad_of[x], gx);
    double e = rel_err(&fx.f, "grad_total.x", gx, nx);
    cr_expect(e <= TOL_STACK, "grad_total.x: relative error %.3e", e);
    model_free(&m);
    close_fixture(&fx);
}

Test(kan_reg, the_regularization_alone_reads_only_the_spline_weights)
{
    Fixture fx;
    open_fixture(&fx, 1);
    Model m;
    run_model(&m, &fx);
    compare_param_grads(&m, &fx.f, "grad", TOL_REG);
    model_free(&m);
    close_fixture(&fx);
}

Test(kan_reg, needs_a_kan_layer_before_it)
{
    const char *src = "model m(x: real[3, 4]) {\n  r = kan_regularization()\n  y = kan(x, [2])\n  return y, r\n}\n";
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    Model m;
    cr_expect_eq(model_compile(&m, "early.kdl", src, NULL, 0, MODEL_FORWARD, 4, "none", diag), -1);
    fclose(diag);
    cr_expect(strstr(buf, "there is no KAN layer before this call"), "%s", buf);
    free(buf);
}

/* a composite loss: each extra scalar output is logged beside the loss */
Test(kan_reg, training_logs_each_term_of_the_loss, .timeout = 300)
{
    const char *corpus = test_corpus();
    char *dir = test_tmpdir(), *model = xasprintf("%s/reg.kdl", dir), *text = xasprintf("%s/text.txt", dir);
    FILE *f = fopen(model, "w");
    cr_assert(f);
    fputs("param vocab_size = 256\n"
          "model m(idx: tokens[4, 16], targets: tokens[4, 16]) {\n"
          "  x = wte: embedding(idx, vocab_size, 16)\n"
          "  logits = head: kan(ln: layernorm(x), [24, vocab_size], grid_size = 3)\n"
          "  reg = kan_regularization()\n"
          "  ce = cross_entropy(logits, targets)\n"
          "  loss = ce + 0.01 * reg\n"
          "  return logits, loss, reg, ce\n"
          "}\n",
          f);
    fclose(f);
    char *cmd = xasprintf("head -c 100000 '%s' > '%s'", corpus, text);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    free(cmd);
    char *out = NULL;
    int rc = test_run(&out, "$KANRUN train '%s' --data '%s' --out '%s/run' --steps 3 --log-every 1 --warmup 1 "
                            "--eval-every 0 --threads 1",
                      model, text, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "| loss ") && strstr(out, " (reg ") && strstr(out, ", ce "), "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "cat '%s/run/metrics.jsonl'", dir), 0);
    cr_expect(strstr(out, "\"reg\":") && strstr(out, "\"ce\":"), "%s", out);
    /* the loss is the sum of its terms as logged */
    double loss, reg, ce;
    const char *l = strstr(out, "{\"step\":3,");
    cr_assert(l, "%s", out);
    cr_assert_eq(sscanf(l, "{\"step\":3,\"loss\":%lf,\"reg\":%lf,\"ce\":%lf", &loss, &reg, &ce), 3, "%s", l);
    cr_expect(fabs(loss - (ce + 0.01 * reg)) < 1e-5, "loss %g, ce %g, reg %g", loss, ce, reg);
    free(out);
    test_run(NULL, "rm -rf '%s'", dir);
    free(model);
    free(text);
    free(dir);
}
