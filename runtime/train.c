/* train.c: the training loop: batches, schedule, logs, evaluation, checkpoints. */
#include "train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifact.h"
#include "checkpoint.h"
#include "corpus.h"
#include "model.h"
#include "progress.h"
#include "tokenizer.h"
#include "util.h"

void set_threads(int threads)
{
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

double train_lr(int64_t t, int64_t steps, int64_t warmup, double lr, double min_lr)
{
    if (t < warmup) return lr * (double)(t + 1) / (double)warmup;
    int64_t span = steps - warmup;
    double progress = span > 0 ? (double)(t - warmup) / (double)span : 1.0;
    if (progress > 1) progress = 1;
    return min_lr + 0.5 * (lr - min_lr) * (1 + cos(M_PI * progress));
}

void train_args_init(TrainArgs *a)
{
    memset(a, 0, sizeof *a);
    a->batch = a->steps = a->warmup = a->eval_every = a->eval_batches = -1;
    a->save_every = a->log_every = a->seed = -1;
    a->lr = a->min_lr = a->weight_decay = a->clip = NAN;
}

static int parse_int(const char *flag, const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo) {
        fprintf(stderr, "kanrun: error: %s needs an integer >= %lld, got '%s'\n", flag,
                (long long)lo, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_real(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < 0) {
        fprintf(stderr, "kanrun: error: %s needs a number >= 0, got '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int train_parse_flag(TrainArgs *a, int argc, char **argv, int *i)
{
    const char *f = argv[*i];
    static const char *const with_value[] = {
        "--data", "--val", "--tokenizer", "--out", "--resume", "--device", "--batch", "--steps",
        "--warmup", "--eval-every", "--eval-batches", "--save-every", "--log-every", "--lr",
        "--min-lr", "--weight-decay", "--clip", "--seed", "--threads", "--set", "--preset", NULL};
    if (!strcmp(f, "--quiet")) {
        a->quiet = 1;
        return 1;
    }
    int known = 0;
    for (int k = 0; with_value[k]; k++) known |= !strcmp(f, with_value[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "kanrun: error: %s needs a value\n", f);
        return -1;
    }
    const char *v = argv[++*i];
    int64_t n = 0;
    if (!strcmp(f, "--data")) a->data = v;
    else if (!strcmp(f, "--val")) a->val = v;
    else if (!strcmp(f, "--tokenizer")) a->tokenizer = v;
    else if (!strcmp(f, "--out")) a->out = v;
    else if (!strcmp(f, "--resume")) a->resume = v;
    else if (!strcmp(f, "--device")) a->device = v;
    else if (!strcmp(f, "--preset")) {
        if (config_load_preset(v, &a->sets)) return -1;
    } else if (!strcmp(f, "--set")) {
        if (config_parse_set(v, &a->sets)) {
            fprintf(stderr, "kanrun: error: --set needs NAME=VALUE, got '%s'\n", v);
            return -1;
        }
    } else if (!strcmp(f, "--lr")) return parse_real(f, v, &a->lr) ? -1 : 1;
    else if (!strcmp(f, "--min-lr")) return parse_real(f, v, &a->min_lr) ? -1 : 1;
    else if (!strcmp(f, "--weight-decay")) return parse_real(f, v, &a->weight_decay) ? -1 : 1;
    else if (!strcmp(f, "--clip")) return parse_real(f, v, &a->clip) ? -1 : 1;
    else {
        int64_t lo = !strcmp(f, "--seed") || !strcmp(f, "--warmup") || !strcmp(f, "--eval-every") ||
                             !strcmp(f, "--save-every") || !strcmp(f, "--threads")
                         ? 0 : 1;
        if (parse_int(f, v, lo, &n)) return -1;
        if (!strcmp(f, "--batch")) a->batch = n;
        else if (!strcmp(f, "--steps")) a->steps = n;
        else if (!strcmp(f, "--warmup")) a->warmup = n;
        else if (!strcmp(f, "--eval-every")) a->eval_every = n;
        else if (!strcmp(f, "--eval-batches")) a->eval_batches = n;
        else if (!strcmp(f, "--save-every")) a->save_every = n;
        else if (!strcmp(f, "--log-every")) a->log_every = n;
        else if (!strcmp(f, "--seed")) a->seed = n;
        else if (!strcmp(f, "--threads")) a->threads = (int)n;
    }
    return 1;
}

/* Fills unset flags from a resumed run's saved state, then from the defaults. */
static void resolve_args(TrainArgs *a, const cJSON *saved)
{
#define INT_ARG(field, key, def)                                                       \
    if (a->field < 0) a->field = saved ? (int64_t)config_number(saved, key, def) : def;
#define REAL_ARG(field, key, def)                                                      \
    if (isnan(a->field)) a->field = saved ? config_number(saved, key, def) : def;
    INT_ARG(steps, "steps", 1000);
    INT_ARG(warmup, "warmup", 100);
    INT_ARG(eval_every, "eval_every", 250);
    INT_ARG(eval_batches, "eval_batches", 20);
    INT_ARG(save_every, "save_every", 500);
    INT_ARG(log_every, "log_every", 10);
    INT_ARG(seed, "seed", 1337);
    REAL_ARG(lr, "lr", 3e-4);
    REAL_ARG(min_lr, "min_lr", 3e-5);
    REAL_ARG(weight_decay, "weight_decay", 0.1);
    REAL_ARG(clip, "clip", 1.0);
#undef INT_ARG
#undef REAL_ARG
    const cJSON *s;
    if (!a->data && saved && cJSON_IsString(s = cJSON_GetObjectItem(saved, "data"))) a->data = s->valuestring;
    if (!a->val && saved && cJSON_IsString(s = cJSON_GetObjectItem(saved, "val"))) a->val = s->valuestring;
    if (!a->device) a->device = "auto";
}

static cJSON *state_json(const TrainArgs *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", (double)a->steps);
    cJSON_AddNumberToObject(o, "warmup", (double)a->warmup);
    cJSON_AddNumberToObject(o, "eval_every", (double)a->eval_every);
    cJSON_AddNumberToObject(o, "eval_batches", (double)a->eval_batches);
    cJSON_AddNumberToObject(o, "save_every", (double)a->save_every);
    cJSON_AddNumberToObject(o, "log_every", (double)a->log_every);
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON_AddNumberToObject(o, "lr", a->lr);
    cJSON_AddNumberToObject(o, "min_lr", a->min_lr);
    cJSON_AddNumberToObject(o, "weight_decay", a->weight_decay);
    cJSON_AddNumberToObject(o, "clip", a->clip);
    if (a->data) cJSON_AddStringToObject(o, "data", a->data);
    if (a->val) cJSON_AddStringToObject(o, "val", a->val);
    return o;
}

/* the model's token inputs and its batch and context, from the graph */
typedef struct {
    int idx, targets;
    int64_t batch, block, vocab;
} Io;

static int find_io(Model *m, Io *io, char *err, size_t errlen)
{
    io->idx = model_input(m, "idx");
    io->targets = model_input(m, "targets");
    if (io->idx < 0 || io->targets < 0 || m->g.loss < 0) {
        snprintf(err, errlen, "%s: a language model for kanrun takes inputs 'idx' and 'targets' "
                              "(tokens[batch, block_size]) and returns 'loss'", m->path);
        return -1;
    }
    const GShape *s = &m->g.nodes[io->idx].shape;
    if (s->nd != 2 || !shape_eq(s, &m->g.nodes[io->targets].shape)) {
        snprintf(err, errlen, "%s: 'idx' and 'targets' must both be tokens[batch, block_size]", m->path);
        return -1;
    }
    io->batch = s->d[0];
    io->block = s->d[1];
    io->vocab = model_vocab(m, io->idx);
    return 0;
}

/* mean loss over the fixed validation batches (no dropout) */
static double evaluate(Model *m, const Io *io, const Corpus *c, uint64_t seed, int64_t batches)
{
    size_t n = (size_t)(io->batch * io->block);
    int32_t *x = xmalloc(n * 4), *y = xmalloc(n * 4);
    char err[256];
    double sum = 0;
    int training = m->dev->training;
    m->dev->training = 0;
    for (int64_t j = 0; j < batches; j++) {
        corpus_eval_batch(c->val, c->n_val, (int)io->block, (int)io->batch, seed, (uint64_t)j, x, y);
        model_set_tokens(m, io->idx, x, err, sizeof err);
        model_set_tokens(m, io->targets, y, err, sizeof err);
        m->dev->ops->run(m->dev, 0, m->g.n_forward);
        double loss;
        model_read_value(m, m->g.loss, &loss);
        sum += loss;
    }
    m->dev->training = training;
    free(x);
    free(y);
    return sum / (double)(batches > 0 ? batches : 1);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Keeps the metrics lines of steps <= step (a resumed run rewrites what came after). */
static FILE *open_metrics(const char *out, int64_t resume_step)
{
    char *path = xasprintf("%s/metrics.jsonl", out);
    if (resume_step > 0) {
        size_t len;
        char *old = read_file(path, &len);
        FILE *f = fopen(path, "w");
        for (char *line = old ? strtok(old, "\n") : NULL; line && f; line = strtok(NULL, "\n")) {
            cJSON *j = cJSON_Parse(line);
            if (j && config_number(j, "step", 1e18) <= (double)resume_step) fprintf(f, "%s\n", line);
            cJSON_Delete(j);
        }
        free(old);
        free(path);
        return f;
    }
    FILE *f = fopen(path, "w");
    free(path);
    return f;
}

/* Model, tokenizer and state: from a checkpoint when resuming, else fresh. */
static int setup_model(TrainArgs *a, Model *m, Tokenizer **tok, cJSON **saved, char *err,
                       size_t errlen)
{
    ConfigSets cs = {0};
    const char *model_path = a->model, *src = NULL;
    CkptInfo info = {0};
    int rc = -1;
    if (a->resume) {
        if (ckpt_info(a->resume, &info, err, errlen)) return -1;
        ckpt_sets(&info, &cs);
        model_path = info.model_path;
        src = info.source;
        if (!a->tokenizer) a->tokenizer = info.tokenizer;
    }
    if (!a->resume && !a->tokenizer && a->model && artifact_is_cubin(a->model)) {
        /* a prebuilt step (kanc -o): the tokenizer it was compiled for */
        Artifact art;
        if (artifact_read(&art, a->model, err, errlen)) return -1;
        const char *t = artifact_str(&art, "tokenizer");
        int bare = t && strcmp(t, "bytes") && !strchr(t, ':');
        if (bare) snprintf(err, errlen, "%s expects the %s tokenizer: give --tokenizer %s:DIR", a->model, t, t);
        else if (t) a->tokenizer = xstrdup(t); /* lives for the run */
        artifact_free(&art);
        if (bare) return -1;
    }
    if (!a->tokenizer) a->tokenizer = "bytes";
    if (!(*tok = tok_open(a->tokenizer, err, errlen))) goto out;
    if (!a->resume) { /* the vocabulary follows the tokenizer unless set */
        char v[32];
        snprintf(v, sizeof v, "%d", tok_vocab_size(*tok));
        config_sets_add(&cs, "vocab_size", v, 1);
    }
    for (int i = 0; i < a->sets.n; i++) config_sets_add(&cs, a->sets.sets[i].name, a->sets.sets[i].value, 0);
    if (a->batch > 0) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)a->batch);
        config_sets_add(&cs, "batch", b, 0);
    }
    if (model_compile(m, model_path, src, cs.sets, cs.n, MODEL_TRAIN, 4,
                      a->device ? a->device : "auto", stderr)) {
        snprintf(err, errlen, "cannot build the model");
        goto out;
    }
    if (a->resume) {
        if (ckpt_load(a->resume, m, saved, err, errlen)) goto out;
    }
    rc = 0;
out:
    config_sets_free(&cs);
    ckpt_info_free(&info);
    return rc;
}

int train_run(TrainArgs *a)
{
    char err[1024];
    Model m = {0};
    Tokenizer *tok = NULL;
    cJSON *saved = NULL;
    Corpus corpus = {0};
    FILE *metrics = NULL;
    int status = 1;
    int32_t *x = NULL, *y = NULL;
    set_threads(a->threads);

    if (!a->model && !a->resume) {
        fprintf(stderr, "kanrun train: error: give a model (MODEL.kdl) or --resume DIR\n");
        return 1;
    }
    if (a->resume && !a->out) a->out = a->resume;
    if (setup_model(a, &m, &tok, &saved, err, sizeof err)) goto fail;
    resolve_args(a, saved);
    if (!a->data) {
        snprintf(err, sizeof err, "no training data: give --data PATH (a text file or a folder)");
        goto fail;
    }
    if (!a->out) {
        const char *base = strrchr(m.path, '/');
        base = base ? base + 1 : m.path;
        char *name = xstrdup(base), *dot = strrchr(name, '.');
        if (dot) *dot = 0;
        a->out = xasprintf("runs/%s", name); /* lives for the whole run */
        free(name);
        mkdir("runs", 0777);
    }
    if (mkdir(a->out, 0777) && errno != EEXIST) {
        snprintf(err, sizeof err, "%s: cannot create the output folder: %s", a->out, strerror(errno));
        goto fail;
    }
    Io io;
    if (find_io(&m, &io, err, sizeof err)) goto fail;
    if (io.vocab != tok_vocab_size(tok) && io.vocab < tok_vocab_size(tok)) {
        snprintf(err, sizeof err, "the model's vocabulary (%lld) is smaller than the tokenizer's (%d)",
                 (long long)io.vocab, tok_vocab_size(tok));
        goto fail;
    }
    char *cache = xasprintf("%s/tokens", a->out);
    int crc = corpus_prepare(a->data, a->val, tok, cache, &corpus, err, sizeof err);
    free(cache);
    if (crc || corpus_check_batch(&corpus, (int)io.block, (int)io.batch, err, sizeof err)) goto fail;

    if (!a->resume && model_init_params(&m, (uint64_t)a->seed, err, sizeof err)) goto fail;
    Device *dev = m.dev;
    dev->seed = (uint64_t)a->seed;
    dev->training = 1;
    dev->opt.lr = a->lr;
    dev->opt.weight_decay = a->weight_decay;
    dev->opt.clip = a->clip;
    int64_t start = dev->step;
    if (start >= a->steps) {
        fprintf(stderr, "kanrun train: the run is at step %lld already; --steps %lld adds nothing\n",
                (long long)start, (long long)a->steps);
        status = 0;
        goto done;
    }
    if (!(metrics = open_metrics(a->out, start))) {
        snprintf(err, sizeof err, "%s/metrics.jsonl: cannot write: %s", a->out, strerror(errno));
        goto fail;
    }
    int64_t params = 0;
    for (int i = 0; i < m.g.n; i++)
        if (m.g.nodes[i].op == OP_PARAM) params += shape_numel(&m.g.nodes[i].shape);
    printf("kanrun: %s, %lld parameters, batch %lld x %lld, %s tokens %zu train / %zu val (%s)\n",
           m.path, (long long)params, (long long)io.batch, (long long)io.block, tok_spec(tok),
           corpus.n_train, corpus.n_val, corpus.cache_status);
    printf("kanrun: steps %lld..%lld, lr %.3g (warmup %lld, cosine to %.3g), out %s\n",
           (long long)start, (long long)a->steps, a->lr, (long long)a->warmup, a->min_lr, a->out);
    fflush(stdout);

    size_t ntok = (size_t)(io.batch * io.block);
    x = xmalloc(ntok * 4);
    y = xmalloc(ntok * 4);
    int adam = m.g.n - 1; /* the optimizer's last node */
    Progress bar;
    progress_start(&bar, start, a->steps, a->quiet);
    int64_t last_saved = start;
    for (int64_t step = start; step < a->steps; step++) {
        double t0 = now_s();
        dev->opt.lr = train_lr(step, a->steps, a->warmup, a->lr, a->min_lr);
        corpus_batch(corpus.train, corpus.n_train, (int)io.block, (int)io.batch, (uint64_t)a->seed,
                     (uint64_t)step, x, y);
        if (model_set_tokens(&m, io.idx, x, err, sizeof err) ||
            model_set_tokens(&m, io.targets, y, err, sizeof err))
            goto fail;
        dev->ops->run(dev, 0, adam); /* forward, backward, gradient norm */
        double loss;
        model_read_value(&m, m.g.loss, &loss);
        if (!isfinite(loss) || !isfinite(dev->grad_norm)) {
            progress_end(&bar);
            char kept[512];
            if (last_saved > 0)
                snprintf(kept, sizeof kept, "the last good checkpoint is %s (step %lld)", a->out,
                         (long long)last_saved);
            else
                snprintf(kept, sizeof kept, "no checkpoint was written yet");
            fprintf(stderr,
                    "kanrun train: error: the loss is %s at step %lld (gradient norm %g); stopping: "
                    "%s. Try a lower --lr.\n",
                    isfinite(loss) ? "finite but the gradient is not" : (isnan(loss) ? "NaN" : "infinite"),
                    (long long)step + 1, dev->grad_norm, kept);
            status = 3;
            goto done;
        }
        dev->ops->run(dev, adam, adam + 1); /* clip + AdamW */
        double ms = 1e3 * (now_s() - t0);
        int64_t done_steps = step + 1;
        fprintf(metrics,
                "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6e,\"grad_norm\":%.6f,\"ms\":%.3f,"
                "\"tok_s\":%.1f}\n",
                (long long)done_steps, loss, dev->opt.lr, dev->grad_norm, ms, (double)ntok / (ms / 1e3));
        fflush(metrics);
        if (done_steps % a->log_every == 0 || done_steps == a->steps || step == start)
            progress_log(&bar, "step %6lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s",
                         (long long)done_steps, (long long)a->steps, loss, dev->opt.lr,
                         dev->grad_norm, ms, (double)ntok / (ms / 1e3));
        progress_update(&bar, done_steps, loss, ms);
        if (a->eval_every > 0 && (done_steps % a->eval_every == 0 || done_steps == a->steps)) {
            double vl = evaluate(&m, &io, &corpus, (uint64_t)a->seed, a->eval_batches);
            progress_log(&bar, "step %6lld/%lld | val loss %.4f | perplexity %.2f",
                         (long long)done_steps, (long long)a->steps, vl, exp(vl));
            fprintf(metrics, "{\"step\":%lld,\"val_loss\":%.6f}\n", (long long)done_steps, vl);
            fflush(metrics);
        }
        if ((a->save_every > 0 && done_steps % a->save_every == 0) || done_steps == a->steps) {
            cJSON *st = state_json(a);
            int rc = ckpt_save(a->out, &m, tok_spec(tok), st, err, sizeof err);
            cJSON_Delete(st);
            if (rc) goto fail;
            last_saved = done_steps;
        }
    }
    progress_end(&bar);
    printf("kanrun: done, checkpoint in %s (step %lld)\n", a->out, (long long)last_saved);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "kanrun train: error: %s\n", err);
    status = 1;
done:
    if (metrics) fclose(metrics);
    free(x);
    free(y);
    corpus_free(&corpus);
    cJSON_Delete(saved);
    if (tok) tok_close(tok);
    model_free(&m);
    return status;
}

/* kanrun eval CKPT --data PATH [--val PATH] [--batches K] [--seed S] [--threads T] */
int eval_run(int argc, char **argv)
{
    const char *dir = NULL, *data = NULL, *val = NULL;
    int64_t batches = 20, seed = 1337, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(f, "--data") && has) data = argv[++i];
        else if (!strcmp(f, "--val") && has) val = argv[++i];
        else if (!strcmp(f, "--batches") && has) {
            if (parse_int(f, argv[++i], 1, &batches)) return 2;
        } else if (!strcmp(f, "--seed") && has) {
            if (parse_int(f, argv[++i], 0, &seed)) return 2;
        } else if (!strcmp(f, "--threads") && has) {
            if (parse_int(f, argv[++i], 0, &threads)) return 2;
        } else if (f[0] != '-' && !dir) dir = f;
        else {
            fprintf(stderr, "kanrun eval: error: unexpected argument '%s'\n", f);
            return 2;
        }
    }
    if (!dir || !data) {
        fprintf(stderr, "usage: kanrun eval CHECKPOINT_DIR --data PATH [--val PATH] [--batches K]\n");
        return 2;
    }
    set_threads((int)threads);
    char err[1024];
    CkptInfo info;
    if (ckpt_info(dir, &info, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        return 1;
    }
    ConfigSets cs;
    ckpt_sets(&info, &cs);
    Model m = {0};
    Tokenizer *tok = NULL;
    Corpus corpus = {0};
    int rc = 1;
    Io io;
    char *cache = xasprintf("%s/tokens", dir);
    if (model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4, "auto", stderr))
        goto out;
    if (ckpt_load(dir, &m, NULL, err, sizeof err) || find_io(&m, &io, err, sizeof err) ||
        !(tok = tok_open(info.tokenizer, err, sizeof err)) ||
        corpus_prepare(data, val, tok, cache, &corpus, err, sizeof err) ||
        corpus_check_batch(&corpus, (int)io.block, (int)io.batch, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        goto out;
    }
    double vl = evaluate(&m, &io, &corpus, (uint64_t)seed, batches);
    printf("val loss %.4f | perplexity %.2f | %lld batches of %lld x %lld tokens | step %lld\n", vl,
           exp(vl), (long long)batches, (long long)io.batch, (long long)io.block, (long long)info.step);
    rc = 0;
out:
    free(cache);
    corpus_free(&corpus);
    if (tok) tok_close(tok);
    model_free(&m);
    config_sets_free(&cs);
    ckpt_info_free(&info);
    return rc;
}
