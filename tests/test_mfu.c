/* test_mfu.c: the FLOP split of kanc --report, the GPU peak table, and the
 * model FLOP/s and MFU that kanrun bench and kanrun train print.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "autodiff.h"
#include "frontend.h"
#include "kan_basis.h"
#include "peak.h"
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

/* ---- the GPU peak table ---- */

static void expect_row(const char *device_name, const char *row, double fp32, double tf32, double bf16)
{
    const GpuPeak *p = peak_gpu_lookup(device_name);
    cr_assert(p, "'%s' found no row", device_name);
    cr_expect_str_eq(p->name, row, "'%s' -> %s, expected %s", device_name, p->name, row);
    cr_expect(p->tflops[PEAK_FP32] == fp32 && p->tflops[PEAK_TF32] == tf32 && p->tflops[PEAK_BF16] == bf16,
              "'%s': %g %g %g", device_name, p->tflops[PEAK_FP32], p->tflops[PEAK_TF32], p->tflops[PEAK_BF16]);
}

Test(mfu, gpu_names_map_to_their_datasheet_rows)
{
    /* the names cuDeviceGetName returns */
    expect_row("NVIDIA H200", "NVIDIA H200 SXM", 67, 494.5, 989.5);
    expect_row("NVIDIA H200 NVL", "NVIDIA H200 NVL", 60, 417.5, 835.5);
    expect_row("NVIDIA GH200 480GB", "NVIDIA GH200 (Grace Hopper)", 67, 494.5, 989.5);
    expect_row("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM", 67, 494.5, 989.5);
    expect_row("NVIDIA H100 PCIe", "NVIDIA H100 PCIe", 51, 378, 756.5);
    expect_row("NVIDIA H100 NVL", "NVIDIA H100 NVL", 60, 417.5, 835.5);
    expect_row("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM", 19.5, 156, 312);
    expect_row("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM", 19.5, 156, 312);
    expect_row("NVIDIA A100-PCIE-40GB", "NVIDIA A100 PCIe", 19.5, 156, 312);
    expect_row("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe", 19.5, 156, 312);
    expect_row("NVIDIA L40S", "NVIDIA L40S", 91.6, 183, 362.05);
    expect_row("NVIDIA L40", "NVIDIA L40", 90.5, 90.5, 181.05);
    expect_row("NVIDIA L4", "NVIDIA L4", 30.3, 60, 121);
    expect_row("NVIDIA A10", "NVIDIA A10", 31.2, 62.5, 125);
    expect_row("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090", 82.6, 82.6, 165.2);
    expect_row("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090", 35.6, 35.6, 71);
    expect_row("NVIDIA GeForce RTX 3090 Ti", "NVIDIA GeForce RTX 3090 Ti", 40, 40, 80);
    expect_row("Tesla V100-SXM2-16GB", "NVIDIA V100 SXM2", 15.7, 0, 0);
    expect_row("nvidia h200", "NVIDIA H200 SXM", 67, 494.5, 989.5); /* case does not matter */
    /* no row: never a near miss */
    /* no row: never a near miss (a variant with a word more is another GPU) */
    const char *unknown[] = {"NVIDIA GeForce RTX 2080 Ti", "NVIDIA A10G", "NVIDIA GeForce RTX 4090 D",
                             "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "kanc emulated GPU (host CPU)", "NVIDIA B200",
                             "H1000", "NVIDIA", ""};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        const GpuPeak *p = peak_gpu_lookup(unknown[i]);
        cr_expect_null(p, "'%s' matched %s", unknown[i], p ? p->name : "");
    }
    cr_expect_null(peak_gpu_lookup(NULL));
}

Test(mfu, peak_resolve_never_makes_up_a_peak)
{
    Peak p;
    char err[256];
    cr_assert_eq(peak_resolve(&p, 0, 0, 1, "NVIDIA GeForce RTX 2080 Ti", PEAK_FP32, err, sizeof err), 0);
    cr_expect_eq(p.flops, 0);
    cr_expect(strstr(p.note, "NVIDIA GeForce RTX 2080 Ti") && strstr(p.note, "--peak-tflops"), "%s", p.note);
    char json[1024];
    peak_json(&p, 1e12, json, sizeof json);
    cr_expect(strstr(json, "\"mfu\": null") && strstr(json, "\"peak_flops\": null") && strstr(json, "peak_note"),
              "%s", json);
    cr_assert_eq(peak_resolve(&p, 0, 0, 1, "Tesla V100-SXM2-16GB", PEAK_BF16, err, sizeof err), 0);
    cr_expect(p.flops == 0 && strstr(p.note, "no bf16"), "%s", p.note);
    cr_assert_eq(peak_resolve(&p, 0, 0, 1, "NVIDIA H200", PEAK_BF16, err, sizeof err), 0);
    cr_expect(p.flops == 989.5e12 && strstr(p.source, "H200") && strstr(p.source, "bf16"), "%s", p.source);
    cr_assert_eq(peak_resolve(&p, 2.5, 0, 1, "NVIDIA H200", PEAK_FP32, err, sizeof err), 0);
    cr_expect(p.flops == 2.5e12 && !strcmp(p.source, "--peak-tflops"));
    cr_expect_eq(peak_resolve(&p, 0, 1, 1, "NVIDIA H200", PEAK_FP32, err, sizeof err), -1);
    cr_expect(strstr(err, "--measure-peak"), "%s", err);
    cr_assert_eq(peak_resolve(&p, 0, 0, 0, "", PEAK_FP32, err, sizeof err), 0);
    cr_expect(p.flops == 0 && strstr(p.note, "--measure-peak"), "%s", p.note);
    PeakPrecision pr;
    cr_expect(peak_precision_parse("tf32", &pr) == 0 && pr == PEAK_TF32);
    cr_expect_eq(peak_precision_parse("fp16", &pr), -1);
}

/* ---- kanrun bench's JSON ---- */

#define TINY_BENCH \
    "$KANRUN bench models/kansformers.kdl --set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 " \
    "--batch 4 --steps 2 --warmup 0 --threads 2"

static cJSON *bench_json(const char *flags)
{
    char *out = NULL;
    cr_assert_eq(test_run(&out, TINY_BENCH " %s", flags), 0, "%s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert(j, "bench printed no JSON: %s", out);
    free(out);
    return j;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

Test(mfu, bench_prints_model_flops_and_mfu, .timeout = 120)
{
    cJSON *j = bench_json("--peak-tflops 1");
    double fs = num(j, "model_flops_per_s"), tps = num(j, "tokens_per_s"), fpt = num(j, "flops_per_token");
    cr_expect(fpt > 0 && fabs(fs / (fpt * tps) - 1) < 1e-3, "model_flops_per_s %g, flops_per_token %g x %g tok/s",
              fs, fpt, tps);
    cr_expect_eq(num(j, "peak_flops"), 1e12);
    cr_expect(fabs(num(j, "mfu") / (fs / 1e12) - 1) < 1e-5, "mfu %g, model_flops_per_s / 1e12 = %g",
              num(j, "mfu"), fs / 1e12);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(j, "peak_source")->valuestring, "--peak-tflops");
    cJSON_Delete(j);

    j = bench_json(""); /* the CPU without a peak: FLOP/s, and mfu null with a note */
    cr_expect(num(j, "model_flops_per_s") > 0);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "mfu")));
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "peak_flops")));
    cr_expect(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "peak_note")));
    cJSON_Delete(j);

    j = bench_json("--measure-peak");
    double peak = num(j, "peak_flops"), mfu = num(j, "mfu");
    cr_expect(peak > 0, "peak %g", peak);
    cr_expect(mfu > 0 && mfu < 1.5, "mfu %g", mfu);
    cr_expect(fabs(mfu / (num(j, "model_flops_per_s") / peak) - 1) < 1e-4);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(j, "peak_source")->valuestring, "measured sgemm");
    cJSON_Delete(j);

    char *out = NULL;
    cr_expect_eq(test_run(&out, TINY_BENCH " --peak-precision fp16"), 2, "%s", out);
    cr_expect(strstr(out, "--peak-precision fp16"), "%s", out);
    free(out);
}

/* the emulated GPU: its name comes through cuDeviceGetName (the mock's), which
   the table does not know: FLOP/s, no MFU, a note */
Test(mfu, bench_on_an_unknown_gpu_gives_no_mfu, .timeout = 180)
{
    cJSON *j = bench_json("--device emu --steps 1");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "gpu_name");
    cr_expect(cJSON_IsString(name) && strstr(name->valuestring, "emulated"), "gpu_name");
    cr_expect(num(j, "model_flops_per_s") > 0);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "mfu")));
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "peak_flops")));
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(j, "peak_note");
    cr_expect(cJSON_IsString(note) && strstr(note->valuestring, "--peak-tflops"), "peak_note");
    cJSON_Delete(j);
    j = bench_json("");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "gpu_name")), "the CPU has no GPU name");
    cJSON_Delete(j);
}

/* ---- kanrun train's step line and metrics.jsonl ---- */

Test(mfu, train_step_lines_show_flops_and_mfu, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL;
    char *text = xasprintf("%s/text.txt", dir);
    FILE *f = fopen(text, "w");
    cr_assert(f);
    for (int i = 0; i < 300; i++) fprintf(f, "In the beginning God created the heaven and the earth. %d\n", i);
    fclose(f);
    const char *tiny = "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4 --steps 2 "
                       "--warmup 1 --eval-every 0 --log-every 1 --threads 2";
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s/a %s", text, dir, tiny), 0,
                 "%s", out);
    const char *step1 = strstr(out, "step      1/2");
    cr_assert(step1, "%s", out);
    cr_expect(strstr(step1, "FLOP/s") && !strstr(step1, "MFU"), "%s", out);
    cr_expect(strstr(out, "FLOPs per token per step; no peak"), "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "cat %s/a/metrics.jsonl", dir), 0);
    cr_expect(strstr(out, "\"model_flops_s\":") && !strstr(out, "\"mfu\""), "%s", out);
    free(out);

    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s/b %s --peak-tflops 1", text,
                          dir, tiny),
                 0, "%s", out);
    step1 = strstr(out, "step      1/2");
    cr_assert(step1, "%s", out);
    cr_expect(strstr(step1, "FLOP/s | MFU "), "%s", out);
    double fpt = 0;
    const char *head = strstr(out, "kanrun: ");
    while (head && sscanf(head, "kanrun: %lf FLOPs per token per step", &fpt) != 1) head = strstr(head + 1, "kanrun: ");
    cr_assert(fpt > 0, "no FLOPs per token line: %s", out);
    free(out);
    cr_assert_eq(test_run(&out, "cat %s/b/metrics.jsonl", dir), 0);
    /* mfu = model_flops_s / 1e12, and model_flops_s = FLOPs per token x tok_s */
    const char *l = strstr(out, "\"model_flops_s\":");
    cr_assert(l, "%s", out);
    double fs, mfu, tps;
    cr_assert_eq(sscanf(l, "\"model_flops_s\":%lf,\"mfu\":%lf,\"tok_s\":%lf", &fs, &mfu, &tps), 3, "%s", l);
    cr_expect(fs > 0 && fabs(mfu / (fs / 1e12) - 1) < 1e-5, "mfu %g, model_flops_s %g", mfu, fs);
    cr_expect(fabs(fs / (fpt * tps) - 1) < 2e-3, "model_flops_s %g, %g FLOPs per token x %g tok/s", fs, fpt, tps);
    free(out);
    free(text);
    free(dir);
}
