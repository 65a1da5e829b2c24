/* test_cuda_runtime.c: the CUDA artifact and runtime, on a machine without a GPU.
 *
 *   - the driver-API and cuBLASLt constants of cuda_api.h against the real
 *     headers (when the CUDA toolkit is installed);
 *   - NVRTC: architectures, compile errors pointing at the generated source;
 *   - every shipped model compiles to a cubin for sm_80 and sm_90 (kanc -o),
 *     and the cubin reads back (plan JSON, parameter names, kernels);
 *   - truncated and corrupt cubins are refused with a message, never a crash;
 *   - without a driver, --device cuda fails with the clear message;
 *   - the mock driver: cuBLASLt's row-major operand swap on ragged GEMMs in
 *     all four transpose combinations, and a hand-built kernel module;
 *   - --device emu (the whole CUDA device code over the mock driver and the
 *     emulated kernels) matches the CPU device: forward, backward, gradient
 *     norm, clipping, AdamW, step counting, dropout, split runs;
 *   - a prebuilt cubin as the model (kanrun train step.cubin);
 *   - kanrun verify --device emu on every fixture in $SHARED/fixtures.
 *
 * Tests that need NVRTC skip when it is not installed. Models come from
 * $KANC_ROOT/models (default ./models), fixtures from $SHARED (default ../shared).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact.h"
#include "cuda_api.h"
#include "init.h"
#include "model.h"
#include "nvrtc.h"
#include "rng.h"
#include "util.h"
#include "verify.h"
#include "test_util.h"

TestSuite(cuda_runtime, .timeout = 600);

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}


static int have_nvrtc(void)
{
    int ma, mi;
    char err[512];
    return nvrtc_version(&ma, &mi, err, sizeof err) == 0;
}

/* a fresh temporary folder (removed by rm_rf) */
static char *temp_dir(void)
{
    char *d = xasprintf("%s/kanc-cuda-test-XXXXXX", env_or("TMPDIR", "/tmp"));
    cr_assert(mkdtemp(d), "mkdtemp");
    return d;
}

static void rm_rf(char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    cr_expect(system(cmd) == 0);
    free(cmd);
    free(dir);
}

/* ------------------------------------------------------------ cuda_api.h vs the real headers */

Test(cuda_runtime, constants_match_cuda_headers)
{
    const char *home = env_or("CUDA_HOME", "/usr/local/cuda");
    char *hdr = xasprintf("%s/include/cublasLt.h", home);
    struct stat st;
    if (stat(hdr, &st)) {
        free(hdr);
        cr_skip_test("no CUDA headers under %s", home);
    }
    free(hdr);
    char *dir = temp_dir();
    char *src = xasprintf("%s/check.c", dir);
    FILE *f = fopen(src, "w");
    cr_assert(f);
    fprintf(f, "#include <stddef.h>\n#include <cuda.h>\n#include <cublasLt.h>\n#define EQ(a, b) _Static_assert((a) == (b), #a)\n");
#define EQ(name, val) fprintf(f, "EQ(%s, %lld);\n", name, (long long)(val))
    EQ("CUDA_SUCCESS", CUDA_SUCCESS);
    EQ("CUDA_ERROR_INVALID_VALUE", CUDA_ERROR_INVALID_VALUE);
    EQ("CUDA_ERROR_OUT_OF_MEMORY", CUDA_ERROR_OUT_OF_MEMORY);
    EQ("CUDA_ERROR_NOT_INITIALIZED", CUDA_ERROR_NOT_INITIALIZED);
    EQ("CUDA_ERROR_NO_DEVICE", CUDA_ERROR_NO_DEVICE);
    EQ("CUDA_ERROR_INVALID_IMAGE", CUDA_ERROR_INVALID_IMAGE);
    EQ("CUDA_ERROR_NOT_FOUND", CUDA_ERROR_NOT_FOUND);
    EQ("CUDA_ERROR_LAUNCH_FAILED", CUDA_ERROR_LAUNCH_FAILED);
    EQ("CUDA_ERROR_NOT_SUPPORTED", CUDA_ERROR_NOT_SUPPORTED);
    EQ("CUDA_ERROR_UNKNOWN", CUDA_ERROR_UNKNOWN);
    EQ("CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK", CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
    EQ("CU_DEVICE_ATTRIBUTE_CLOCK_RATE", CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    EQ("CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT", CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    EQ("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR", CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    EQ("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR", CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    EQ("CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    EQ("CU_FUNC_ATTRIBUTE_NUM_REGS", CU_FUNC_ATTRIBUTE_NUM_REGS);
    EQ("CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
    EQ("CU_STREAM_NON_BLOCKING", CU_STREAM_NON_BLOCKING);
    EQ("CUDA_ERROR_ILLEGAL_STATE", CUDA_ERROR_ILLEGAL_STATE);
    EQ("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    EQ("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    EQ("CUDA_ERROR_STREAM_CAPTURE_UNMATCHED", CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
    EQ("CU_STREAM_CAPTURE_MODE_GLOBAL", CU_STREAM_CAPTURE_MODE_GLOBAL);
    EQ("CU_STREAM_CAPTURE_STATUS_NONE", CU_STREAM_CAPTURE_STATUS_NONE);
    EQ("CU_STREAM_CAPTURE_STATUS_ACTIVE", CU_STREAM_CAPTURE_STATUS_ACTIVE);
    EQ("CU_STREAM_CAPTURE_STATUS_INVALIDATED", CU_STREAM_CAPTURE_STATUS_INVALIDATED);
    EQ("CU_EVENT_DEFAULT", CU_EVENT_DEFAULT);
    EQ("CUBLAS_STATUS_SUCCESS", CUBLAS_STATUS_SUCCESS);
    EQ("CUBLAS_STATUS_NOT_INITIALIZED", CUBLAS_STATUS_NOT_INITIALIZED);
    EQ("CUBLAS_STATUS_INVALID_VALUE", CUBLAS_STATUS_INVALID_VALUE);
    EQ("CUBLAS_STATUS_NOT_SUPPORTED", CUBLAS_STATUS_NOT_SUPPORTED);
    EQ("CUBLAS_OP_N", CUBLAS_OP_N);
    EQ("CUBLAS_OP_T", CUBLAS_OP_T);
    EQ("CUDA_R_32F", CUDA_R_32F);
    EQ("CUBLAS_COMPUTE_32F", CUBLAS_COMPUTE_32F);
    EQ("CUBLAS_COMPUTE_32F_FAST_TF32", CUBLAS_COMPUTE_32F_FAST_TF32);
    EQ("CUBLAS_OP_C", CUBLAS_OP_C);
    EQ("CUDA_R_16F", CUDA_R_16F);
    EQ("CUDA_R_16BF", CUDA_R_16BF);
    EQ("CUBLAS_COMPUTE_32F_FAST_16BF", CUBLAS_COMPUTE_32F_FAST_16BF);
    EQ("CUBLASLT_MATMUL_DESC_COMPUTE_TYPE", CUBLASLT_MATMUL_DESC_COMPUTE_TYPE);
    EQ("CUBLASLT_MATMUL_DESC_SCALE_TYPE", CUBLASLT_MATMUL_DESC_SCALE_TYPE);
    EQ("CUBLASLT_MATMUL_DESC_POINTER_MODE", CUBLASLT_MATMUL_DESC_POINTER_MODE);
    EQ("CUBLASLT_MATMUL_DESC_TRANSC", CUBLASLT_MATMUL_DESC_TRANSC);
    EQ("CUBLASLT_MATMUL_DESC_EPILOGUE", CUBLASLT_MATMUL_DESC_EPILOGUE);
    EQ("CUBLASLT_POINTER_MODE_HOST", CUBLASLT_POINTER_MODE_HOST);
    EQ("CUBLASLT_EPILOGUE_DEFAULT", CUBLASLT_EPILOGUE_DEFAULT);
    EQ("CUBLASLT_ORDER_COL", CUBLASLT_ORDER_COL);
    EQ("CUBLASLT_ORDER_ROW", CUBLASLT_ORDER_ROW);
    EQ("CUBLASLT_MATRIX_LAYOUT_TYPE", CUBLASLT_MATRIX_LAYOUT_TYPE);
    EQ("CUBLASLT_MATRIX_LAYOUT_ORDER", CUBLASLT_MATRIX_LAYOUT_ORDER);
    EQ("CUBLASLT_MATRIX_LAYOUT_ROWS", CUBLASLT_MATRIX_LAYOUT_ROWS);
    EQ("CUBLASLT_MATRIX_LAYOUT_COLS", CUBLASLT_MATRIX_LAYOUT_COLS);
    EQ("CUBLASLT_MATRIX_LAYOUT_LD", CUBLASLT_MATRIX_LAYOUT_LD);
    EQ("CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT", CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT);
    EQ("CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET", CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET);
    EQ("CUBLASLT_MATMUL_DESC_TRANSA", CUBLASLT_MATMUL_DESC_TRANSA);
    EQ("CUBLASLT_MATMUL_DESC_TRANSB", CUBLASLT_MATMUL_DESC_TRANSB);
    EQ("CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);
    EQ("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
    EQ("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES);
    EQ("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES);
    EQ("CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES", CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES);
    EQ("sizeof(cublasLtMatmulAlgo_t)", sizeof(cublasLtMatmulAlgo_t));
    EQ("sizeof(cublasLtMatmulHeuristicResult_t)", sizeof(cublasLtMatmulHeuristicResult_t));
    EQ("offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize)", offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize));
    EQ("offsetof(cublasLtMatmulHeuristicResult_t, state)", offsetof(cublasLtMatmulHeuristicResult_t, state));
    EQ("sizeof(CUdeviceptr)", sizeof(CUdeviceptr));
    EQ("sizeof(CUresult)", sizeof(CUresult));
#undef EQ
    fclose(f);
    char *cmd = xasprintf("cc -std=c11 -fsyntax-only -I'%s/include' '%s' 2>&1", home, src);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    cr_expect(rc == 0, "cuda_api.h disagrees with the CUDA headers:\n%s", out);
    free(cmd);
    free(src);
    rm_rf(dir);
}

/* ------------------------------------------------------------ NVRTC */

Test(cuda_runtime, nvrtc_architectures)
{
    int sm;
    char err[256];
    const char *ok[] = {"sm_80", "sm_86", "sm_89", "sm_90"};
    int want[] = {80, 86, 89, 90};
    for (int i = 0; i < 4; i++) {
        cr_expect(nvrtc_parse_arch(ok[i], &sm, err, sizeof err) == 0, "%s", ok[i]);
        cr_expect(sm == want[i]);
    }
    const char *bad[] = {"sm_70", "sm_100", "90", "sm_9x", "compute_90", "", "sm_"};
    for (int i = 0; i < 7; i++) {
        err[0] = 0;
        cr_expect(nvrtc_parse_arch(bad[i], &sm, err, sizeof err) == -1, "'%s' accepted", bad[i]);
        cr_expect(strstr(err, "unsupported architecture") && strstr(err, "sm_90"), "%s", err);
    }
    cr_expect(nvrtc_parse_arch(NULL, &sm, err, sizeof err) == -1);
}

Test(cuda_runtime, nvrtc_error_points_at_generated_line)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    const char *src = "extern \"C\" __global__ void good(float *p) { p[0] = 1; }\n"
                      "extern \"C\" __global__ void bad(float *p) { p[0] = undefined_name; }\n";
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    NvrtcOutput o;
    char err[512];
    setenv("KANC_CACHE", "0", 1);
    cr_assert(nvrtc_compile(src, "step.cu", 90, &o, diag, err, sizeof err) == -1);
    fclose(diag);
    cr_expect(strstr(err, "sm_90") && strstr(err, "1 error"), "%s", err);
    cr_expect(strstr(buf, "step.cu(2): error"), "log: %s", buf);
    cr_expect(strstr(buf, ">>      2 | extern \"C\" __global__ void bad"), "no source line in: %s", buf);
    free(buf);
    nvrtc_output_free(&o);
    /* and the good half alone compiles to an ELF cubin */
    cr_assert(nvrtc_compile("extern \"C\" __global__ void good(float *p) { p[0] = 1; }\n", "ok.cu", 80,
                            &o, NULL, err, sizeof err) == 0, "%s", err);
    cr_expect(o.size > 64 && !memcmp(o.cubin, "\x7f" "ELF", 4));
    nvrtc_output_free(&o);
}

Test(cuda_runtime, nvrtc_cache_returns_the_same_cubin)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    char *dir = temp_dir();
    setenv("KANC_CACHE_DIR", dir, 1);
    unsetenv("KANC_CACHE");
    const char *src = "extern \"C\" __global__ void k(float *p) { p[threadIdx.x] *= 2; }\n";
    NvrtcOutput a, b;
    char err[512];
    cr_assert(nvrtc_compile(src, "k.cu", 90, &a, NULL, err, sizeof err) == 0, "%s", err);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) files += strstr(e->d_name, ".cubin") != NULL;
    closedir(d);
    cr_expect(files == 1, "the cache holds %d cubins", files);
    cr_assert(nvrtc_compile(src, "k.cu", 90, &b, NULL, err, sizeof err) == 0, "%s", err);
    cr_expect(a.size == b.size && !memcmp(a.cubin, b.cubin, a.size));
    nvrtc_output_free(&a);
    nvrtc_output_free(&b);
    unsetenv("KANC_CACHE_DIR");
    rm_rf(dir);
}

/* ------------------------------------------------------------ every shipped model to a cubin */

typedef struct {
    const char *model, *out;
    const char *arch;
    int rc;
    char *diag;
    size_t len;
} CompileJob;

static void *compile_job(void *p)
{
    CompileJob *j = p;
    FILE *diag = open_memstream(&j->diag, &j->len);
    ArtifactOptions o = {.model_path = j->model, .arch = j->arch, .out_path = j->out};
    j->rc = artifact_compile(&o, diag);
    fclose(diag);
    return NULL;
}

/* reads a cubin back: plan JSON, every parameter name, kernels with registers */
static void check_cubin(const char *path, const char *model, int sm)
{
    Artifact a;
    char err[1024];
    cr_assert(artifact_read(&a, path, err, sizeof err) == 0, "%s", err);
    cr_expect(a.elf_sm == sm, "%s: ELF says sm_%d", path, a.elf_sm);
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d", sm);
    cr_expect(artifact_str(&a, "arch") && !strcmp(artifact_str(&a, "arch"), arch));
    const char *mp;
    const char *src = artifact_model_source(&a, &mp);
    cr_expect(src && strlen(src) > 10 && !strcmp(mp, model));
    /* the plan's parameter table names the same tensors the model has */
    Graph g;
    graph_init(&g);
    KdlParams kp = {0};
    ConfigSets cs = {0};
    artifact_model_sets(&a, &cs);
    cr_assert(kdl_compile(mp, src, strlen(src), cs.sets, cs.n, &g, &kp, stderr) == 0);
    int nparams = 0;
    for (int i = 0; i < g.n; i++) {
        if (g.nodes[i].op != OP_PARAM) continue;
        nparams++;
        int found = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(a.plan, "params"))
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            found |= cJSON_IsString(nm) && !strcmp(nm->valuestring, g.nodes[i].name);
        }
        cr_expect(found, "%s: parameter %s missing from the plan", path, g.nodes[i].name);
    }
    cr_expect(nparams > 0 && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a.plan, "params")) == nparams);
    cr_expect(a.n_kernels > 0);
    for (int k = 0; k < a.n_kernels; k++)
        cr_expect(a.kernels[k].regs > 0, "%s: kernel %s has no register count", path, a.kernels[k].name);
    /* kanrun info prints without trouble */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    artifact_print_info(&a, f);
    fclose(f);
    cr_expect(strstr(buf, "parameters:") && strstr(buf, "launches:") && !strstr(buf, "not in the cubin"),
              "%s", buf);
    free(buf);
    graph_free(&g);
    kdl_params_free(&kp);
    config_sets_free(&cs);
    artifact_free(&a);
}

Test(cuda_runtime, every_model_compiles_for_sm80_and_sm90, .timeout = 1200)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    char *mdir = test_repo_path("models");
    DIR *d = opendir(mdir);
    cr_assert(d, "no %s (set KANC_ROOT)", mdir);
    char *tmp = temp_dir();
    setenv("KANC_CACHE", "0", 1);
    int trained = 0, models = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".kdl")) continue;
        models++;
        char *model = xasprintf("%s/%s", mdir, e->d_name);
        CompileJob jobs[2] = {{.model = model, .arch = "sm_80"}, {.model = model, .arch = "sm_90"}};
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            jobs[k].out = xasprintf("%s/%s.%s.cubin", tmp, e->d_name, jobs[k].arch);
            pthread_create(&th[k], NULL, compile_job, &jobs[k]);
        }
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++) {
            if (jobs[k].rc && strstr(jobs[k].diag, "scalar named 'loss'")) {
                /* a layer model (no loss): refused with the reason, no file */
                cr_expect(access(jobs[k].out, F_OK) != 0);
            } else {
                cr_expect(jobs[k].rc == 0, "%s for %s: %s", model, jobs[k].arch, jobs[k].diag);
                if (!jobs[k].rc) {
                    check_cubin(jobs[k].out, model, k ? 90 : 80);
                    trained += k;
                }
            }
            free(jobs[k].diag);
            free((char *)jobs[k].out);
        }
        free(model);
    }
    closedir(d);
    cr_expect(models >= 1 && trained >= 1, "%d models, %d compiled", models, trained);
    free(mdir);
    rm_rf(tmp);
}

/* ------------------------------------------------------------ corrupt cubins */

#define TINY_PLAN(version)                                                                         \
    "{\"format\":\"kanc-step\",\"version\":" #version ",\"arch\":\"sm_90\",\"source\":\"param x = 1\","   \
    "\"hyperparameters\":{\"x\":\"1\"},\"launches\":[],\"params\":[]}"

/* a small real cubin: a kernel and a kanc plan (json) */
static unsigned char *tiny_cubin_with(const char *json, size_t *size)
{
    char *src = artifact_embed("extern \"C\" __global__ void k(float *p) { __shared__ float s[64]; "
                               "s[threadIdx.x] = p[threadIdx.x]; __syncthreads(); p[threadIdx.x] = s[63 - threadIdx.x]; }\n",
                               json);
    NvrtcOutput o;
    char err[512];
    setenv("KANC_CACHE", "0", 1);
    cr_assert(nvrtc_compile(src, "tiny.cu", 90, &o, stderr, err, sizeof err) == 0, "%s", err);
    free(src);
    free(o.log);
    *size = o.size;
    return o.cubin;
}

static unsigned char *tiny_cubin(size_t *size) { return tiny_cubin_with(TINY_PLAN(2), size); }

Test(cuda_runtime, an_old_plan_version_is_refused)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    size_t n;
    unsigned char *old = tiny_cubin_with(TINY_PLAN(1), &n);
    Artifact a;
    char err[1024] = "";
    cr_expect(artifact_parse(&a, old, n, "old.cubin", err, sizeof err) == -1);
    cr_expect(strstr(err, "old.cubin") && strstr(err, "version 1") && strstr(err, "recompile it with kanc"), "%s",
              err);
    free(old);
}

Test(cuda_runtime, cubin_reads_back_and_corruption_is_refused)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    size_t n;
    unsigned char *good = tiny_cubin(&n);
    Artifact a;
    char err[1024];
    cr_assert(artifact_parse(&a, good, n, "tiny.cubin", err, sizeof err) == 0, "%s", err);
    cr_expect(a.n_kernels == 1 && !strcmp(a.kernels[0].name, "k") && a.kernels[0].regs > 0);
    cr_expect(a.kernels[0].static_smem >= 256, "static smem %lld", (long long)a.kernels[0].static_smem);
    cr_expect(!strcmp(artifact_str(&a, "source"), "param x = 1"));
    artifact_free(&a);

    /* every truncation is refused with a message */
    for (size_t len = 0; len < n; len += (len < 256 ? 1 : 7)) {
        err[0] = 0;
        cr_assert(artifact_parse(&a, good, len, "cut.cubin", err, sizeof err) == -1, "length %zu accepted", len);
        cr_assert(strstr(err, "cut.cubin") != NULL, "length %zu: message '%s'", len, err);
    }
    /* random damage: accepted or refused, never a crash or a read outside the file */
    unsigned char *bad = xmalloc(n);
    int refused = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(bad, good, n);
        int flips = 1 + (int)(kanc_rng_bits(11, (uint64_t)it, 0) % 8);
        for (int k = 0; k < flips; k++) {
            uint64_t r = kanc_rng_bits(11, (uint64_t)it, (uint64_t)k + 1);
            /* the headers are where offsets live: hit them often */
            size_t at = (r >> 8) % (it % 2 ? n : (n < 1024 ? n : 1024));
            bad[at] = (unsigned char)r;
        }
        if (artifact_parse(&a, bad, n, "bad.cubin", err, sizeof err) == 0) {
            artifact_free(&a);
        } else {
            refused++;
            cr_assert(err[0]);
        }
    }
    cr_expect(refused > 100);
    /* specific damage, specific messages */
    struct {
        size_t at;
        unsigned char v;
        const char *msg;
    } cases[] = {
        {0, 'X', "no ELF header"},
        {4, 1, "64-bit little-endian"},
        {18, 3, "EM_CUDA"},
        {58, 40, "section header size"},
        {47, 0x7f, "section header"}, /* e_shoff far past the end */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        memcpy(bad, good, n);
        bad[cases[c].at] = cases[c].v;
        err[0] = 0;
        cr_expect(artifact_parse(&a, bad, n, "bad.cubin", err, sizeof err) == -1);
        cr_expect(strstr(err, cases[c].msg), "case %zu: '%s'", c, err);
    }
    /* the plan's bytes damaged: its zlib stream fails */
    memcpy(bad, good, n);
    unsigned char *p = memmem(bad, n, ARTIFACT_PACK_MAGIC, 4);
    cr_assert(p);
    p[ARTIFACT_PACK_HEADER + 10] ^= 0x5a;
    cr_expect(artifact_parse(&a, bad, n, "bad.cubin", err, sizeof err) == -1);
    cr_expect(strstr(err, "bad.cubin") && strstr(err, "zlib stream"), "%s", err);
    /* a cubin without a plan */
    NvrtcOutput o;
    cr_assert(nvrtc_compile("extern \"C\" __global__ void k(float *p) { p[0] = 1; }\n", "np.cu", 80, &o, NULL,
                            err, sizeof err) == 0);
    cr_expect(artifact_parse(&a, o.cubin, o.size, "noplan.cubin", err, sizeof err) == -1);
    cr_expect(strstr(err, "no kanc plan"), "%s", err);
    nvrtc_output_free(&o);
    /* not a file */
    cr_expect(artifact_read(&a, "/nonexistent/step.cubin", err, sizeof err) == -1);
    cr_expect(strstr(err, "cannot read"), "%s", err);
    free(bad);
    free(good);
}

/* ------------------------------------------------------------ no driver */

/* into *m: a Model holds pointers into itself (its plan to its graph), so it is never copied */
static void small_model(Model *m, const char *name, const char *device, int extra_sets, const KdlSet *extra)
{
    char *path = xasprintf("%s/models/%s", test_root(), name);
    KdlSet sets[16] = {{"n_layer", "1", 1}, {"batch", "2", 1},  {"block_size", "8", 1},
                       {"n_embd", "12", 1}, {"n_head", "2", 1}, {"vocab_size", "29", 1}};
    int n = 6;
    for (int i = 0; i < extra_sets; i++) sets[n++] = extra[i];
    int rc = model_compile(m, path, NULL, sets, n, MODEL_TRAIN, 4, device, stderr);
    cr_assert(rc == 0, "%s on %s", path, device);
    free(path);
}

/* distinct kernels and kernel launches of a model's CUDA program */
static void count_kernels(const char *model, const char *n_layer, int *kernels, int *launches)
{
    char *path = xasprintf("%s/models/%s", test_root(), model);
    KdlSet sets[] = {{"n_layer", n_layer, 1}, {"batch", "2", 1}, {"block_size", "8", 1},
                     {"n_embd", "12", 1}, {"n_head", "2", 1}, {"vocab_size", "29", 1}};
    Model m;
    cr_assert(model_compile(&m, path, NULL, sets, 6, MODEL_TRAIN, 4, "cpu", stderr) == 0, "%s", path);
    CudaProgram prog;
    char err[512];
    cr_assert(codegen_cuda(&m.plan, NULL, &prog, err, sizeof err) == 0, "%s", err);
    *kernels = prog.n_kernels;
    *launches = 0;
    for (int i = 0; i < prog.n_launch; i++) *launches += prog.launch[i].kind == LAUNCH_KERNEL;
    /* the source defines each kernel once */
    int defs = 0;
    for (const char *p = prog.source; (p = strstr(p, "__global__ void __launch_bounds__")); p++) defs++;
    cr_expect_eq(defs, prog.n_kernels, "%s: %d kernel definitions, %d distinct kernels", model, defs,
                 prog.n_kernels);
    cuda_program_free(&prog);
    model_free(&m);
    free(path);
}

Test(cuda_runtime, layers_of_one_shape_share_their_kernels)
{
    const char *models[] = {"kansformers.kdl", "mingpt.kdl", "hybrid.kdl"};
    for (int i = 0; i < 3; i++) {
        int k3, l3, k6, l6;
        count_kernels(models[i], "3", &k3, &l3);
        count_kernels(models[i], "6", &k6, &l6);
        cr_log_info("%s: 3 layers: %d kernel launches of %d kernels; 6 layers: %d of %d", models[i], l3, k3, l6, k6);
        cr_expect(k3 > 0 && 2 * k3 < l3, "%s, 3 layers: %d distinct kernels for %d launches", models[i], k3, l3);
        cr_expect(l6 > l3 && k6 == k3, "%s: %d kernels at 3 layers, %d at 6", models[i], k3, k6);
    }
}

Test(cuda_runtime, no_driver_gives_the_clear_message)
{
    if (cuda_available()) cr_skip_test("this machine has a CUDA driver and a GPU");
    char err[1024] = "";
    cr_expect(cuda_api_real(err, sizeof err) == NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    char *path = test_repo_path("models/mingpt.kdl");
    KdlSet sets[] = {{"n_layer", "1", 1}, {"batch", "2", 1}, {"block_size", "8", 1}};
    Model m;
    cr_expect(model_compile(&m, path, NULL, sets, 3, MODEL_TRAIN, 4, "cuda", diag) == -1);
    fclose(diag);
    cr_expect(strstr(buf, CUDA_NO_DRIVER_MSG) || strstr(buf, "finds no GPU"), "message: %s", buf);
    model_free(&m);
    free(buf);
    /* auto falls back to the CPU */
    cr_assert(model_compile(&m, path, NULL, sets, 3, MODEL_TRAIN, 4, "auto", stderr) == 0);
    cr_expect(!strcmp(m.dev->name, "cpu"));
    model_free(&m);
    /* unknown names are refused */
    buf = NULL;
    diag = open_memstream(&buf, &len);
    cr_expect(model_compile(&m, path, NULL, sets, 3, MODEL_TRAIN, 4, "tpu", diag) == -1);
    fclose(diag);
    cr_expect(strstr(buf, "unknown device 'tpu'"), "%s", buf);
    model_free(&m);
    free(buf);
    free(path);
}

Test(cuda_runtime, driver_symbols_resolve_in_the_toolkit_stub)
{
    /* the toolkit's stub libcuda exports every entry point (so each versioned name the
       loader asks for is right) and fails cuInit: the loader gets that far */
    const char *home = env_or("CUDA_HOME", "/usr/local/cuda");
    char *stub = xasprintf("%s/lib64/stubs/libcuda.so", home);
    if (access(stub, R_OK)) {
        free(stub);
        cr_skip_test("no stub libcuda.so in the CUDA toolkit");
    }
    setenv("KANC_LIBCUDA", stub, 1); /* tried before libcuda.so.1; before anything loads the driver */
    char err[1024] = "";
    cr_expect(cuda_api_real(err, sizeof err) == NULL);
    cr_expect(!strstr(err, "has no symbol"), "%s", err);
    cr_expect(strstr(err, "cuInit failed") && strstr(err, "STUB"), "%s", err);
    unsetenv("KANC_LIBCUDA");
    free(stub);
}

/* ------------------------------------------------------------ the mock driver */

/* A graph of one float input of n elements: a device whose arena is that input. */
static void one_input_plan(Graph *g, Plan *p, int64_t n)
{
    graph_init(g);
    GNode in = {0};
    in.op = OP_INPUT;
    in.shape = shape_of(1, n);
    in.dtype = DT_REAL;
    in.fwd = -1;
    in.init_ref = -1;
    in.gparam = -1;
    in.name = "x";
    graph_add(g, &in);
    g->n_forward = g->n;
    plan_build(p, g, 4);
}

/* naive row-major reference of C = alpha op(A) op(B) + beta C */
static void ref_gemm(const GemmDesc *d, const float *A, const float *B, float *C)
{
    for (int64_t i = 0; i < d->m; i++)
        for (int64_t j = 0; j < d->n; j++) {
            double s = 0;
            for (int64_t k = 0; k < d->k; k++) {
                double a = d->trans_a ? A[k * d->lda + i] : A[i * d->lda + k];
                double b = d->trans_b ? B[j * d->ldb + k] : B[k * d->ldb + j];
                s += a * b;
            }
            C[i * d->ldc + j] = (float)(d->alpha * s + (d->beta ? d->beta * C[i * d->ldc + j] : 0));
        }
}

Test(cuda_runtime, mock_cublaslt_row_major_gemms)
{
    const int64_t M = 7, N = 5, K = 3, PAD = 2, AREA = 4096;
    Graph g;
    Plan p;
    one_input_plan(&g, &p, AREA);
    CudaProgram prog = {0};
    prog.n_launch = 4;
    prog.launch = xcalloc(4, sizeof *prog.launch);
    for (int t = 0; t < 4; t++) {
        CudaLaunch *l = &prog.launch[t];
        l->kind = LAUNCH_GEMM;
        l->node = 0;
        snprintf(l->name, sizeof l->name, "gemm%d", t);
        GemmDesc *d = &l->gemm;
        d->trans_a = t & 1, d->trans_b = t >> 1;
        d->m = M, d->n = N, d->k = K;
        d->lda = (d->trans_a ? M : K) + PAD; /* padded rows: ld > width */
        d->ldb = (d->trans_b ? K : N) + PAD;
        d->ldc = N + PAD;
        d->alpha = 0.5f + (float)t;
        d->beta = t == 2 ? 0 : 0.25f;
        d->area_a = d->area_b = d->area_c = 0;
        d->off_a = 1000 * 4 * t;                 /* byte offsets in the arena */
        d->off_b = d->off_a + 256 * 4;
        d->off_c = d->off_a + 512 * 4;
    }
    char err[1024];
    /* GEMMs only: an empty source is an empty emulation module */
    Device *dev = device_cuda_open_image(&p, "emu", &prog, "KANCEMU:src:", err, sizeof err);
    cr_assert(dev, "%s", err);
    float *host = xmalloc(sizeof(float) * AREA), *want = xmalloc(sizeof(float) * AREA);
    for (int64_t i = 0; i < AREA; i++) host[i] = (float)((kanc_rng_bits(5, 0, (uint64_t)i) >> 40) * 0x1p-24 - 0.5);
    for (int64_t i = 0; i < M * (N + PAD); i++) /* beta == 0 (t = 2): C's garbage must not leak in */
        host[1000 * 2 + 512 + i] = NAN;
    memcpy(want, host, sizeof(float) * AREA);
    dev->ops->write_value(dev, 0, host);
    dev->ops->run(dev, 0, 1);
    dev->ops->read_value(dev, 0, host);
    for (int t = 0; t < 4; t++) {
        GemmDesc d = {.trans_a = t & 1, .trans_b = t >> 1, .m = M, .n = N, .k = K};
        d.lda = (d.trans_a ? M : K) + PAD, d.ldb = (d.trans_b ? K : N) + PAD, d.ldc = N + PAD;
        d.alpha = 0.5f + (float)t, d.beta = t == 2 ? 0 : 0.25f;
        float *A = want + 1000 * t, *B = A + 256, *C = A + 512;
        ref_gemm(&d, A, B, C);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N + PAD; j++) {
                float got = host[1000 * t + 512 + i * (N + PAD) + j], ref = C[i * (N + PAD) + j];
                if (j < N)
                    cr_expect(fabsf(got - ref) <= 1e-5f * (1 + fabsf(ref)), "trans %d %d: C[%lld,%lld] = %g, want %g",
                              d.trans_a, d.trans_b, (long long)i, (long long)j, got, ref);
                else if (!isnan(ref)) /* the padding between rows is untouched */
                    cr_expect(got == ref, "trans %d %d: padding written", d.trans_a, d.trans_b);
            }
    }
    dev->ops->destroy(dev);
    free(host);
    free(want);
    plan_free(&p);
    graph_free(&g);
}

Test(cuda_runtime, mock_launches_a_module_built_by_hand)
{
    /* a shared object with one host entry, as an emulation build has */
    char *dir = temp_dir();
    char *src = xasprintf("%s/k.c", dir), *so = xasprintf("%s/k.so", dir);
    FILE *f = fopen(src, "w");
    cr_assert(f);
    fputs("typedef struct { unsigned x, y, z; } D3;\n"
          "typedef struct { unsigned long long arena, params, grads, m, v, buffers, ws, scalars; } A;\n"
          "typedef struct { float lr, b1, b2, eps, wd, clip, gn, cs; unsigned long long seed, step; int tr, pad; } S;\n"
          "typedef struct { unsigned long long v[16]; } L;\n"
          "/* the kernel parameters as kernelParams: params[0] -> &KancArgs, params[1] -> KancLaunchArgs */\n"
          "void twice__host(D3 g, D3 b, unsigned smem, void **params) {\n"
          "  const A *a = *(const A **)params[0]; const L *la = (const L *)params[1];\n"
          "  float *x = (float *)la->v[0]; S *s = (S *)a->scalars;\n"
          "  if ((float *)a->arena + 16 != x || la->v[1] != 77) return; /* argument 0: arena + 64 bytes */\n"
          "  unsigned n = g.x * g.y * g.z * b.x * b.y * b.z;\n"
          "  for (unsigned i = 0; i < n; i++) x[i] = 2 * x[i] + s->lr + (float)s->step + smem;\n"
          "  s->gn = 42; s->cs = 0.5f; }\n",
          f);
    fclose(f);
    char *cmd = xasprintf("cc -shared -fPIC -o '%s' '%s'", so, src);
    cr_assert(system(cmd) == 0);
    free(cmd);
    Graph g;
    Plan p;
    one_input_plan(&g, &p, 64);
    /* an OP_ADAMW node so that the run reads the logged scalars back and counts the step */
    GNode adam = {0};
    adam.op = OP_ADAMW;
    adam.fwd = -1;
    adam.init_ref = -1;
    adam.gparam = -1;
    graph_add(&g, &adam);
    plan_free(&p);
    plan_build(&p, &g, 4);
    CudaProgram prog = {0};
    prog.n_launch = 1;
    prog.launch = xcalloc(1, sizeof *prog.launch);
    prog.launch[0] = (CudaLaunch){.kind = LAUNCH_KERNEL, .node = 1, .name = "twice", .grid = {2, 2, 1},
                                  .block = {4, 2, 1}, .smem = 3, .n_args = 2,
                                  .arg = {{AREA_ARENA, 64}, {CUDA_ARG_INT, 77}}};
    char *image = cuda_mock_image_so(so), err[1024];
    Device *dev = device_cuda_open_image(&p, "emu", &prog, image, err, sizeof err);
    cr_assert(dev, "%s", err);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    dev->ops->write_value(dev, 0, x);
    dev->opt.lr = 0.25;
    dev->step = 5;
    dev->ops->run(dev, 0, 1); /* node 0 only: the kernel belongs to node 1 */
    dev->ops->read_value(dev, 0, x);
    cr_expect(x[3] == 3 && dev->step == 5);
    dev->ops->run(dev, 0, 2);
    dev->ops->read_value(dev, 0, x);
    for (int i = 0; i < 64; i++) /* 32 threads from element 16 on */
        cr_expect(x[i] == (i >= 16 && i < 48 ? 2 * i + 0.25f + 5 + 3 : i), "x[%d] = %g", i, x[i]);
    cr_expect(dev->grad_norm == 42 && dev->clip_scale == 0.5, "logged %g %g", dev->grad_norm, dev->clip_scale);
    cr_expect(dev->step == 6, "step %lld", (long long)dev->step);
    cr_expect(device_cuda_bytes(dev) > 0);
    dev->ops->destroy(dev);
    /* a launch argument outside its area is refused at open, naming the kernel */
    prog.n_launch = 1;
    prog.launch = xcalloc(1, sizeof *prog.launch);
    prog.launch[0] = (CudaLaunch){.kind = LAUNCH_KERNEL, .node = 1, .name = "twice", .grid = {1, 1, 1},
                                  .block = {1, 1, 1}, .n_args = 1, .arg = {{AREA_ARENA, 1 << 20}}};
    cr_expect(device_cuda_open_image(&p, "emu", &prog, image, err, sizeof err) == NULL);
    cr_expect(strstr(err, "twice") && strstr(err, "outside its storage area"), "%s", err);
    /* a real cubin is not something the mock can run; a missing kernel is named */
    prog.n_launch = 1;
    prog.launch = xcalloc(1, sizeof *prog.launch);
    prog.launch[0] = (CudaLaunch){.kind = LAUNCH_KERNEL, .node = 1, .name = "absent", .grid = {1, 1, 1},
                                  .block = {1, 1, 1}};
    cr_expect(device_cuda_open_image(&p, "emu", &prog, image, err, sizeof err) == NULL);
    cr_expect(strstr(err, "cuModuleGetFunction(absent)"), "%s", err);
    prog.n_launch = 1;
    prog.launch = xcalloc(1, sizeof *prog.launch);
    prog.launch[0] = (CudaLaunch){.kind = LAUNCH_KERNEL, .node = 1, .name = "twice", .grid = {1, 1, 1},
                                  .block = {1, 1, 1}};
    cr_expect(device_cuda_open_image(&p, "emu", &prog, "\x7f" "ELF not a mock image", err, sizeof err) == NULL);
    cr_expect(strstr(err, "cuModuleLoadData") && strstr(err, "device_cuda.c"), "%s", err);
    free(image);
    plan_free(&p);
    graph_free(&g);
    free(src);
    free(so);
    rm_rf(dir);
}

/* ------------------------------------------------------------ emu against the CPU */

static void read_area(Model *m, KancArea a, float *dst) { m->dev->ops->read_area(m->dev, a, dst); }

/* the same steps on the CPU and on the emulated CUDA device */
static void parity(const char *model, double pdrop)
{
    char pd[32];
    snprintf(pd, sizeof pd, "%g", pdrop);
    KdlSet extra[] = {{"pdrop", pd, 1}};
    Model c, e;
    small_model(&c, model, "cpu", 1, extra);
    small_model(&e, model, "emu", 1, extra);
    cr_assert(!strcmp(e.dev->name, "emu"));
    char err[512];
    cr_assert(model_init_params(&c, 3, err, sizeof err) == 0, "%s", err);
    cr_assert(model_init_params(&e, 3, err, sizeof err) == 0, "%s", err);
    Graph *g = &c.g;
    int idx = model_input(&c, "idx"), tgt = model_input(&c, "targets"), adam = -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_ADAMW) adam = i;
    cr_assert(idx >= 0 && tgt >= 0 && adam > 0);
    int64_t n = shape_numel(&g->nodes[idx].shape), V = graph_vocab(&c.g, idx), np = c.plan.n_param_elems;
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)n), *y = xmalloc(sizeof(int32_t) * (size_t)n);
    float *pc = xmalloc(sizeof(float) * (size_t)np), *pe = xmalloc(sizeof(float) * (size_t)np);
    int64_t nl = shape_numel(&g->nodes[g->output].shape);
    float *lc = xmalloc(sizeof(float) * (size_t)nl), *le = xmalloc(sizeof(float) * (size_t)nl);
    Model *ms[2] = {&c, &e};
    for (int s = 0; s < 3; s++) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = (int32_t)(kanc_rng_bits(9, (uint64_t)s, (uint64_t)i) % (uint64_t)V);
            y[i] = i % 5 == 4 ? -1 : (int32_t)(kanc_rng_bits(10, (uint64_t)s, (uint64_t)i) % (uint64_t)V);
        }
        double loss[2];
        for (int k = 0; k < 2; k++) {
            Device *d = ms[k]->dev;
            cr_assert(model_set_tokens(ms[k], idx, x, err, sizeof err) == 0, "%s", err);
            cr_assert(model_set_tokens(ms[k], tgt, y, err, sizeof err) == 0, "%s", err);
            d->training = 1;
            d->seed = 77;
            d->opt.lr = 1e-2;
            d->opt.clip = s == 1 ? 1e-3 : 1.0; /* step 1 clips hard */
            if (s == 2) { /* a split run, as verify does it */
                d->ops->run(d, 0, adam);
                d->ops->run(d, adam, adam + 1);
            } else {
                d->ops->run(d, 0, g->n);
            }
            model_read_value(ms[k], g->loss, &loss[k]);
        }
        cr_expect(fabs(loss[0] - loss[1]) <= 1e-5 * fabs(loss[0]), "%s step %d: loss cpu %.8f emu %.8f", model, s,
                  loss[0], loss[1]);
        cr_expect(fabs(c.dev->grad_norm - e.dev->grad_norm) <= 1e-4 * c.dev->grad_norm, "%s step %d: norm %g %g",
                  model, s, c.dev->grad_norm, e.dev->grad_norm);
        cr_expect(fabs(c.dev->clip_scale - e.dev->clip_scale) <= 1e-4 * c.dev->clip_scale, "%s step %d: clip %g %g",
                  model, s, c.dev->clip_scale, e.dev->clip_scale);
        cr_expect(c.dev->step == s + 1 && e.dev->step == s + 1, "steps %lld %lld", (long long)c.dev->step,
                  (long long)e.dev->step);
        c.dev->ops->read_value(c.dev, g->output, lc);
        e.dev->ops->read_value(e.dev, g->output, le);
        cr_expect(test_rel_err_f(le, lc, nl) < 1e-5, "%s step %d: logits rel %g", model, s, test_rel_err_f(le, lc, nl));
        read_area(&c, AREA_GRADS, pc);
        read_area(&e, AREA_GRADS, pe);
        cr_expect(test_rel_err_f(pe, pc, np) < 1e-4, "%s step %d: grads rel %g", model, s, test_rel_err_f(pe, pc, np));
        for (int i = 0; i < g->n && s == 0; i++) { /* per parameter, by name */
            if (g->nodes[i].op != OP_PARAM) continue;
            int64_t k = shape_numel(&g->nodes[i].shape);
            double r = test_rel_err_f(pe + c.plan.pos[i], pc + c.plan.pos[i], k);
            cr_expect(r < 1e-4, "%s: grad of %s rel %g", model, g->nodes[i].name, r);
        }
        KancArea areas[] = {AREA_PARAMS, AREA_M, AREA_V};
        for (int a = 0; a < 3; a++) {
            read_area(&c, areas[a], pc);
            read_area(&e, areas[a], pe);
            cr_expect(test_rel_err_f(pe, pc, np) < 1e-5, "%s step %d: area %d rel %g", model, s, a, test_rel_err_f(pe, pc, np));
        }
    }
    free(x), free(y), free(pc), free(pe), free(lc), free(le);
    model_free(&c);
    model_free(&e);
}

Test(cuda_runtime, emu_matches_cpu_kansformers) { parity("kansformers.kdl", 0); }
Test(cuda_runtime, emu_matches_cpu_mingpt_with_dropout) { parity("mingpt.kdl", 0.1); }
Test(cuda_runtime, emu_matches_cpu_hybrid) { parity("hybrid.kdl", 0); }

/* ------------------------------------------------------------ a prebuilt cubin as the model */

Test(cuda_runtime, cubin_runs_as_the_model)
{
    if (!have_nvrtc()) cr_skip_test("NVRTC is not installed");
    char *tmp = temp_dir();
    char *cubin = xasprintf("%s/step.cubin", tmp), *model = test_repo_path("models/mingpt.kdl");
    KdlSet sets[] = {{"n_layer", "1", 0}, {"batch", "2", 0}, {"block_size", "8", 0}, {"n_embd", "12", 0},
                     {"n_head", "2", 0}};
    setenv("KANC_CACHE", "0", 1);
    ArtifactOptions o = {.model_path = model, .sets = sets, .nsets = 5, .arch = "sm_80", .out_path = cubin};
    cr_assert(artifact_compile(&o, stderr) == 0);
    Artifact a;
    char err[1024];
    cr_assert(artifact_read(&a, cubin, err, sizeof err) == 0, "%s", err);
    cr_expect(!strcmp(artifact_str(&a, "tokenizer"), "bytes"));
    cr_expect(artifact_num(&a, "batch", 0) == 2 && artifact_num(&a, "block_size", 0) == 8);
    artifact_free(&a);
    /* the same model, rebuilt from the cubin's plan, on the CPU and emulated */
    Model m, r;
    cr_assert(model_compile(&r, model, NULL, sets, 5, MODEL_TRAIN, 4, "cpu", stderr) == 0);
    const char *devs[] = {"cpu", "emu"};
    for (int k = 0; k < 2; k++) {
        cr_assert(model_compile(&m, cubin, NULL, NULL, 0, MODEL_TRAIN, 4, devs[k], stderr) == 0, "%s", devs[k]);
        cr_expect(m.plan.arena_bytes == r.plan.arena_bytes && m.g.n == r.g.n);
        cr_expect(!strcmp(m.dev->name, devs[k]));
        model_free(&m);
    }
    /* the cubin's launch list (what --device cuda runs) is the generator's: kernels, shapes, arguments */
    cr_assert(artifact_read(&a, cubin, err, sizeof err) == 0, "%s", err);
    cr_assert(model_compile(&m, cubin, NULL, NULL, 0, MODEL_TRAIN, 4, "cpu", stderr) == 0);
    CudaProgram rec, gen;
    cr_assert(artifact_program(&a, &m.plan, &rec, err, sizeof err) == 0, "%s", err);
    CudaOptions kanc_default; /* kanc -o compiles for bf16 GEMM operands unless told otherwise */
    cuda_options_default(&kanc_default);
    kanc_default.precision = CUDA_BF16;
    cr_expect_eq(rec.precision, CUDA_BF16);
    /* laid out as the cubin: attention's P in bf16, half the fp32 P's bytes (the CPU's plan) */
    Plan bf;
    plan_build_for(&bf, &m.g, 4, 1);
    cr_expect(bf.arena_bytes < m.plan.arena_bytes && artifact_num(&a, "arena_bytes", 0) == (double)bf.arena_bytes,
              "arena: cubin %.0f, bf16 layout %lld, cpu %lld", artifact_num(&a, "arena_bytes", 0),
              (long long)bf.arena_bytes, (long long)m.plan.arena_bytes);
    cr_assert(codegen_cuda(&bf, &kanc_default, &gen, err, sizeof err) == 0, "%s", err);
    cr_expect(rec.n_launch == gen.n_launch && rec.n_kernels == gen.n_kernels && a.n_kernels == gen.n_kernels,
              "recorded %d launches of %d kernels (%d in the cubin), generated %d of %d", rec.n_launch,
              rec.n_kernels, a.n_kernels, gen.n_launch, gen.n_kernels);
    for (int i = 0; i < rec.n_launch && i < gen.n_launch; i++) {
        const CudaLaunch *x = &rec.launch[i], *y = &gen.launch[i];
        cr_expect(x->kind == y->kind && x->node == y->node && !strcmp(x->name, y->name), "launch %d", i);
        if (x->kind != LAUNCH_KERNEL) continue;
        cr_expect(!memcmp(x->grid, y->grid, sizeof x->grid) && !memcmp(x->block, y->block, sizeof x->block) &&
                      x->n_args == y->n_args && !memcmp(x->arg, y->arg, sizeof(CudaArg) * (size_t)y->n_args),
                  "launch %d (%s): recorded shape or arguments differ", i, x->name);
    }
    cuda_program_free(&rec);
    cuda_program_free(&gen);
    plan_free(&bf);
    model_free(&m);
    artifact_free(&a);
    model_free(&r);
    /* a conflicting hyperparameter is refused with the reason; soft ones are ignored */
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    KdlSet other[] = {{"n_embd", "16", 0}};
    cr_expect(model_compile(&m, cubin, NULL, other, 1, MODEL_TRAIN, 4, "cpu", diag) == -1);
    model_free(&m);
    KdlSet soft[] = {{"vocab_size", "50257", 1}};
    cr_expect(model_compile(&m, cubin, NULL, soft, 1, MODEL_TRAIN, 4, "cpu", diag) == 0);
    model_free(&m);
    /* forward-only use needs the .kdl */
    cr_expect(model_compile(&m, cubin, NULL, NULL, 0, MODEL_FORWARD, 4, "cpu", diag) == -1);
    model_free(&m);
    if (!cuda_available()) { /* and without a driver, --device cuda says why */
        cr_expect(model_compile(&m, cubin, NULL, NULL, 0, MODEL_TRAIN, 4, "cuda", diag) == -1);
        model_free(&m);
    }
    fclose(diag);
    cr_expect(strstr(buf, "different"), "%s", buf);
    cr_expect(strstr(buf, "training step"), "%s", buf);
    if (!cuda_available()) cr_expect(strstr(buf, "no CUDA driver"), "%s", buf);
    free(buf);
    free(model);
    free(cubin);
    rm_rf(tmp);
}

/* ------------------------------------------------------------ verify --device emu on the fixtures */

Test(cuda_runtime, verify_fixtures_on_emu, .timeout = 900)
{
    char *dir = xasprintf("%s/fixtures", test_shared());
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        cr_skip_test("no fixtures (set SHARED to the shared/ folder)");
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *f = e->d_name, *model = NULL;
        if (!strstr(f, ".safetensors")) continue;
        if (!strncmp(f, "kan_linear", 10)) model = "kan-linear.kdl";
        else if (!strcmp(f, "gpt_kansformers.safetensors")) model = "kansformers.kdl";
        else if (!strcmp(f, "gpt_hybrid.safetensors")) model = "hybrid.kdl";
        else if (!strcmp(f, "gpt_mlp.safetensors")) model = "mingpt.kdl";
        if (!model) continue;
        char *mp = xasprintf("%s/models/%s", test_root(), model), *fp = xasprintf("%s/%s", dir, f);
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        int rc = verify_run(mp, fp, NULL, 0, VERIFY_TOLERANCE, "emu", out);
        fclose(out);
        cr_expect(rc == 0, "verify --device emu %s %s: rc %d\n%s", mp, fp, rc, buf);
        n++;
        free(buf);
        free(mp);
        free(fp);
    }
    closedir(d);
    cr_expect(n >= 4, "only %d fixtures", n);
    free(dir);
    /* the other bases (kan-workflow/): the models their metadata names */
    const char *others[] = {"kan_chebyshev_layer", "kan_rbf_layer", "gpt_kansformers_chebyshev", "gpt_kansformers_rbf"};
    for (int i = 0; i < 4; i++) {
        char *fp = xasprintf("%s/fixtures/kan-workflow/%s.safetensors", test_shared(), others[i]);
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        int rc = verify_run(NULL, fp, NULL, 0, VERIFY_TOLERANCE, "emu", out);
        fclose(out);
        cr_expect(rc == 0, "verify --device emu %s: rc %d\n%s", fp, rc, buf);
        free(buf);
        free(fp);
    }
}
