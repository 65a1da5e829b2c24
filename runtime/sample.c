/* sample.c: kanrun sample: text from a checkpoint, streamed as it is generated. */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "rng.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"

typedef struct {
    double p;
    int id;
} Cand;

static int by_p_desc(const void *a, const void *b)
{
    const Cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int sample_pick(const float *logits, int V, double temperature, int top_k, double top_p, double u)
{
    if (temperature <= 0) { /* greedy */
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    Cand *c = xmalloc(sizeof *c * (size_t)V);
    double mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++) c[i] = (Cand){exp((logits[i] - mx) / temperature), i};
    qsort(c, (size_t)V, sizeof *c, by_p_desc);
    int n = top_k > 0 && top_k < V ? top_k : V;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += c[i].p;
    if (top_p > 0 && top_p < 1) { /* nucleus: the smallest prefix holding top_p of the mass */
        double acc = 0;
        for (int i = 0; i < n; i++) {
            acc += c[i].p / sum;
            if (acc >= top_p) {
                n = i + 1;
                break;
            }
        }
        sum = 0;
        for (int i = 0; i < n; i++) sum += c[i].p;
    }
    double r = u * sum, acc = 0;
    int pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += c[i].p;
        if (r < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}

static const char USAGE[] =
    "usage: kanrun sample CHECKPOINT_DIR [--prompt TEXT] [--tokens N] [--temperature T]\n"
    "                     [--top-k K] [--top-p P] [--seed S] [--threads T]\n";

int sample_run(int argc, char **argv)
{
    const char *dir = NULL, *prompt = "";
    long long ntokens = 200, top_k = 0, seed = 1337, threads = 0;
    double temperature = 1.0, top_p = 1.0;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        char *end = NULL;
        int has = i + 1 < argc;
        if (!strcmp(f, "--prompt") && has) prompt = argv[++i];
        else if (!strcmp(f, "--tokens") && has) ntokens = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--top-k") && has) top_k = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--seed") && has) seed = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--threads") && has) threads = strtoll(argv[++i], &end, 10);
        else if (!strcmp(f, "--temperature") && has) temperature = strtod(argv[++i], &end);
        else if (!strcmp(f, "--top-p") && has) top_p = strtod(argv[++i], &end);
        else if (f[0] != '-' && !dir) dir = f;
        else {
            fprintf(stderr, "kanrun sample: error: unexpected argument '%s'\n%s", f, USAGE);
            return 2;
        }
        if (end && (*end || ntokens < 0 || top_k < 0 || seed < 0 || threads < 0 ||
                    !(temperature >= 0) || !(top_p > 0 && top_p <= 1))) {
            fprintf(stderr, "kanrun sample: error: bad value for %s: '%s'\n", f, argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fputs(USAGE, stderr);
        return 2;
    }
    set_threads((int)threads);
    char err[1024];
    CkptInfo info;
    if (ckpt_info(dir, &info, err, sizeof err)) {
        fprintf(stderr, "kanrun sample: error: %s\n", err);
        return 1;
    }
    ConfigSets cs;
    ckpt_sets(&info, &cs);
    config_sets_add(&cs, "batch", "1", 0); /* one sequence */
    Model m = {0};
    Tokenizer *tok = NULL;
    int32_t *ids = NULL, *ctx = NULL, *targets = NULL;
    float *logits = NULL;
    size_t n = 0;
    int rc = 1;
    if (model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4, "auto", stderr))
        goto out;
    if (ckpt_load(dir, &m, NULL, err, sizeof err) || !(tok = tok_open(info.tokenizer, err, sizeof err)) ||
        tok_encode(tok, prompt, strlen(prompt), &ids, &n)) {
        fprintf(stderr, "kanrun sample: error: %s\n", err);
        goto out;
    }
    int idx = model_input(&m, "idx"), tgt = model_input(&m, "targets");
    if (idx < 0 || m.g.output < 0) {
        fprintf(stderr, "kanrun sample: error: the model has no 'idx' input or no output\n");
        goto out;
    }
    int64_t T = m.g.nodes[idx].shape.d[1], V = shape_last(&m.g.nodes[m.g.output].shape);
    if (n == 0) { /* no prompt: start from a newline */
        free(ids);
        if (tok_encode(tok, "\n", 1, &ids, &n) || n == 0) goto out;
    }
    fwrite(prompt, 1, strlen(prompt), stdout);
    fflush(stdout);
    ids = xrealloc(ids, sizeof *ids * (n + (size_t)ntokens + 1));
    ctx = xcalloc((size_t)T, 4);
    targets = xmalloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) targets[t] = -1;
    if (tgt >= 0) m.dev->ops->write_value(m.dev, tgt, targets);
    logits = xmalloc(sizeof(float) * (size_t)(T * V));
    for (long long k = 0; k < ntokens; k++) {
        /* the last T tokens; later positions are padding the causal model never sees */
        size_t len = n < (size_t)T ? n : (size_t)T;
        memset(ctx, 0, (size_t)T * 4);
        memcpy(ctx, ids + n - len, len * 4);
        m.dev->ops->write_value(m.dev, idx, ctx);
        m.dev->ops->run(m.dev, 0, m.g.n_forward);
        m.dev->ops->read_value(m.dev, m.g.output, logits);
        double u = kanc_rng_uniform((uint64_t)seed, 0x5A3D1E, (uint64_t)k);
        int next = sample_pick(logits + (len - 1) * V, (int)V, temperature, (int)top_k, top_p, u);
        ids[n++] = next;
        size_t blen = 0;
        const char *bytes = tok_decode_one(tok, next, &blen);
        if (bytes) fwrite(bytes, 1, blen, stdout);
        fflush(stdout);
    }
    putchar('\n');
    rc = 0;
out:
    free(ids);
    free(ctx);
    free(targets);
    free(logits);
    if (tok) tok_close(tok);
    model_free(&m);
    config_sets_free(&cs);
    ckpt_info_free(&info);
    return rc;
}
