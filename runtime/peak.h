/* peak.h: the peak FLOP/s that MFU divides by.
 *
 * MFU = model FLOPs per second / peak FLOP/s, where the model FLOPs are the
 * plan's training-step FLOPs per token (matrix products, plan_flops) times
 * tokens per second. The peak comes from, in this order: --peak-tflops X;
 * on a GPU, a table by the name cuDeviceGetName returns and the precision the
 * run's matrix products use (NVIDIA's datasheet figures, dense, never the
 * sparsity ones); on the CPU, OpenBLAS sgemm measured on the spot
 * (--measure-peak). Without any of them the peak is unknown: the FLOP/s are
 * still printed, the MFU is not, and a note says why. Nothing is guessed.
 */
#ifndef KANC_PEAK_H
#define KANC_PEAK_H

#include <stddef.h>

typedef enum { PEAK_FP32, PEAK_TF32, PEAK_BF16, PEAK__COUNT } PeakPrecision;

/* "fp32" (SIMT, no tensor cores), "tf32", "bf16" (dense tensor core) */
const char *peak_precision_name(PeakPrecision p);
/* 0 and *p, or -1 for a name that is none of them */
int peak_precision_parse(const char *s, PeakPrecision *p);

/* The precision of a CUDA run's GEMMs: tf32 when KANC_TF32=1 (device_cuda.c
   then asks cuBLASLt for CUBLAS_COMPUTE_32F_FAST_TF32), else fp32. */
PeakPrecision peak_run_precision(void);

typedef struct {
    const char *name;        /* the datasheet's product name */
    const char *match;       /* the words of cuDeviceGetName's name that pick this row */
    double tflops[PEAK__COUNT]; /* dense TFLOP/s; 0: the GPU has no such units */
} GpuPeak;

/* The row for a GPU name as cuDeviceGetName returns it ("NVIDIA H200",
   "NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"), or NULL when the table
   has none. The name must have the row's words and no others but the
   vendor's ("NVIDIA", "GeForce", "Tesla"), a memory size or kind ("80GB",
   "HBM3") and an SXM generation ("SXM4"): case-insensitive, whole words. */
const GpuPeak *peak_gpu_lookup(const char *device_name);

/* OpenBLAS sgemm FLOP/s with its current thread count: square sizes from 512
   up, doubled until one product takes 20 ms (at most 4096), then the best of
   up to 5 products at that size, within budget_s seconds in all. *n_out: the
   size used (may be NULL). */
double peak_measure_sgemm(double budget_s, int *n_out);

/* What bench and train report. */
typedef struct {
    double flops;      /* FLOP/s; 0 when unknown */
    char source[192];  /* where flops came from ("--peak-tflops", "measured sgemm", the table row) */
    char note[256];    /* why there is no peak, or a remark on it; "" when none */
} Peak;

/* Fills p: user_tflops > 0 wins; else, when gpu_name is a real GPU's name
   (non-empty, and gpu is 1), the table row at precision prec; else, when
   measure, the measured sgemm. Returns 0, or -1 with the reason in err for a
   request that cannot be met (--measure-peak on a real GPU). */
int peak_resolve(Peak *p, double user_tflops, int measure, int gpu, const char *gpu_name,
                 PeakPrecision prec, char *err, size_t errlen);

/* The JSON fields `"peak_flops": X|null, "peak_source": "..."|null, "mfu": X|null`
   (and `"peak_note": "..."` when there is one) for model_flops_per_s. */
void peak_json(const Peak *p, double model_flops_per_s, char *out, size_t n);

/* The terms of a training step's log line and metrics.jsonl line for
   model_flops_per_s: log " | 1.92 GFLOP/s | MFU 3.9%" and json
   "\"model_flops_s\":1.92e+09,\"mfu\":0.0393," (the MFU only when the peak is known). */
void peak_step_terms(const Peak *p, double model_flops_per_s, char *log, char *json, size_t n);

#endif
