/* test_kan_bases.c: the Chebyshev (ChebyKAN) and RBF (FastKAN) bases of kan().
 *
 * The kan-workflow layer fixtures in float64 (a tighter bound than kanrun
 * verify's float32 1e-4), the I64 arange through a checkpoint and its refusal
 * as a float, and kan()'s per-family option checks. Finite differences are in
 * test_autodiff.c, emulated CUDA in test_codegen_cuda.c, the float32 and
 * emulated fixture checks in test_verify.c and test_cuda_runtime.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model.h"
#include "safetensors.h"
#include "test_util.h"
#include "util.h"

static double rel(const double *a, const StTensor *want)
{
    double *ref = xmalloc(sizeof(double) * (size_t)want->numel), d2 = 0, r2 = 0;
    st_read_f64(want, ref);
    for (int64_t i = 0; i < want->numel; i++) d2 += (a[i] - ref[i]) * (a[i] - ref[i]), r2 += ref[i] * ref[i];
    free(ref);
    return sqrt(d2 / (r2 > 0 ? r2 : 1));
}

/* one layer fixture in float64: y, grad.x and every parameter's gradient */
static void layer_f64(const char *fixture, const char *model, int expect_compared)
{
    char *fp = test_fixture_path(fixture), *mp = xasprintf("%s/models/%s", test_root(), model), err[1024];
    StFile f;
    cr_assert_eq(st_open(&f, fp, err, sizeof err), 0, "%s", err);
    cJSON *cfg = cJSON_Parse(st_meta(&f, "config"));
    ConfigSets cs;
    config_to_sets(cfg, &cs);
    Model m;
    cr_assert_eq(model_compile(&m, mp, NULL, cs.sets, cs.n, MODEL_GRAD_OUTPUT, 8, "cpu", stderr), 0, "%s", mp);
    cr_assert_eq(model_load_state(&m, &f, NULL, err, sizeof err), 0, "%s", err);
    Graph *g = &m.g;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT) {
            const StTensor *t = st_find(&f, g->nodes[i].name);
            cr_assert(t, "%s: no input %s", fixture, g->nodes[i].name);
            cr_assert_eq(model_set_input(&m, i, t, err, sizeof err), 0, "%s", err);
        }
    m.dev->ops->run(m.dev, 0, g->n);
    int compared = 0;
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        char name[256];
        int node = -1, grad = 0;
        if (i == g->output) snprintf(name, sizeof name, "y"), node = i;
        else if (n->op == OP_INPUT && n->dtype == DT_REAL && g->grad_of && g->grad_of[i] >= 0)
            snprintf(name, sizeof name, "grad.%s", n->name), node = g->grad_of[i];
        else if (n->op == OP_PARAM) snprintf(name, sizeof name, "grad.%s", n->name), node = i, grad = 1;
        if (node < 0) continue;
        const StTensor *want = st_find(&f, name);
        cr_assert(want, "%s: no %s", fixture, name);
        double *got = xmalloc(sizeof(double) * (size_t)want->numel);
        if (grad)
            model_read_grad(&m, node, got);
        else
            model_read_value(&m, node, got);
        double r = rel(got, want);
        cr_expect(r < 1e-10, "%s: %s in float64: relative error %g", fixture, name, r);
        free(got);
        compared++;
    }
    cr_expect_eq(compared, expect_compared, "%s: %d tensors compared", fixture, compared);
    model_free(&m);
    config_sets_free(&cs);
    cJSON_Delete(cfg);
    st_close(&f);
    free(fp);
    free(mp);
}

Test(kan_bases, chebyshev_layer_fixture_in_float64)
{
    layer_f64("kan-workflow/kan_chebyshev_layer.safetensors", "kan-chebyshev.kdl", 3);
}

Test(kan_bases, rbf_layer_fixture_in_float64)
{
    layer_f64("kan-workflow/kan_rbf_layer.safetensors", "kan-rbf.kdl", 7);
}

/* a trained Chebyshev run's checkpoint holds arange as I64 (0 .. degree), and
   resumes; the same file with arange as F32 is refused by --init-from */
Test(kan_bases, chebyshev_arange_is_i64_in_checkpoints, .timeout = 180)
{
    char *tmp = test_tmpdir(), *out = NULL, err[512];
    int rc = test_run(&out,
                      "printf 'In the beginning God created the heaven and the earth.\\n%%.0s' $(seq 200) > %s/t.txt && "
                      "$KANRUN train models/kansformers.kdl --set 'basis=\"chebyshev\"' --set degree=3 --set n_layer=1 "
                      "--set batch=2 --set block_size=16 --data %s/t.txt --out %s/run --steps 2 --eval-every 2",
                      tmp, tmp, tmp);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char *path = xasprintf("%s/run/model.safetensors", tmp);
    StFile f;
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    const StTensor *t = st_find(&f, "lm_head.layers.0.arange");
    cr_assert(t && t->dtype == ST_I64 && t->numel == 4, "lm_head.layers.0.arange: %s",
              t ? st_dtype_name(t->dtype) : "missing");
    int64_t v[4];
    cr_assert_eq(st_read_i64(t, v), 0);
    for (int d = 0; d < 4; d++) cr_expect_eq(v[d], d);
    /* every tensor again, arange as F32 */
    int n = st_num_tensors(&f);
    StEntry *e = xcalloc((size_t)n, sizeof *e);
    float *fl = NULL;
    for (int i = 0; i < n; i++) {
        const StTensor *s = st_tensor_at(&f, i);
        e[i] = (StEntry){s->name, s->dtype, s->rank, {0}, s->data};
        memcpy(e[i].shape, s->shape, sizeof s->shape);
        if (!strcmp(s->name, "lm_head.layers.0.arange")) {
            fl = xmalloc(sizeof(float) * 4);
            for (int d = 0; d < 4; d++) fl[d] = (float)d;
            e[i].dtype = ST_F32, e[i].data = fl;
        }
    }
    char *bad = xasprintf("%s/f32.safetensors", tmp);
    cr_assert_eq(st_write(bad, e, n, NULL, 0, err, sizeof err), 0, "%s", err);
    st_close(&f);
    rc = test_run(&out, "$KANRUN train --resume %s/run --steps 3", tmp);
    cr_expect_eq(rc, 0, "resume: %s", out);
    free(out);
    rc = test_run(&out,
                  "$KANRUN train models/kansformers.kdl --set 'basis=\"chebyshev\"' --set degree=3 --set n_layer=1 "
                  "--set batch=2 --set block_size=16 --data %s/t.txt --out %s/run2 --steps 1 --init-from %s",
                  tmp, tmp, bad);
    cr_expect_neq(rc, 0, "an F32 arange was taken:\n%s", out);
    cr_expect(strstr(out, "lm_head.layers.0.arange") && strstr(out, "I64"), "%s", out);
    free(out);
    free(e), free(fl), free(bad), free(path);
    test_run(NULL, "rm -rf %s", tmp);
    free(tmp);
}

/* an option of another family is an error naming it; so is a bad basis */
Test(kan_bases, options_of_another_basis_are_errors)
{
    char *tmp = test_tmpdir(), *out = NULL;
    const struct {
        const char *call, *expect;
    } cases[] = {
        {"kan(x, 3, basis = \"chebyshev\", grid_size = 8)", "grid_size"},
        {"kan(x, 3, basis = \"rbf\", degree = 3)", "degree"},
        {"kan(x, 3, num_grids = 8)", "num_grids"},
        {"kan(x, 3, basis = \"fourier\")", "\"bspline\", \"chebyshev\" or \"rbf\""},
        {"kan(x, 3, basis = \"rbf\", num_grids = 1)", "num_grids"},
        {"kan(x, 3, basis = \"chebyshev\", degree = -1)", "degree"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *kdl = xasprintf("%s/m%zu.kdl", tmp, i);
        FILE *fp = fopen(kdl, "w");
        fprintf(fp, "model m(x: real[4, 5]) {\n  return %s\n}\n", cases[i].call);
        fclose(fp);
        int rc = test_run(&out, "$KANC '%s' --forward-only --report", kdl);
        cr_expect_neq(rc, 0, "%s compiled:\n%s", cases[i].call, out);
        cr_expect(strstr(out, "error") && strstr(out, cases[i].expect), "%s:\n%s", cases[i].call, out);
        free(out);
        free(kdl);
    }
    test_run(NULL, "rm -rf %s", tmp);
    free(tmp);
}

/* the shapes and names each family gives its state */
Test(kan_bases, state_names_and_shapes_follow_upstream)
{
    char *tmp = test_tmpdir(), *out = NULL;
    char *kdl = xasprintf("%s/m.kdl", tmp);
    FILE *fp = fopen(kdl, "w");
    fprintf(fp, "model m(x: real[4, 5]) {\n  a = c: kan(x, 3, basis = \"chebyshev\", degree = 2)\n"
                "  return r: kan(a, 2, basis = \"rbf\", num_grids = 6)\n}\n");
    fclose(fp);
    int rc = test_run(&out, "$KANC '%s' --forward-only --dump-graph", kdl);
    cr_assert_eq(rc, 0, "%s", out);
    const char *want[] = {"c.layers.0.cheby_coeffs", "[5, 3, 3]", "c.layers.0.arange", "r.layers.0.layernorm.weight",
                          "r.layers.0.rbf.grid", "[6]", "r.layers.0.spline_linear.weight", "[2, 18]",
                          "r.layers.0.base_linear.weight", "r.layers.0.base_linear.bias"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_expect(strstr(out, want[i]), "no %s in:\n%s", want[i], out);
    free(out);
    free(kdl);
    test_run(NULL, "rm -rf %s", tmp);
    free(tmp);
}
