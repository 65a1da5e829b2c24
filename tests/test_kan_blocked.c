/* test_kan_blocked.c: the blocked KAN path (cuda/kanc_kan_blocked.cuh) end to end.
 *
 * tests/test_codegen_cuda.c checks its kernels node by node against the CPU on
 * ragged row blocks; here whole models take it: `kanrun verify --device emu`
 * on the fixtures with KANC_KAN_KERNEL=blocked (the fixtures' models are small
 * enough that the cost model alone would keep them fused), and the settings
 * that choose it refuse bad values by name.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen_cuda.h"
#include "util.h"
#include "verify.h"
#include "test_util.h"

TestSuite(kan_blocked, .timeout = 900);

static void verify_blocked(const char *model, const char *fixture)
{
    char *mp = model ? xasprintf("%s/models/%s", test_root(), model) : NULL;
    char *fp = test_fixture_path(fixture);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    setenv("KANC_KAN_KERNEL", "blocked", 1);
    int rc = verify_run(mp, fp, NULL, 0, VERIFY_TOLERANCE, "emu", out);
    unsetenv("KANC_KAN_KERNEL");
    fclose(out);
    cr_expect(rc == 0, "verify --device emu (blocked KAN) %s: rc %d\n%s", fixture, rc, buf);
    free(buf);
    free(mp);
    free(fp);
}

Test(kan_blocked, verifies_the_fixtures)
{
    verify_blocked("kan-linear.kdl", "kan_linear_nonuniform.safetensors");
    verify_blocked("kansformers.kdl", "gpt_kansformers.safetensors");
    verify_blocked("hybrid.kdl", "gpt_hybrid.safetensors");
    verify_blocked(NULL, "kan-workflow/gpt_kansformers_chebyshev.safetensors");
}

Test(kan_blocked, options_refuse_bad_values)
{
    CudaOptions o;
    cuda_options_default(&o);
    cr_expect_eq(o.kan_kernel, KAN_KERNEL_AUTO);
    KanKernel k;
    cr_expect_eq(cuda_kan_kernel_parse("blocked", &k), 0);
    cr_expect_eq(k, KAN_KERNEL_BLOCKED);
    cr_expect_eq(cuda_kan_kernel_parse("fused", &k), 0);
    cr_expect_eq(k, KAN_KERNEL_FUSED);
    cr_expect_eq(cuda_kan_kernel_parse("Blocked", &k), -1);
    char err[160];
    setenv("KANC_KAN_KERNEL", "tiled", 1);
    cr_expect_eq(cuda_options_from_env(&o, err, sizeof err), -1);
    unsetenv("KANC_KAN_KERNEL");
    cr_expect(strstr(err, "KANC_KAN_KERNEL=tiled") && strstr(err, "auto, fused or blocked"), "%s", err);

    char *out = NULL;
    int rc = test_run(&out, "%s models/kansformers.kdl --kan-kernel tiled -o /dev/null 2>&1", test_bin("kanc"));
    cr_expect_neq(rc, 0);
    cr_expect(out && strstr(out, "--kan-kernel tiled: expected auto, fused or blocked"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s models/kan-linear.kdl --kan-kernel blocked 2>&1", test_bin("kanc"));
    cr_expect_neq(rc, 0);
    cr_expect(out && strstr(out, "go with -o FILE.cubin"), "%s", out ? out : "");
    free(out);
}
