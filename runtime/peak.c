/* peak.c: the GPU peak table, the measured CPU sgemm peak, and the peak fields
 * of bench and train (peak.h). */
#include "peak.h"

#include <cblas.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static const char *const PRECISION_NAMES[PEAK__COUNT] = {"fp32", "tf32", "bf16"};

const char *peak_precision_name(PeakPrecision p)
{
    return p >= 0 && p < PEAK__COUNT ? PRECISION_NAMES[p] : "?";
}

int peak_precision_parse(const char *s, PeakPrecision *p)
{
    for (int i = 0; i < PEAK__COUNT; i++)
        if (s && !strcmp(s, PRECISION_NAMES[i])) {
            *p = (PeakPrecision)i;
            return 0;
        }
    return -1;
}

PeakPrecision peak_run_precision(void)
{
    const char *tf32 = getenv("KANC_TF32");
    return tf32 && *tf32 == '1' ? PEAK_TF32 : PEAK_FP32;
}

/* Dense TFLOP/s: fp32 on the CUDA cores, TF32 and BF16 (FP32 accumulate) on
   the tensor cores, from NVIDIA's datasheets and architecture whitepapers.
   The datasheets print tensor-core figures with 2:4 sparsity (marked *); the
   dense figure is half of it. A row matches a device name that has all of
   its words and no other word but the vendor's, the memory's and the SXM
   socket's (row_matches): "NVIDIA H100 80GB HBM3" is the H100 SXM. */
static const GpuPeak GPU_PEAKS[] = {
    /* H200 datasheet (SXM / NVL): FP32 67 / 60, TF32 989* / 835*, BF16 1,979* / 1,671* */
    {"NVIDIA H200 NVL", "H200 NVL", {60, 417.5, 835.5}},
    {"NVIDIA GH200 (Grace Hopper)", "GH200", {67, 494.5, 989.5}}, /* GH200 datasheet: the H100 SXM's GPU figures */
    {"NVIDIA H200 SXM", "H200", {67, 494.5, 989.5}},
    /* H100 datasheet (SXM / PCIe / NVL): FP32 67 / 51 / 60, TF32 989* / 756* / 835*,
       BF16 1,979* / 1,513* / 1,671* */
    {"NVIDIA H100 NVL", "H100 NVL", {60, 417.5, 835.5}},
    {"NVIDIA H100 PCIe", "H100 PCIe", {51, 378, 756.5}},
    {"NVIDIA H100 SXM", "H100", {67, 494.5, 989.5}}, /* "NVIDIA H100 80GB HBM3" */
    /* A100 datasheet (40GB and 80GB, SXM and PCIe alike): FP32 19.5, TF32 156 (312*), BF16 312 (624*) */
    {"NVIDIA A100 PCIe", "A100 PCIE", {19.5, 156, 312}}, /* "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe" */
    {"NVIDIA A100 SXM", "A100", {19.5, 156, 312}},       /* "NVIDIA A100-SXM4-80GB" */
    /* L40S datasheet: FP32 91.6, TF32 183 (366*), BF16 362.05 (733*); L40: FP32 90.5, TF32 90.5 (181*),
       BF16 181.05 (362.1*); L4: FP32 30.3, TF32 60 (120*), BF16 121 (242*) */
    {"NVIDIA L40S", "L40S", {91.6, 183, 362.05}},
    {"NVIDIA L40", "L40", {90.5, 90.5, 181.05}},
    {"NVIDIA L4", "L4", {30.3, 60, 121}},
    /* A10 datasheet: FP32 31.2, TF32 62.5 (125*), BF16 125 (250*) */
    {"NVIDIA A10", "A10", {31.2, 62.5, 125}},
    /* Ada whitepaper (RTX 4090): FP32 82.6, TF32 82.6 (165.2*), BF16 FP32-accumulate 165.2 (330.4*) */
    {"NVIDIA GeForce RTX 4090", "RTX 4090", {82.6, 82.6, 165.2}},
    /* Ampere GA102 whitepaper (RTX 3090 / 3090 Ti): FP32 35.6 / 40, TF32 35.6 / 40 (71 / 80*),
       BF16 FP32-accumulate 71 / 80 (142 / 160*) */
    {"NVIDIA GeForce RTX 3090 Ti", "RTX 3090 Ti", {40, 40, 80}},
    {"NVIDIA GeForce RTX 3090", "RTX 3090", {35.6, 35.6, 71}},
    /* V100 datasheet (SXM2 / PCIe): FP32 15.7 / 14; no TF32 or BF16 tensor cores */
    {"NVIDIA V100 PCIe", "V100 PCIE", {14, 0, 0}},
    {"NVIDIA V100 SXM2", "V100", {15.7, 0, 0}},
};

/* the next word of s (letters and digits; "-", "_" and spaces separate
   words: "A100-PCIE-40GB"): its start and length, or NULL at the end */
static const char *next_word(const char *s, size_t *len)
{
    while (*s && !isalnum((unsigned char)*s)) s++;
    size_t n = 0;
    while (isalnum((unsigned char)s[n])) n++;
    *len = n;
    return n ? s : NULL;
}

/* word (len bytes) is one of match's words, case-insensitively */
static int in_words(const char *match, const char *word, size_t len)
{
    size_t ml;
    for (const char *m = next_word(match, &ml); m; m = next_word(m + ml, &ml))
        if (ml == len && !strncasecmp(m, word, len)) return 1;
    return 0;
}

/* words of a device name that say nothing of its compute: the vendor and
   brand, the memory size and kind, the SXM socket generation */
static int ignorable(const char *w, size_t len)
{
    if (in_words("NVIDIA GeForce Tesla", w, len)) return 1;
    size_t d = 0;
    while (d < len && isdigit((unsigned char)w[d])) d++;
    if (d > 0 && len - d == 2 && !strncasecmp(w + d, "GB", 2)) return 1; /* 80GB */
    if (len >= 3 && (!strncasecmp(w, "HBM", 3) || !strncasecmp(w, "SXM", 3))) {
        for (size_t i = 3; i < len; i++)
            if (!isdigit((unsigned char)w[i])) return 0;
        return 1; /* HBM3, SXM4 */
    }
    return 0;
}

/* the name has every word of match and no other word but ignorable ones, so
   that a variant the table does not know ("RTX 4090 D", "A10G") finds no row */
static int row_matches(const char *name, const char *match)
{
    size_t len;
    for (const char *w = next_word(name, &len); w; w = next_word(w + len, &len))
        if (!in_words(match, w, len) && !ignorable(w, len)) return 0;
    for (const char *m = next_word(match, &len); m; m = next_word(m + len, &len))
        if (!in_words(name, m, len)) return 0;
    return 1;
}

const GpuPeak *peak_gpu_lookup(const char *device_name)
{
    if (!device_name || !*device_name) return NULL;
    for (size_t i = 0; i < sizeof GPU_PEAKS / sizeof *GPU_PEAKS; i++)
        if (row_matches(device_name, GPU_PEAKS[i].match)) return &GPU_PEAKS[i];
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double peak_measure_sgemm(double budget_s, int *n_out)
{
    enum { N_MAX = 4096, REPS = 5 };
    double t_start = now_s(), best = 0;
    float *a = NULL, *b = NULL, *c = NULL;
    int n = 512;
    for (;;) {
        free(a), free(b), free(c);
        size_t nn = (size_t)n * (size_t)n;
        a = xmalloc(nn * sizeof *a), b = xmalloc(nn * sizeof *b), c = xmalloc(nn * sizeof *c);
        for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 7) * 0.125f, b[i] = (float)(i % 5) * 0.25f;
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_s() - t0;
        best = 2.0 * n * n * (double)n / dt;
        /* compute-bound once a product takes 20 ms; stop growing before the budget runs out */
        if (dt >= 0.02 || n >= N_MAX || now_s() - t_start + 8 * dt > budget_s) break;
        n *= 2;
    }
    double flop = 2.0 * n * n * (double)n;
    for (int r = 1; r < REPS; r++) {
        double t0 = now_s();
        if (t0 - t_start + flop / best > budget_s) break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double f = flop / (now_s() - t0);
        if (f > best) best = f;
    }
    free(a), free(b), free(c);
    if (n_out) *n_out = n;
    return best;
}

int peak_resolve(Peak *p, double user_tflops, int measure, int gpu, const char *gpu_name,
                 PeakPrecision prec, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (user_tflops > 0) {
        p->flops = user_tflops * 1e12;
        snprintf(p->source, sizeof p->source, "--peak-tflops");
        return 0;
    }
    if (gpu) {
        if (measure) {
            set_err(err, errlen, "--measure-peak measures the CPU's sgemm; on a GPU (%s) the peak comes from "
                                 "the table of GPUs or --peak-tflops X",
                    gpu_name && *gpu_name ? gpu_name : "unnamed");
            return -1;
        }
        const GpuPeak *row = peak_gpu_lookup(gpu_name);
        if (!row)
            snprintf(p->note, sizeof p->note, "no peak known for GPU '%s': give --peak-tflops X for an MFU",
                     gpu_name && *gpu_name ? gpu_name : "?");
        else if (row->tflops[prec] <= 0)
            snprintf(p->note, sizeof p->note, "%s has no %s units: give --peak-tflops X for an MFU", row->name,
                     peak_precision_name(prec));
        else {
            p->flops = row->tflops[prec] * 1e12;
            snprintf(p->source, sizeof p->source, "datasheet: %s, %s dense", row->name, peak_precision_name(prec));
        }
        return 0;
    }
    if (measure) {
        int n = 0;
        p->flops = peak_measure_sgemm(1.5, &n);
        snprintf(p->source, sizeof p->source, "measured sgemm");
        snprintf(p->note, sizeof p->note, "OpenBLAS sgemm %d x %d x %d, best of up to 5, this process's threads",
                 n, n, n);
        return 0;
    }
    snprintf(p->note, sizeof p->note, "no peak on the CPU: give --measure-peak or --peak-tflops X for an MFU");
    return 0;
}

void peak_step_terms(const Peak *p, double model_flops_per_s, char *log, char *json, size_t n)
{
    double f = model_flops_per_s;
    const char *unit = f >= 1e12 ? "TFLOP/s" : f >= 1e9 ? "GFLOP/s" : "MFLOP/s";
    double scaled = f / (f >= 1e12 ? 1e12 : f >= 1e9 ? 1e9 : 1e6);
    if (p->flops > 0) {
        snprintf(log, n, " | %.3g %s | MFU %.1f%%", scaled, unit, 100 * f / p->flops);
        snprintf(json, n, "\"model_flops_s\":%.6g,\"mfu\":%.6g,", f, f / p->flops);
    } else {
        snprintf(log, n, " | %.3g %s", scaled, unit);
        snprintf(json, n, "\"model_flops_s\":%.6g,", f);
    }
}

/* s as a JSON string body (the names and notes here hold no control characters) */
static void json_str(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 2 < n; s++) {
        if (*s == '"' || *s == '\\') out[k++] = '\\';
        out[k++] = (char)((unsigned char)*s < 0x20 ? ' ' : *s);
    }
    out[k] = 0;
}

void peak_json(const Peak *p, double model_flops_per_s, char *out, size_t n)
{
    char src[400], note[520];
    json_str(src, sizeof src, p->source);
    json_str(note, sizeof note, p->note);
    size_t k;
    if (p->flops > 0)
        k = (size_t)snprintf(out, n, "\"peak_flops\": %.6g, \"peak_source\": \"%s\", \"mfu\": %.6g", p->flops, src,
                             model_flops_per_s / p->flops);
    else
        k = (size_t)snprintf(out, n, "\"peak_flops\": null, \"peak_source\": null, \"mfu\": null");
    if (*p->note && k < n) snprintf(out + k, n - k, ", \"peak_note\": \"%s\"", note);
}
