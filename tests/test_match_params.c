/* test_match_params.c: kanc --match-params against kanc --report's own counts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

TestSuite(match_params, .timeout = 120);

/* the parameter count kanc --report prints for model with extra flags */
static long long report_params(const char *model, const char *flags)
{
    char *out = NULL;
    cr_assert_eq(test_run(&out, "$KANC %s %s --report", model, flags), 0, "%s", out);
    const char *p = strstr(out, "\nparameters:");
    long long n = -1;
    cr_assert(p && sscanf(p + 1, "parameters: %lld", &n) == 1, "%s", out);
    free(out);
    return n;
}

static long long grouped_number(const char *s)
{
    long long v = 0;
    for (; *s == ',' || (*s >= '0' && *s <= '9'); s++)
        if (*s != ',') v = 10 * v + (*s - '0');
    return v;
}

Test(match_params, the_closest_width_by_the_reports_counts)
{
    char *out = NULL;
    cr_assert_eq(test_run(&out, "$KANC models/mingpt.kdl --match-params models/kansformers.kdl"), 0, "%s", out);
    long long v;
    cr_assert_eq(sscanf(out, "n_embd = %lld:", &v), 1, "%s", out);
    const char *a = strstr(out, "mingpt.kdl has "), *b = strstr(out, "kansformers.kdl has ");
    cr_assert(a && b, "%s", out);
    long long got = grouped_number(a + 15), target = grouped_number(b + 20);
    cr_expect_eq(target, report_params("models/kansformers.kdl", ""));
    char flags[64];
    snprintf(flags, sizeof flags, "--set n_embd=%lld", v);
    cr_expect_eq(got, report_params("models/mingpt.kdl", flags));
    /* the widths a head count of 3 allows on either side are farther from the target */
    for (int d = -3; d <= 3; d += 6) {
        snprintf(flags, sizeof flags, "--set n_embd=%lld", v + d);
        long long n = report_params("models/mingpt.kdl", flags);
        cr_expect_gt(llabs(n - target), llabs(got - target), "n_embd %lld: %lld params vs %lld at %lld", v + d, n,
                     got, v);
    }
    free(out);
}

Test(match_params, refuses_what_it_cannot_scan)
{
    char *out = NULL;
    cr_expect_neq(test_run(&out, "$KANC models/mingpt.kdl --match-params models/kansformers.kdl --vary pdrop 2>&1"),
                  0);
    cr_expect(strstr(out, "no integer hyperparameter 'pdrop'"), "%s", out);
    free(out);
    cr_expect_neq(test_run(&out, "$KANC models/mingpt.kdl --match-params models/none.kdl 2>&1"), 0);
    cr_expect(strstr(out, "models/none.kdl") && strstr(out, "cannot read"), "%s", out);
    free(out);
    cr_expect_neq(test_run(&out, "$KANC models/mingpt.kdl --vary n_layer 2>&1"), 0);
    cr_expect(strstr(out, "--vary goes with --match-params"), "%s", out);
    free(out);
}
