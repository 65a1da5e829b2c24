/* bench.c: kanrun bench: training throughput and memory, printed as the
 * PyTorch peer (shared/bench/torch_train.py) prints them, for a side-by-side
 * run on the same machine: uniform random tokens, `warmup` untimed steps,
 * then the median step time; peak memory is this process's peak RSS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cuda_api.h"
#include "model.h"
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

static const char USAGE[] =
    "usage: kanrun bench MODEL.kdl [--preset NAME] [--set NAME=VALUE]... [--batch B] [--steps N]\n"
    "                    [--warmup W] [--threads T] [--lr LR] [--seed S]\n"
    "                    [--device auto|cpu|cuda|emu] [--profile]\n"
    "  --profile   also print the time per op kind on the CPU (stderr)\n";

int bench_run(int argc, char **argv)
{
    const char *path = NULL, *device = "auto";
    long long steps = 20, warmup = 3, threads = 0, seed = 1337;
    int profile = 0;
    double lr = 3e-4;
    ConfigSets cs = {0};
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        int has = i + 1 < argc;
        char *end = NULL;
        if (!strcmp(f, "--set") && has) {
            if (config_parse_set(argv[++i], &cs)) end = argv[i];
        } else if (!strcmp(f, "--preset") && has) {
            if (config_load_preset(argv[++i], &cs)) {
                config_sets_free(&cs);
                return 2;
            }
        } else if (!strcmp(f, "--batch") && has) {
            config_sets_add(&cs, "batch", argv[++i], 0);
        } else if (!strcmp(f, "--profile")) {
            profile = 1;
        } else if (!strcmp(f, "--steps") && has) steps = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--warmup") && has) warmup = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--threads") && has) threads = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--seed") && has) seed = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--lr") && has) lr = strtod(argv[++i], &end);
        else if (!strcmp(f, "--device") && has) device = argv[++i];
        else if (f[0] != '-' && !path) path = f;
        else {
            fprintf(stderr, "kanrun bench: error: unexpected argument '%s'\n%s", f, USAGE);
            config_sets_free(&cs);
            return 2;
        }
        if (end && (*end || steps < 1 || warmup < 0 || threads < 0 || seed < 0)) {
            fprintf(stderr, "kanrun bench: error: bad value for %s: '%s'\n", f, argv[i]);
            config_sets_free(&cs);
            return 2;
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 2;
    }
    set_threads((int)threads);
    Model m;
    char err[512];
    int rc = 1;
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
    int64_t B = s->d[0], T = s->d[1], V = model_vocab(&m, idx), ntok = B * T;
    int32_t *x = xmalloc((size_t)ntok * 4), *y = xmalloc((size_t)ntok * 4);
    double *times = xmalloc(sizeof(double) * (size_t)steps), *losses = xmalloc(sizeof(double) * (size_t)(steps + warmup));
    Device *d = m.dev;
    double op_seconds[OP__COUNT] = {0};
    if (profile && !strcmp(d->name, "cpu")) device_cpu_exec(d)->op_seconds = op_seconds;
    d->seed = (uint64_t)seed;
    d->training = 1;
    d->opt.lr = lr;
    int64_t params = 0;
    for (int i = 0; i < m.g.n; i++)
        if (m.g.nodes[i].op == OP_PARAM) params += shape_numel(&m.g.nodes[i].shape);
    for (long long k = 0; k < warmup + steps; k++) {
        for (int64_t j = 0; j < ntok; j++) { /* uniform random tokens, as the peer */
            x[j] = (int32_t)(kanc_rng_bits((uint64_t)seed, 2 * (uint64_t)k, (uint64_t)j) % (uint64_t)V);
            y[j] = (int32_t)(kanc_rng_bits((uint64_t)seed, 2 * (uint64_t)k + 1, (uint64_t)j) % (uint64_t)V);
        }
        double t0 = now_s();
        model_set_tokens(&m, idx, x, err, sizeof err);
        model_set_tokens(&m, tgt, y, err, sizeof err);
        d->ops->run(d, 0, m.g.n);
        model_read_value(&m, m.g.loss, &losses[k]);
        if (k >= warmup) times[k - warmup] = now_s() - t0;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double tail = 0;
    long long ntail = steps + warmup < 10 ? steps + warmup : 10;
    for (long long k = steps + warmup - ntail; k < steps + warmup; k++) tail += losses[k] / (double)ntail;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *nl = kdl_param_get(&m.params, "n_layer"), *nh = kdl_param_get(&m.params, "n_head"),
               *ne = kdl_param_get(&m.params, "n_embd");
    /* on a GPU, the device memory this run allocated (the peer: torch's max allocated) */
    long long peak = device_cuda_bytes(d) > 0 ? (long long)device_cuda_bytes(d) : (long long)ru.ru_maxrss * 1024;
    printf("{\"impl\": \"kanc\", \"device\": \"%s\", \"dtype\": \"fp32\", \"threads\": %lld, "
           "\"model\": \"%s\", \"n_layer\": %s, \"n_head\": %s, \"n_embd\": %s, \"vocab\": %lld, "
           "\"block\": %lld, \"batch\": %lld, \"steps\": %lld, \"params\": %lld, \"ms_per_step\": %.3f, "
           "\"tokens_per_s\": %.1f, \"peak_bytes\": %lld, \"arena_bytes\": %lld, \"loss_first\": %.4f, "
           "\"loss_last\": %.4f, \"loss_tail\": %.4f}\n",
           d->name, threads, path, nl ? nl : "null", nh ? nh : "null", ne ? ne : "null", (long long)V,
           (long long)T, (long long)B, steps, (long long)params, med * 1e3, (double)ntok / med,
           peak, (long long)m.plan.arena_bytes, losses[0],
           losses[steps + warmup - 1], tail);
    if (profile) { /* where the time went, by op, over all steps */
        double total = 0;
        for (int i = 0; i < OP__COUNT; i++) total += op_seconds[i];
        for (int i = 0; i < OP__COUNT; i++)
            if (op_seconds[i] > 0.005 * total)
                fprintf(stderr, "%-16s %8.1f ms/step %5.1f%%\n", op_name((GOp)i),
                        1e3 * op_seconds[i] / (double)(steps + warmup), 100 * op_seconds[i] / total);
    }
    free(x), free(y), free(times), free(losses);
    rc = 0;
out:
    model_free(&m);
    config_sets_free(&cs);
    return rc;
}
