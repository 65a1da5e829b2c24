/* sample.c: kanrun sample: text from a checkpoint, streamed as it is generated. */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "objective.h"
#include "rng.h"
#include "run_folder.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"
#include "weights.h"

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

static const char SAMPLE_USAGE[] = "usage: kanrun sample RUN [--prompt TEXT] [flags]\n"
                                   "       kanrun sample FILE --model MODEL.kdl [--prompt TEXT] [flags]\n";

int sample_main(int argc, char **argv)
{
    const char *prompt = "";
    int64_t ntokens = 200, top_k = 0, seed = 1337, threads = 0;
    double temperature = 1.0, top_p = 1.0;
    WeightsArgs w = {0};
    CliOpt wopts[WEIGHTS_NOPTS];
    weights_opts(&w, wopts);
    const CliOpt opts[] = {
        wopts[0], wopts[1], wopts[2], wopts[3],
        CLI_STR("prompt", &prompt, "TEXT", "the text to continue (default: a newline)"),
        CLI_INT("tokens", &ntokens, 0, CLI_INT_MAX, "N", "tokens to generate (default 200)"),
        CLI_REAL("temperature", &temperature, 0, 1e6, "T", "softmax temperature (default 1; 0: greedy)"),
        CLI_INT("top-k", &top_k, 0, INT32_MAX, "K", "sample among the K most likely (default 0: all)"),
        CLI_REAL_POS("top-p", &top_p, 1, "P", "nucleus: the smallest set holding P of the mass\n(default 1: all)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "the draws (default 1337)"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
    };
    CliSpec spec = {"kanrun sample", SAMPLE_USAGE,
                    "Text streams as it is generated; a prompt longer than the context keeps its\n"
                    "last block_size tokens. RUN is a run folder or its model.safetensors; with\n"
                    "--model, FILE is any safetensors file holding MODEL's state_dict by name (a\n"
                    "PyTorch export; minGPT's attn.bias masks ignored), built with --set/--preset.\n",
                    opts, CLI_COUNT(opts), 1, 1, &w.sets};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) {
        config_sets_free(&w.sets);
        return r > 0 ? 0 : 2;
    }
    w.weights = pos[0];
    set_threads((int)threads);
    char err[16384];
    CkptInfo info = {0};
    Model m = {0};
    Tokenizer *tok = NULL;
    int32_t *ids = NULL, *ctx = NULL, *targets = NULL;
    float *logits = NULL;
    size_t n = 0;
    int rc = 1;
    /* one sequence */
    if (weights_open(&w, "1", "auto", "kanrun sample", &m, &info, &tok, err, sizeof err)) {
        fprintf(stderr, "kanrun sample: error: %s\n", err);
        goto out;
    }
    char *run = w.model ? NULL : run_dir_of(w.weights);
    ObjRecord rec = {.kind = OBJ_LM};
    if (run && objective_recorded(run, info.step, &rec, err, sizeof err)) { /* the weights are intact */
        fprintf(stderr, "kanrun sample: warning: %s; sampling without the run's training record, as from a "
                "next-token model\n", err);
        rec.kind = OBJ_LM;
    }
    free(run);
    if (rec.kind != OBJ_LM) { /* sampling continues text: only a next-token model can */
        fprintf(stderr, "kanrun sample: error: %s was trained with --objective %s: kanrun sample generates text "
                "from a next-token model (--objective lm)\n", w.weights, objective_name(rec.kind));
        goto out;
    }
    if (tok_encode(tok, prompt, strlen(prompt), &ids, &n)) {
        fprintf(stderr, "kanrun sample: error: %s\n", tok_error(tok));
        goto out;
    }
    int idx = model_input(&m, "idx"), tgt = model_input(&m, "targets");
    if (idx < 0 || m.g.output < 0 || m.g.nodes[idx].shape.nd != 2) {
        fprintf(stderr, "kanrun sample: error: the model has no 'idx' input of tokens[batch, block_size] "
                        "or no output\n");
        goto out;
    }
    int64_t T = m.g.nodes[idx].shape.d[1], V = shape_last(&m.g.nodes[m.g.output].shape);
    if (n == 0) { /* no prompt: start from a newline */
        free(ids);
        if (tok_encode(tok, "\n", 1, &ids, &n) || n == 0) {
            fprintf(stderr, "kanrun sample: error: the tokenizer cannot encode a newline\n");
            goto out;
        }
    }
    /* the context window: the last T tokens (of the prompt, then of the text) */
    ctx = xcalloc((size_t)T, 4);
    size_t len = n < (size_t)T ? n : (size_t)T;
    memcpy(ctx, ids + n - len, len * 4);
    targets = xmalloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) targets[t] = -1;
    if (tgt >= 0 && model_set_tokens(&m, tgt, targets, err, sizeof err)) {
        fprintf(stderr, "kanrun sample: error: %s\n", err);
        goto out;
    }
    fwrite(prompt, 1, strlen(prompt), stdout);
    fflush(stdout);
    logits = xmalloc(sizeof(float) * (size_t)(T * V));
    for (int64_t k = 0; k < ntokens; k++) {
        /* later positions are padding the causal model never sees */
        memset(ctx + len, 0, (size_t)(T - (int64_t)len) * 4);
        if (model_set_tokens(&m, idx, ctx, err, sizeof err)) {
            fprintf(stderr, "\nkanrun sample: error: %s (the tokenizer %s has more tokens than the model)\n",
                    err, tok_spec(tok));
            goto out;
        }
        m.dev->ops->run(m.dev, 0, m.g.n_forward);
        m.dev->ops->read_value(m.dev, m.g.output, logits);
        const float *row = logits + (len - 1) * V;
        for (int64_t v = 0; v < V; v++)
            if (!isfinite(row[v])) {
                fprintf(stderr, "\nkanrun sample: error: the logits of token %lld are not finite (%g for id "
                                "%lld): the weights overflow the forward pass\n",
                        (long long)k + 1, row[v], (long long)v);
                goto out;
            }
        double u = kanc_rng_uniform((uint64_t)seed, 0x5A3D1E, (uint64_t)k);
        int next = sample_pick(row, (int)V, temperature, (int)top_k, top_p, u);
        if (len == (size_t)T) memmove(ctx, ctx + 1, (size_t)(T - 1) * 4), len--;
        ctx[len++] = next;
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
    config_sets_free(&w.sets);
    ckpt_info_free(&info);
    return rc;
}
