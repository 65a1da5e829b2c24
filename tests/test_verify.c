/* test_verify.c: kanrun verify passes every shared fixture with its model, and fails when it should. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"
#include "verify.h"
#include "test_util.h"


/* the model of a fixture, by its name */
static const char *model_for(const char *fixture)
{
    if (!strncmp(fixture, "kan_linear_", 11)) return "kan-linear.kdl";
    if (!strcmp(fixture, "gpt_kansformers.safetensors")) return "kansformers.kdl";
    if (!strcmp(fixture, "gpt_hybrid.safetensors")) return "hybrid.kdl";
    if (!strcmp(fixture, "gpt_mlp.safetensors")) return "mingpt.kdl";
    return NULL;
}

/* model NULL: the model the fixture's metadata names; *report (when given)
   gets what verify printed */
static int verify_report(const char *model, const char *fixture, const KdlSet *sets, int n,
                         double tol, char **report)
{
    char *m = model ? xasprintf("%s/models/%s", test_root(), model) : NULL;
    char *f = xasprintf("%s/fixtures/%s", test_shared(), fixture);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = verify_run(m, f, sets, n, tol, "cpu", out);
    fclose(out);
    if (report)
        *report = text;
    else
        free(text);
    free(m);
    free(f);
    return rc;
}

static int verify(const char *model, const char *fixture, const KdlSet *sets, int n, double tol)
{
    return verify_report(model, fixture, sets, n, tol, NULL);
}

/* the report without its first line (which names the model file) */
static const char *after_header(const char *report)
{
    size_t n = strcspn(report, "\n");
    return report + n + (report[n] != 0);
}

Test(verify, every_shared_fixture_passes)
{
    char *dir = xasprintf("%s/fixtures", test_shared());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".safetensors")) continue;
        const char *model = model_for(e->d_name);
        cr_expect(model != NULL, "no model is mapped to the fixture %s", e->d_name);
        if (!model) continue;
        cr_expect_eq(verify(model, e->d_name, NULL, 0, VERIFY_TOLERANCE), 0, "%s with %s", e->d_name, model);
        n++;
    }
    closedir(d);
    free(dir);
    cr_expect_geq(n, 7, "only %d fixtures found", n);
}

Test(verify, a_wrong_model_or_a_tiny_tolerance_fails)
{
    /* float32 against float64 is not exact: a 1e-12 tolerance must fail */
    cr_expect_eq(verify("kansformers.kdl", "gpt_kansformers.safetensors", NULL, 0, 1e-12), 1);
    /* another grid size: the parameter shapes disagree with the file (an error) */
    KdlSet g = {"grid_size", "6", 0};
    cr_expect_eq(verify("kansformers.kdl", "gpt_kansformers.safetensors", &g, 1, VERIFY_TOLERANCE), 2);
    /* another head count computes another function with the same parameters: it must not pass */
    KdlSet act = {"n_head", "1", 0};
    cr_expect_eq(verify("mingpt.kdl", "gpt_mlp.safetensors", &act, 1, VERIFY_TOLERANCE), 1);
}

Test(verify, every_shared_fixture_passes_with_the_model_from_its_metadata)
{
    char *dir = xasprintf("%s/fixtures", test_shared());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        const char *model = model_for(e->d_name);
        if (!strstr(e->d_name, ".safetensors") || !model) continue;
        char *one = NULL, *two = NULL;
        int rc1 = verify_report(NULL, e->d_name, NULL, 0, VERIFY_TOLERANCE, &one);
        int rc2 = verify_report(model, e->d_name, NULL, 0, VERIFY_TOLERANCE, &two);
        cr_expect_eq(rc1, 0, "%s without a model: %d\n%s", e->d_name, rc1, one);
        cr_expect_eq(rc1, rc2, "%s: %d with no model, %d with %s", e->d_name, rc1, rc2, model);
        cr_expect_str_eq(after_header(one), after_header(two), "%s: the reports differ", e->d_name);
        cr_expect(strstr(one, model) != NULL, "%s: the report does not name %s:\n%s", e->d_name,
                  model, one);
        free(one);
        free(two);
        n++;
    }
    closedir(d);
    free(dir);
    cr_expect_geq(n, 7, "only %d fixtures found", n);
}

Test(verify, one_argument_from_another_folder_finds_the_models_by_the_executable)
{
    char *fix = test_fixture_path("gpt_hybrid.safetensors");
    char *out = NULL;
    int rc = test_run(&out, "cd / && env -u KANC_ROOT $KANRUN verify '%s'", fix);
    cr_expect_eq(rc, 0, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "models/hybrid.kdl") && strstr(out, ": ok"), "%s", out);
    free(out);
    /* a copy of kanrun with no models/ near it, and no KANC_ROOT: a clear error */
    char *tmp = test_tmpdir();
    rc = test_run(&out, "mkdir -p %s/bin && cp $KANRUN %s/bin/ && cd / && env -u KANC_ROOT %s/bin/kanrun verify '%s'",
                  tmp, tmp, tmp, fix);
    cr_expect_eq(rc, 2, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "cannot find the models folder") && strstr(out, "KANC_ROOT"), "%s", out);
    free(out);
    test_run(NULL, "rm -rf %s", tmp);
    free(tmp);
    free(fix);
}

/* the kan-workflow fixtures of the other bases, and their models */
static const struct {
    const char *fixture, *model;
} BASIS_FIXTURES[] = {{"kan-workflow/kan_chebyshev_layer.safetensors", "kan-chebyshev.kdl"},
                      {"kan-workflow/kan_rbf_layer.safetensors", "kan-rbf.kdl"},
                      {"kan-workflow/gpt_kansformers_chebyshev.safetensors", "kansformers.kdl"},
                      {"kan-workflow/gpt_kansformers_rbf.safetensors", "kansformers.kdl"}};

Test(verify, the_chebyshev_and_rbf_fixtures_pass_with_and_without_a_model, .timeout = 120)
{
    for (size_t i = 0; i < sizeof BASIS_FIXTURES / sizeof *BASIS_FIXTURES; i++) {
        char *one = NULL, *two = NULL;
        int rc1 = verify_report(NULL, BASIS_FIXTURES[i].fixture, NULL, 0, VERIFY_TOLERANCE, &one);
        int rc2 = verify_report(BASIS_FIXTURES[i].model, BASIS_FIXTURES[i].fixture, NULL, 0, VERIFY_TOLERANCE, &two);
        cr_expect_eq(rc1, 0, "%s without a model: %d\n%s", BASIS_FIXTURES[i].fixture, rc1, one);
        cr_expect_eq(rc2, 0, "%s with %s: %d\n%s", BASIS_FIXTURES[i].fixture, BASIS_FIXTURES[i].model, rc2, two);
        cr_expect(strstr(one, BASIS_FIXTURES[i].model) != NULL, "%s: the report does not name %s:\n%s",
                  BASIS_FIXTURES[i].fixture, BASIS_FIXTURES[i].model, one);
        cr_expect_str_eq(after_header(one), after_header(two), "%s: the reports differ", BASIS_FIXTURES[i].fixture);
        free(one);
        free(two);
    }
}

/* the B-spline GPT model cannot stand in for a Chebyshev fixture: its names differ */
Test(verify, a_basis_fixture_with_another_basis_is_an_error)
{
    KdlSet b = {"basis", "\"rbf\"", 0};
    cr_expect_eq(verify("kansformers.kdl", "kan-workflow/gpt_kansformers_chebyshev.safetensors", &b, 1,
                        VERIFY_TOLERANCE),
                 2);
}

/* the grid update and the regularization loss: their own tensors, CPU and emulated CUDA */
Test(verify, the_grid_update_and_regularization_fixtures_pass_on_cpu_and_emu, .timeout = 120)
{
    const char *names[] = {"kan_update_grid.safetensors", "kan_reg_loss.safetensors"};
    for (int i = 0; i < 2; i++)
        for (int dev = 0; dev < 2; dev++) {
            char *out = NULL;
            int rc = test_run(&out, "$KANRUN verify '%s/fixtures/kan-workflow/%s' --device %s", test_shared(), names[i],
                              dev ? "emu" : "cpu");
            cr_expect_eq(rc, 0, "%s: exit %d:\n%s", names[i], rc, out);
            cr_expect(strstr(out, i ? "grad_total.x" : "after.spline_weight") &&
                          strstr(out, i ? "grad.layers.1.spline_weight" : "grad.x2") && strstr(out, ": ok"),
                      "%s:\n%s", names[i], out);
            free(out);
        }
}

/* every kan-workflow fixture, found by listing the folder, verifies from its metadata alone */
Test(verify, every_kan_workflow_fixture_verifies, .timeout = 200)
{
    char *dir = xasprintf("%s/fixtures/kan-workflow", test_shared());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".safetensors")) continue;
        char *out = NULL;
        int rc = test_run(&out, "$KANRUN verify '%s/%s' --device cpu", dir, e->d_name);
        cr_expect_eq(rc, 0, "%s: exit %d:\n%s", e->d_name, rc, out);
        cr_expect(strstr(out, ": ok"), "%s:\n%s", e->d_name, out);
        free(out);
        n++;
    }
    closedir(d);
    free(dir);
    cr_expect_geq(n, 6, "only %d kan-workflow fixtures found", n);
}

Test(verify, a_file_without_metadata_gives_a_clear_error)
{
    char *tmp = test_tmpdir();
    char *path = xasprintf("%s/plain.safetensors", tmp), err[512];
    float x[3] = {1, 2, 3};
    StEntry t = {"x", ST_F32, 1, {3}, x};
    cr_assert_eq(st_write(path, &t, 1, NULL, 0, err, sizeof err), 0, "%s", err);
    char *out = NULL;
    int rc = test_run(&out, "$KANRUN verify '%s'", path);
    cr_expect_eq(rc, 2, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, path) && strstr(out, "__metadata__") && strstr(out, "MODEL.kdl"), "%s", out);
    free(out);
    test_run(NULL, "rm -rf %s", tmp);
    free(path);
    free(tmp);
}

/* a GPT fixture whose config has no layout: the parameter names choose the model */
Test(verify, a_gpt_without_a_layout_is_known_by_its_parameter_names)
{
    const char *names[] = {"gpt_kansformers.safetensors", "gpt_hybrid.safetensors", "gpt_mlp.safetensors"};
    char *tmp = test_tmpdir(), err[512];
    for (int i = 0; i < 3; i++) {
        char *src = test_fixture_path(names[i]);
        StFile f;
        cr_assert_eq(st_open(&f, src, err, sizeof err), 0, "%s", err);
        cJSON *cfg = cJSON_Parse(st_meta(&f, "config"));
        cr_assert(cfg && cJSON_GetObjectItem(cfg, "layout"), "%s: no layout in its config", src);
        cJSON_DeleteItemFromObject(cfg, "layout");
        char *text = cJSON_PrintUnformatted(cfg);
        StMeta meta[2] = {{"kind", "gpt"}, {"config", text}};
        StEntry *e = xmalloc(sizeof(StEntry) * (size_t)st_num_tensors(&f));
        for (int j = 0; j < st_num_tensors(&f); j++) {
            const StTensor *t = st_tensor_at(&f, j);
            e[j] = (StEntry){t->name, t->dtype, t->rank, {0}, t->data};
            memcpy(e[j].shape, t->shape, sizeof t->shape);
        }
        char *dst = xasprintf("%s/%s", tmp, names[i]);
        cr_assert_eq(st_write(dst, e, st_num_tensors(&f), meta, 2, err, sizeof err), 0, "%s", err);
        FILE *out = fopen("/dev/null", "w");
        cr_expect_eq(verify_run(NULL, dst, NULL, 0, VERIFY_TOLERANCE, "cpu", out), 0, "%s", dst);
        fclose(out);
        free(dst);
        free(e);
        free(text);
        cJSON_Delete(cfg);
        st_close(&f);
        free(src);
    }
    test_run(NULL, "rm -rf %s", tmp);
    free(tmp);
}
