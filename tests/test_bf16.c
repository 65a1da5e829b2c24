/* test_bf16.c: precision bf16 (docs/cuda.md, "Precision"): bf16 operands for every
 * cuBLASLt GEMM, fp32 accumulation, fp32 master weights and AdamW.
 *
 * - `verify --device emu` with KANC_PRECISION=bf16 on a fixture of every kind verify
 *   checks (gpt: minGPT, hybrid and kansformers with blocked KAN layers;
 *   kan_linear, kan_chebyshev, kan_rbf layers; kan_update_grid; kan_reg_loss) at the
 *   bf16 tolerance, with the cuBLASLt mock's count of bf16 matmuls rising and of
 *   fp32 ones not, and an error of the bf16 order (far above the fp32 run's), so
 *   that operands that silently stayed fp32 fail;
 * - the GEMM descriptors the generator writes: bf16 A and B, fp32 C, copies inside
 *   the workspace's operand area, 16-byte aligned; none in fp32;
 * - the options: parsing, KANC_PRECISION, the defaults per device, refusals;
 * - attention's P in bf16 (the softmax kernels write the GEMM operands, rows
 *   padded to 16 bytes) at ragged lengths against the CPU, and its fp32 P with
 *   per-head copies where padded bf16 rows would not fit (T < 4).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen_cuda.h"
#include "cuda_api.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "util.h"
#include "verify.h"
#include "test_util.h"

TestSuite(bf16, .timeout = 900);

/* verify_run on the emulator at precision prec; the worst relative error it printed */
static int verify_emu(const char *model, const char *fixture, const char *prec, const char *kan_kernel,
                      double *worst, char **report)
{
    char *mp = model ? xasprintf("%s/models/%s", test_root(), model) : NULL;
    char *fp = test_fixture_path(fixture);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    setenv("KANC_PRECISION", prec, 1);
    if (kan_kernel) setenv("KANC_KAN_KERNEL", kan_kernel, 1);
    int rc = verify_run(mp, fp, NULL, 0, VERIFY_TOLERANCE_AUTO, "emu", out);
    unsetenv("KANC_PRECISION");
    unsetenv("KANC_KAN_KERNEL");
    fclose(out);
    const char *w = buf ? strstr(buf, "worst relative error ") : NULL;
    *worst = w ? atof(w + strlen("worst relative error ")) : -1;
    *report = buf;
    free(mp);
    free(fp);
    return rc;
}

typedef struct {
    const char *model, *fixture, *kan_kernel;
} Case;

/* every kind of fixture verify checks; blocked KAN layers so that they run on bf16 GEMMs
   (the fused kernels stay fp32) */
static const Case CASES[] = {
    {"mingpt.kdl", "gpt_mlp.safetensors", NULL},
    {"hybrid.kdl", "gpt_hybrid.safetensors", "blocked"},
    {"kansformers.kdl", "gpt_kansformers.safetensors", "blocked"},
    {"kan-linear.kdl", "kan_linear_nonuniform.safetensors", "blocked"},
    {NULL, "kan-workflow/kan_chebyshev_layer.safetensors", "blocked"},
    {NULL, "kan-workflow/kan_rbf_layer.safetensors", "blocked"},
    {NULL, "kan-workflow/kan_update_grid.safetensors", "blocked"},
    {NULL, "kan-workflow/kan_reg_loss.safetensors", "blocked"},
};

Test(bf16, every_fixture_kind_verifies_with_bf16_gemms)
{
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        const Case *c = &CASES[i];
        long f0, b0, f1, b1;
        double worst32, worst16;
        char *r32, *r16;
        cuda_mock_lt_counts(&f0, &b0);
        int rc32 = verify_emu(c->model, c->fixture, "fp32", c->kan_kernel, &worst32, &r32);
        cuda_mock_lt_counts(&f1, &b1);
        cr_expect(rc32 == 0, "fp32 %s: rc %d\n%s", c->fixture, rc32, r32);
        cr_expect(b1 == b0, "fp32 %s ran %ld bf16 matmuls", c->fixture, b1 - b0);
        int rc16 = verify_emu(c->model, c->fixture, "bf16", c->kan_kernel, &worst16, &r16);
        long f2, b2;
        cuda_mock_lt_counts(&f2, &b2);
        cr_expect(rc16 == 0, "bf16 %s: rc %d\n%s", c->fixture, rc16, r16);
        cr_expect(r16 && strstr(r16, "precision bf16"), "%s", r16);
        cr_expect(f2 == f1, "bf16 %s ran %ld fp32 matmuls", c->fixture, f2 - f1);
        if (f1 > f0) /* the fixture's model has GEMMs: they all ran in bf16 */
            cr_expect(b2 > b1, "bf16 %s ran no bf16 matmul (%ld fp32 ones in fp32)", c->fixture, f1 - f0);
        /* the bf16 error: at least 2^-12 (16 times below bf16's unit roundoff) and 10 times the fp32 run's */
        if (f1 > f0)
            cr_expect(worst16 > 2.44e-4 && worst16 > 10 * worst32,
                      "bf16 %s: worst error %.3e against fp32's %.3e: the operands look fp32", c->fixture,
                      worst16, worst32);
        cr_expect(worst16 <= VERIFY_TOLERANCE_BF16, "%s: %.3e", c->fixture, worst16);
        free(r32);
        free(r16);
    }
}

/* a tiny training plan of a model (its device is the CPU; only the plan is used) */
static void tiny_model(Model *m, const char *name)
{
    char *path = xasprintf("%s/models/%s", test_root(), name);
    KdlSet sets[] = {{"n_layer", "1", 1}, {"batch", "2", 1},  {"block_size", "8", 1},
                     {"n_embd", "12", 1}, {"n_head", "2", 1}, {"vocab_size", "29", 1}};
    cr_assert(model_compile(m, path, NULL, sets, 6, MODEL_TRAIN, 4, "cpu", stderr) == 0, "%s", path);
    free(path);
}

static void check_descriptors(const char *model, KanKernel kk)
{
    Model m;
    tiny_model(&m, model);
    CudaOptions o;
    cuda_options_default(&o);
    o.kan_kernel = kk;
    char err[512];
    CudaProgram p32, p16;
    cr_assert(codegen_cuda(&m.plan, &o, &p32, err, sizeof err) == 0, "%s", err);
    o.precision = CUDA_BF16;
    cr_assert(codegen_cuda(&m.plan, &o, &p16, err, sizeof err) == 0, "%s", err);
    cr_expect_eq(p32.precision, CUDA_FP32);
    cr_expect_eq(p16.precision, CUDA_BF16);
    cr_expect_eq(p32.ws_cast_bytes, 0);
    cr_expect(p16.ws_cast_bytes > 0 && p16.ws_bytes >= p32.ws_bytes + p16.ws_cast_bytes - 256, "%s: ws %lld cast %lld",
              model, (long long)p16.ws_bytes, (long long)p16.ws_cast_bytes);
    cr_expect(strstr(p16.source, "#include <cuda_bf16.h>") && !strstr(p32.source, "#include <cuda_bf16.h>"));
    int n32 = 0, n16 = 0;
    for (int i = 0; i < p32.n_launch; i++)
        if (p32.launch[i].kind == LAUNCH_GEMM) {
            n32++;
            cr_expect(p32.launch[i].gemm.type_a == GEMM_F32 && p32.launch[i].gemm.type_b == GEMM_F32);
        }
    int64_t cast0 = p16.ws_bytes - p16.ws_cast_bytes;
    for (int i = 0; i < p16.n_launch; i++) {
        const CudaLaunch *l = &p16.launch[i];
        for (int a = 0; l->kind == LAUNCH_KERNEL && a < l->n_args; a++)
            cr_expect(l->arg[a].area == CUDA_ARG_INT || (l->arg[a].area >= 0 && l->arg[a].area < KANC_N_AREAS),
                      "%s: launch %d argument %d in area %d", model, i, a, l->arg[a].area);
        if (l->kind != LAUNCH_GEMM) continue;
        n16++;
        const GemmDesc *g = &l->gemm;
        cr_expect(g->type_a == GEMM_BF16 && g->type_b == GEMM_BF16, "%s: GEMM %s types %d %d", model, l->name,
                  g->type_a, g->type_b);
        /* the operands: a bf16 copy in the workspace (the blocked KAN basis and Wf are
           written in bf16 where they are, and so is attention's P, or dS over it, in the
           node's aux), 16-byte aligned rows; C fp32 outside the copies */
        int p_in_aux = g->area_a == AREA_ARENA && g->batch > 1 && strstr(l->name, "_attention_") &&
                       g->lda * 2 % 16 == 0 && g->off_a % 16 == 0;
        cr_expect((g->area_a == AREA_WS || p_in_aux) && g->area_b == AREA_WS, "%s: GEMM %s reads areas %d %d", model,
                  l->name, g->area_a, g->area_b);
        /* attention's per-head operands start at the head's column (h D elements: the
           runtime promises cuBLASLt the alignment they have); the others at 16 bytes */
        if (g->batch > 1)
            cr_expect(g->off_a % 2 == 0 && g->off_b % 2 == 0 && g->stride_a * 2 % 16 == 0 &&
                      g->stride_b * 2 % 16 == 0, "%s: GEMM %s", model, l->name);
        else
            cr_expect(g->off_a % 16 == 0 && g->off_b % 16 == 0, "%s: GEMM %s", model, l->name);
        if (g->area_a == AREA_WS && g->off_a >= cast0) cr_expect(g->lda * 2 % 16 == 0 && g->off_a < p16.ws_bytes);
        if (g->area_b == AREA_WS && g->off_b >= cast0) cr_expect(g->ldb * 2 % 16 == 0 && g->off_b < p16.ws_bytes);
        cr_expect(g->area_c != AREA_WS || g->off_c + (g->m - 1) * g->ldc * 4 + g->n * 4 <= cast0,
                  "%s: GEMM %s writes into the operand copies", model, l->name);
    }
    cr_expect(n32 > 0 && n16 == n32, "%s: %d fp32 GEMMs, %d bf16 GEMMs", model, n32, n16);
    cuda_program_free(&p32);
    cuda_program_free(&p16);
    model_free(&m);
}

Test(bf16, the_gemm_descriptors_take_bf16_operands)
{
    check_descriptors("mingpt.kdl", KAN_KERNEL_AUTO);
    check_descriptors("hybrid.kdl", KAN_KERNEL_BLOCKED);
    check_descriptors("kansformers.kdl", KAN_KERNEL_BLOCKED);
}

Test(bf16, options_defaults_and_refusals)
{
    CudaPrecision p;
    cr_expect_eq(cuda_precision_parse("bf16", &p), 0);
    cr_expect_eq(p, CUDA_BF16);
    cr_expect_eq(cuda_precision_parse("fp32", &p), 0);
    cr_expect_eq(p, CUDA_FP32);
    cr_expect_eq(cuda_precision_parse("fp16", &p), -1);
    CudaOptions o;
    char err[256];
    unsetenv("KANC_PRECISION");
    cr_expect_eq(cuda_options_for_device(&o, "cuda", err, sizeof err), 0);
    cr_expect_eq(o.precision, CUDA_BF16);
    cr_expect_eq(cuda_options_for_device(&o, "emu", err, sizeof err), 0);
    cr_expect_eq(o.precision, CUDA_FP32);
    setenv("KANC_PRECISION", "fp32", 1);
    cr_expect_eq(cuda_options_for_device(&o, "cuda", err, sizeof err), 0);
    cr_expect_eq(o.precision, CUDA_FP32);
    setenv("KANC_PRECISION", "half", 1);
    cr_expect_eq(cuda_options_for_device(&o, "emu", err, sizeof err), -1);
    cr_expect(strstr(err, "KANC_PRECISION=half") && strstr(err, "fp32 or bf16"), "%s", err);
    unsetenv("KANC_PRECISION");

    /* bf16 runs its products on cuBLASLt: the generated GEMM kernels are fp32 only */
    Model m;
    tiny_model(&m, "mingpt.kdl");
    cuda_options_default(&o);
    o.precision = CUDA_BF16;
    o.use_cublas = 0;
    CudaProgram prog;
    cr_expect_eq(codegen_cuda(&m.plan, &o, &prog, err, sizeof err), -1);
    cr_expect(strstr(err, "bf16") && strstr(err, "cuBLASLt"), "%s", err);
    model_free(&m);

    char *out = NULL;
    char *fix = test_fixture_path("gpt_mlp.safetensors");
    int rc = test_run(&out, "%s verify '%s' --device cpu --precision bf16 2>&1", test_bin("kanrun"), fix);
    cr_expect_eq(rc, 2);
    cr_expect(out && strstr(out, "--precision bf16 needs a CUDA device"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s train models/mingpt.kdl --device cpu --precision bf16 --steps 1 2>&1", test_bin("kanrun"));
    cr_expect_neq(rc, 0);
    cr_expect(out && strstr(out, "--precision bf16 needs a CUDA device"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s verify '%s' --device emu --precision tf16 2>&1", test_bin("kanrun"), fix);
    cr_expect_eq(rc, 2);
    cr_expect(out && strstr(out, "--precision tf16: expected fp32 or bf16"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s models/mingpt.kdl --precision int8 -o /dev/null 2>&1", test_bin("kanc"));
    cr_expect_neq(rc, 0);
    cr_expect(out && strstr(out, "--precision int8: expected fp32 or bf16"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s models/mingpt.kdl --precision fp32 2>&1", test_bin("kanc"));
    cr_expect_neq(rc, 0);
    cr_expect(out && strstr(out, "and --precision go with -o"), "%s", out ? out : "");
    free(out);
    free(fix);
}

/* kanc --report shows the CUDA workspace with its bf16 operand copies */
Test(bf16, kanc_report_shows_the_operand_copies)
{
    char *out = NULL;
    int rc = test_run(&out, "%s models/mingpt.kdl --set n_layer=1 --report 2>&1", test_bin("kanc"));
    cr_expect_eq(rc, 0);
    cr_expect(out && strstr(out, "at precision bf16") && strstr(out, "bf16 operand copies"), "%s", out ? out : "");
    free(out);
    rc = test_run(&out, "%s models/mingpt.kdl --set n_layer=1 --report --precision fp32 2>&1", test_bin("kanc"));
    cr_expect_eq(rc, 0);
    cr_expect(out && strstr(out, "at precision fp32") && strstr(out, "copies 0.00 MiB"), "%s", out ? out : "");
    free(out);
}

/* A GEMM whose operand copies pass CudaOptions.gemm_copy_bytes runs in parts (along m, n or
   k): more GEMM launches, smaller copies, and the same results within the bf16 tolerance */
Test(bf16, large_operand_copies_run_in_parts)
{
    Model m;
    tiny_model(&m, "mingpt.kdl");
    CudaOptions o;
    cuda_options_default(&o);
    o.precision = CUDA_BF16;
    char err[512];
    CudaProgram whole, parts;
    cr_assert(codegen_cuda(&m.plan, &o, &whole, err, sizeof err) == 0, "%s", err);
    o.gemm_copy_bytes = 1024; /* below the tiny model's 3 KiB of copies */
    cr_assert(codegen_cuda(&m.plan, &o, &parts, err, sizeof err) == 0, "%s", err);
    int nw = 0, np = 0;
    for (int i = 0; i < whole.n_launch; i++) nw += whole.launch[i].kind == LAUNCH_GEMM;
    for (int i = 0; i < parts.n_launch; i++) np += parts.launch[i].kind == LAUNCH_GEMM;
    cr_expect(np > nw, "%d GEMMs in parts, %d whole", np, nw);
    cr_expect(parts.ws_cast_bytes < whole.ws_cast_bytes, "copies %lld in parts, %lld whole",
              (long long)parts.ws_cast_bytes, (long long)whole.ws_cast_bytes);
    cuda_program_free(&whole);
    cuda_program_free(&parts);
    model_free(&m);

    for (int i = 0; i < 3; i++) {
        double worst;
        char *r;
        long f0, b0, f1, b1, f2, b2;
        cuda_mock_lt_counts(&f0, &b0);
        verify_emu(CASES[i].model, CASES[i].fixture, "bf16", CASES[i].kan_kernel, &worst, &r);
        free(r);
        cuda_mock_lt_counts(&f1, &b1);
        setenv("KANC_GEMM_COPY_BYTES", "512", 1);
        int rc = verify_emu(CASES[i].model, CASES[i].fixture, "bf16", CASES[i].kan_kernel, &worst, &r);
        unsetenv("KANC_GEMM_COPY_BYTES");
        cuda_mock_lt_counts(&f2, &b2);
        cr_expect(rc == 0, "%s in parts: rc %d\n%s", CASES[i].fixture, rc, r);
        cr_expect(b2 - b1 > b1 - b0, "%s: %ld bf16 matmuls in parts, %ld whole", CASES[i].fixture, b2 - b1, b1 - b0);
        free(r);
    }
    CudaOptions e;
    setenv("KANC_GEMM_COPY_BYTES", "12kb", 1);
    cr_expect_eq(cuda_options_from_env(&e, err, sizeof err), -1);
    cr_expect(strstr(err, "KANC_GEMM_COPY_BYTES=12kb"), "%s", err);
    unsetenv("KANC_GEMM_COPY_BYTES");
}

/* one minGPT step (1 layer, 12 wide, H heads, context T) on the CPU and on the emulated GPU in
   bf16: logits, loss and every gradient agree to the bf16 tolerance; and the step's attention
   launches: with P in bf16 only qkv and dy are cast, else P and dS per head too */
static void attention_p_case(int64_t T, int64_t H)
{
    char *path = xasprintf("%s/models/mingpt.kdl", test_root());
    char ts[16], hs[16];
    snprintf(ts, sizeof ts, "%lld", (long long)T);
    snprintf(hs, sizeof hs, "%lld", (long long)H);
    KdlSet sets[] = {{"n_layer", "1", 1}, {"batch", "2", 1}, {"block_size", ts, 1},
                     {"n_embd", "12", 1}, {"n_head", hs, 1}, {"vocab_size", "29", 1}};
    Model c, e;
    cr_assert(model_compile(&c, path, NULL, sets, 6, MODEL_TRAIN, 4, "cpu", stderr) == 0);
    setenv("KANC_PRECISION", "bf16", 1);
    cr_assert(model_compile(&e, path, NULL, sets, 6, MODEL_TRAIN, 4, "emu", stderr) == 0);
    unsetenv("KANC_PRECISION");
    free(path);
    /* the emulated step's plan holds P in bf16: B H T ld 2 bytes (rows padded to ld) instead of B H T T 4 */
    int64_t ld = (T + 7) / 8 * 8;
    cr_expect(e.plan.gemm_bf16 && !c.plan.gemm_bf16);
    for (int i = 0; i < e.g.n; i++)
        if (e.g.nodes[i].op == OP_ATTENTION)
            cr_expect_eq(op_aux_bytes(&e.g.nodes[i], 4, 1), T >= 4 ? 2 * H * T * ld * 2 : 2 * H * T * T * 4, "T %lld",
                         (long long)T);
    if (T >= 4)
        cr_expect(e.plan.arena_bytes < c.plan.arena_bytes, "T %lld: arena %lld in bf16, %lld in fp32", (long long)T,
                  (long long)e.plan.arena_bytes, (long long)c.plan.arena_bytes);
    else
        cr_expect_eq(e.plan.arena_bytes, c.plan.arena_bytes);
    char err[512];
    cr_assert(model_init_params(&c, 5, err, sizeof err) == 0, "%s", err);
    cr_assert(model_init_params(&e, 5, err, sizeof err) == 0, "%s", err);
    const Graph *g = &c.g;
    int idx = model_input(&c, "idx"), tgt = model_input(&c, "targets"), adam = -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_ADAMW) adam = i;
    cr_assert(idx >= 0 && tgt >= 0 && adam > 0);
    int64_t n = shape_numel(&g->nodes[idx].shape), np = c.plan.n_param_elems;
    int64_t nl = shape_numel(&g->nodes[g->output].shape);
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)n), *y = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (int32_t)(kanc_rng_bits(3, 0, (uint64_t)i) % 29);
        y[i] = (int32_t)(kanc_rng_bits(4, 0, (uint64_t)i) % 29);
    }
    float *lc = xmalloc(sizeof(float) * (size_t)nl), *le = xmalloc(sizeof(float) * (size_t)nl);
    float *gc = xmalloc(sizeof(float) * (size_t)np), *ge = xmalloc(sizeof(float) * (size_t)np);
    Model *ms[2] = {&c, &e};
    double loss[2];
    for (int k = 0; k < 2; k++) {
        cr_assert(model_set_tokens(ms[k], idx, x, err, sizeof err) == 0, "%s", err);
        cr_assert(model_set_tokens(ms[k], tgt, y, err, sizeof err) == 0, "%s", err);
        ms[k]->dev->training = 1;
        ms[k]->dev->ops->run(ms[k]->dev, 0, adam); /* forward and backward */
        model_read_value(ms[k], g->loss, &loss[k]);
    }
    c.dev->ops->read_value(c.dev, g->output, lc);
    e.dev->ops->read_value(e.dev, g->output, le);
    c.dev->ops->read_area(c.dev, AREA_GRADS, gc);
    e.dev->ops->read_area(e.dev, AREA_GRADS, ge);
    double rl = test_rel_err_f(le, lc, nl), rg = test_rel_err_f(ge, gc, np);
    cr_log_info("attention T %lld H %lld, bf16 against the CPU: logits %.3e, gradients %.3e", (long long)T,
                (long long)H, rl, rg);
    cr_expect(fabs(loss[1] - loss[0]) <= VERIFY_TOLERANCE_BF16 * fabs(loss[0]), "T %lld: loss cpu %.6f emu bf16 %.6f",
              (long long)T, loss[0], loss[1]);
    cr_expect(rl <= VERIFY_TOLERANCE_BF16 && rg <= VERIFY_TOLERANCE_BF16, "T %lld H %lld: logits %.3e, grads %.3e",
              (long long)T, (long long)H, rl, rg);
    cr_expect(rg > 2.44e-4, "T %lld: gradient error %.3e: no bf16 rounding", (long long)T, rg);
    for (int i = 0; i < g->n; i++) { /* per parameter, attention's inputs among them */
        if (g->nodes[i].op != OP_PARAM) continue;
        int64_t k = shape_numel(&g->nodes[i].shape);
        double r = test_rel_err_f(ge + c.plan.pos[i], gc + c.plan.pos[i], k);
        cr_expect(r <= VERIFY_TOLERANCE_BF16, "T %lld: grad of %s rel %.3e", (long long)T, g->nodes[i].name, r);
    }
    /* the launches of the attention nodes */
    CudaOptions o;
    cuda_options_default(&o);
    o.precision = CUDA_BF16;
    CudaProgram p;
    cr_assert(codegen_cuda(&c.plan, &o, &p, err, sizeof err) == 0, "%s", err);
    int casts = 0, p_in_arena = 0;
    for (int i = 0; i < g->n; i++) {
        GOp op = g->nodes[i].op;
        if (op != OP_ATTENTION && op != OP_ATTENTION_BWD) continue;
        for (int l = p.node_first[i]; l >= 0 && l < p.node_first[i] + p.node_count[i]; l++) {
            const CudaLaunch *L = &p.launch[l];
            if (L->kind == LAUNCH_KERNEL && strstr(L->name, "cast_bf16")) casts++;
            if (L->kind == LAUNCH_GEMM && L->gemm.area_a == AREA_ARENA) {
                p_in_arena++;
                cr_expect(L->gemm.type_a == GEMM_BF16 && L->gemm.lda * 2 % 16 == 0 && L->gemm.off_a % 16 == 0 &&
                              L->gemm.stride_a * 2 % 16 == 0,
                          "T %lld: %s: P operand lda %lld off %lld stride %lld", (long long)T, L->name,
                          (long long)L->gemm.lda, (long long)L->gemm.off_a, (long long)L->gemm.stride_a);
            }
        }
    }
    if (T >= 4) { /* qkv in the forward, dy and qkv in the backward; P (PV, dv) and dS (dq, dk) read in place */
        cr_expect(casts == 3, "T %lld: %d casts in attention", (long long)T, casts);
        cr_expect(p_in_arena == 4 * H, "T %lld: %d GEMMs read P or dS in place", (long long)T, p_in_arena);
    } else { /* P (PV, dv) and dS per head as well */
        cr_expect(casts == 3 + 3 * H, "T %lld: %d casts in attention", (long long)T, casts);
        cr_expect(p_in_arena == 0, "T %lld: %d GEMMs read an fp32 P in place", (long long)T, p_in_arena);
    }
    cuda_program_free(&p);
    free(x), free(y), free(lc), free(le), free(gc), free(ge);
    model_free(&c);
    model_free(&e);
}

Test(bf16, attention_p_in_bf16_at_ragged_lengths)
{
    attention_p_case(21, 3); /* rows padded from 21 to 24 */
    attention_p_case(37, 2); /* longer than a warp */
    attention_p_case(8, 2);  /* no padding */
    attention_p_case(3, 3);  /* padded rows would not fit: fp32 P, copies per head */
}

/* a plan laid out for bf16 operands (P in half the bytes) runs nowhere else: fp32 code
   generation, generated GEMMs and the CPU refuse it, saying why */
Test(bf16, a_bf16_plan_is_refused_where_p_would_be_fp32)
{
    Model m;
    tiny_model(&m, "mingpt.kdl");
    Plan bf;
    plan_build_for(&bf, &m.g, 4, 1);
    CudaOptions o;
    cuda_options_default(&o);
    CudaProgram p;
    char err[512];
    cr_expect_eq(codegen_cuda(&bf, &o, &p, err, sizeof err), -1);
    cr_expect(strstr(err, "laid out for bf16"), "%s", err);
    o.precision = CUDA_BF16;
    o.use_cublas = 0;
    cr_expect_eq(codegen_cuda(&bf, &o, &p, err, sizeof err), -1);
    o.use_cublas = 1;
    cr_assert_eq(codegen_cuda(&bf, &o, &p, err, sizeof err), 0, "%s", err);
    cuda_program_free(&p);
    cr_expect(device_open(&bf, "cpu", err, sizeof err) == NULL);
    cr_expect(strstr(err, "device 'cpu' cannot run it"), "%s", err);
    plan_free(&bf);
    model_free(&m);
}
