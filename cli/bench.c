/* bench.c: kanrun bench: training throughput and memory, printed as the
 * PyTorch peer (shared/bench/torch_train.py) prints them, for a side-by-side
 * run on the same machine: uniform random tokens, `warmup` untimed steps,
 * then the median step time; peak memory is this process's peak RSS.
 * Besides the peer's fields: the model FLOPs per second (the plan's
 * training-step FLOPs per token times tokens/s) and the MFU against a peak
 * (runtime/peak.h: --peak-tflops, the GPU table, or --measure-peak's sgemm). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_opts.h"
#include "commands.h"
#include "cuda_api.h"
#include "model.h"
#include "peak.h"
#include "plan.h"
#include "rng.h"
#include "train.h"
#include "util.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char BENCH_USAGE[] = "usage: kanrun bench MODEL.kdl [flags]\n";

int bench_main(int argc, char **argv)
{
    const char *device = "auto";
    int64_t steps = 20, warmup = 3, threads = 0, seed = 1337, batch = 0;
    int profile = 0, measure_peak = 0;
    double lr = 3e-4, peak_tflops = 0;
    const char *precision = NULL, *gemm_precision = NULL;
    ConfigSets cs = {0};
    const CliOpt opts[] = {
        CLI_CALL("preset", config_cli_preset, "NAME", "hyperparameters from models/presets/NAME.set"),
        CLI_CALL("set", config_cli_set, "NAME=VALUE", "override a model hyperparameter (repeatable)"),
        CLI_INT("batch", &batch, 1, INT32_MAX, "B", "sequences per step"),
        CLI_INT("steps", &steps, 1, 1000000, "N", "timed steps (default 20)"),
        CLI_INT("warmup", &warmup, 0, 1000000, "W", "untimed steps first (default 3)"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
        CLI_REAL("lr", &lr, 0, INFINITY, "LR", "learning rate (default 3e-4)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "initialisation and tokens (default 1337)"),
        CLI_STR("device", &device, "D", "auto (default), cpu, cuda or emu"),
        CLI_FLAG("profile", &profile, "also print the time per op kind on the CPU (stderr)"),
        CLI_REAL("peak-tflops", &peak_tflops, 0, INFINITY, "X", "the peak for the MFU, in TFLOP/s (default: the GPU's\nfrom a table; on the CPU none unless --measure-peak)"),
        CLI_FLAG("measure-peak", &measure_peak, "CPU: measure OpenBLAS sgemm after the steps (about\n1 s) and take it as the peak"),
        CLI_STR("peak-precision", &precision, "P", "the GPU table's column: that of --precision (tf32\nfor fp32 with KANC_TF32=1), or fp32, tf32, bf16"),
        CLI_STR("precision", &gemm_precision, "P", "the GEMM operands on a CUDA device: bf16 (default on\ncuda) or fp32 (default on emu; the only one on cpu)"),
    };
    CliSpec spec = {"kanrun bench", BENCH_USAGE,
                    "Prints one JSON line with the fields of ../shared/bench/torch_train.py,\n"
                    "then flops_per_token (the plan's training step, matrix products),\n"
                    "model_flops_per_s, gpu_name, peak_flops, peak_source and mfu (docs/perf.md, MFU).\n",
                    opts, CLI_COUNT(opts), 1, 1, &cs};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) {
        config_sets_free(&cs);
        return r > 0 ? 0 : 2;
    }
    const char *path = pos[0];
    if (gemm_precision && device_precision_request("kanrun bench", gemm_precision, device)) {
        config_sets_free(&cs);
        return 2;
    }
    PeakPrecision prec = peak_run_precision();
    if (precision && peak_precision_parse(precision, &prec)) {
        fprintf(stderr, "kanrun bench: error: --peak-precision %s: give fp32, tf32 or bf16\n", precision);
        config_sets_free(&cs);
        return 2;
    }
    if (batch > 0) config_sets_add_int(&cs, "batch", batch, 0);
    set_threads((int)threads);
    Model m;
    char err[512];
    int rc = 1;
    int32_t *x = NULL, *y = NULL;
    double *times = NULL, *losses = NULL;
    if (model_compile(&m, path, NULL, cs.sets, cs.n, MODEL_TRAIN, 4, device, stderr)) goto out;
    if (model_init_params(&m, (uint64_t)seed, err, sizeof err)) {
        fprintf(stderr, "kanrun bench: error: %s\n", err);
        goto out;
    }
    int idx = model_input(&m, "idx"), tgt = model_input(&m, "targets");
    if (idx < 0 || tgt < 0 || m.g.loss < 0) {
        fprintf(stderr, "kanrun bench: error: the model needs inputs idx, targets and a loss\n");
        goto out;
    }
    const GShape *s = &m.g.nodes[idx].shape;
    int64_t B = s->d[0], T = s->d[1], V = graph_vocab(&m.g, idx), ntok = B * T;
    if (V <= 0) {
        fprintf(stderr, "kanrun bench: error: the model's token input 'idx' feeds no embedding\n");
        goto out;
    }
    x = xmalloc((size_t)ntok * 4), y = xmalloc((size_t)ntok * 4);
    times = xmalloc(sizeof(double) * (size_t)steps), losses = xmalloc(sizeof(double) * (size_t)(steps + warmup));
    Device *d = m.dev;
    double op_seconds[OP__COUNT] = {0};
    if (profile && !strcmp(d->name, "cpu")) device_cpu_exec(d)->op_seconds = op_seconds;
    d->seed = (uint64_t)seed;
    d->training = 1;
    d->opt.lr = lr;
    int64_t params = 0;
    for (int i = 0; i < m.g.n; i++)
        if (m.g.nodes[i].op == OP_PARAM) params += shape_numel(&m.g.nodes[i].shape);
    for (int64_t k = 0; k < warmup + steps; k++) {
        for (int64_t j = 0; j < ntok; j++) { /* uniform random tokens, as the peer */
            x[j] = (int32_t)(kanc_rng_bits((uint64_t)seed, 2 * (uint64_t)k, (uint64_t)j) % (uint64_t)V);
            y[j] = (int32_t)(kanc_rng_bits((uint64_t)seed, 2 * (uint64_t)k + 1, (uint64_t)j) % (uint64_t)V);
        }
        double t0 = now_s();
        if (model_set_tokens(&m, idx, x, err, sizeof err) || model_set_tokens(&m, tgt, y, err, sizeof err)) {
            fprintf(stderr, "kanrun bench: error: %s\n", err);
            goto out;
        }
        d->ops->run(d, 0, m.g.n);
        model_read_value(&m, m.g.loss, &losses[k]);
        if (k >= warmup) times[k - warmup] = now_s() - t0;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double tail = 0;
    long long ntail = steps + warmup < 10 ? steps + warmup : 10;
    for (long long k = steps + warmup - ntail; k < steps + warmup; k++) tail += losses[k] / (double)ntail;
    double fwd_flops, step_flops; /* per token: the model FLOPs (matrix products) */
    plan_flops(&m.plan, ntok, &fwd_flops, &step_flops);
    double tok_s = (double)ntok / med, model_flops_s = step_flops * tok_s;
    /* the GEMMs' precision as the device compiled them; the MFU's peak follows it */
    CudaOptions co;
    cuda_options_default(&co);
    if (strcmp(d->name, "cpu") && cuda_options_for_device(&co, d->name, err, sizeof err)) {
        fprintf(stderr, "kanrun bench: error: %s\n", err);
        goto out;
    }
    const char *dtype = cuda_precision_name(co.precision);
    if (!precision && co.precision == CUDA_BF16) prec = PEAK_BF16;
    Peak pk; /* measured after the steps, with the same threads: nothing else runs then */
    if (peak_resolve(&pk, peak_tflops, measure_peak, !strcmp(d->name, "cuda"), d->gpu_name, prec, err,
                     sizeof err)) {
        fprintf(stderr, "kanrun bench: error: %s\n", err);
        goto out;
    }
    if (!pk.flops && !strcmp(d->name, "emu"))
        snprintf(pk.note, sizeof pk.note, "no peak for the emulated GPU: give --peak-tflops X or --measure-peak "
                 "(the host's sgemm) for an MFU");
    char peak_fields[1024], gpu_field[160];
    peak_json(&pk, model_flops_s, peak_fields, sizeof peak_fields);
    snprintf(gpu_field, sizeof gpu_field, *d->gpu_name ? "\"%s\"" : "null", d->gpu_name);
    for (char *q = gpu_field + 1; *d->gpu_name && q[1]; q++) /* the name the peak table was searched for */
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) *q = ' ';
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *nl = kdl_param_get(&m.params, "n_layer"), *nh = kdl_param_get(&m.params, "n_head"),
               *ne = kdl_param_get(&m.params, "n_embd");
    /* on a GPU, the device memory this run allocated (the peer: torch's max allocated) */
    long long peak = device_cuda_bytes(d) > 0 ? (long long)device_cuda_bytes(d) : (long long)ru.ru_maxrss * 1024;
    printf("{\"impl\": \"kanc\", \"device\": \"%s\", \"dtype\": \"%s\", \"threads\": %lld, "
           "\"model\": \"%s\", \"n_layer\": %s, \"n_head\": %s, \"n_embd\": %s, \"vocab\": %lld, "
           "\"block\": %lld, \"batch\": %lld, \"steps\": %lld, \"params\": %lld, \"ms_per_step\": %.3f, "
           "\"tokens_per_s\": %.1f, \"peak_bytes\": %lld, \"arena_bytes\": %lld, \"loss_first\": %.4f, "
           "\"loss_last\": %.4f, \"loss_tail\": %.4f, \"flops_per_token\": %.6g, \"model_flops_per_s\": %.6g, "
           "\"gpu_name\": %s, %s}\n",
           d->name, dtype, (long long)threads, path, nl ? nl : "null", nh ? nh : "null", ne ? ne : "null", (long long)V,
           (long long)T, (long long)B, (long long)steps, (long long)params, med * 1e3, tok_s,
           peak, (long long)m.plan.arena_bytes, losses[0],
           losses[steps + warmup - 1], tail, step_flops, model_flops_s, gpu_field, peak_fields);
    if (profile) { /* where the time went, by op, over all steps */
        double total = 0;
        for (int i = 0; i < OP__COUNT; i++) total += op_seconds[i];
        for (int i = 0; i < OP__COUNT; i++)
            if (op_seconds[i] > 0.005 * total)
                fprintf(stderr, "%-16s %8.1f ms/step %5.1f%%\n", op_name((GOp)i),
                        1e3 * op_seconds[i] / (double)(steps + warmup), 100 * op_seconds[i] / total);
    }
    rc = 0;
out:
    free(x), free(y), free(times), free(losses);
    model_free(&m);
    config_sets_free(&cs);
    return rc;
}
