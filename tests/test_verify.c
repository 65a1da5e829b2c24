/* test_verify.c: kanrun verify passes every shared fixture with its model, and fails when it should. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

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

static int verify(const char *model, const char *fixture, const KdlSet *sets, int n, double tol)
{
    char *m = xasprintf("%s/models/%s", test_root(), model);
    char *f = xasprintf("%s/fixtures/%s", test_shared(), fixture);
    FILE *out = fopen("/dev/null", "w");
    int rc = verify_run(m, f, sets, n, tol, "cpu", out);
    fclose(out);
    free(m);
    free(f);
    return rc;
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
