/* eval.c: kanrun eval: the validation loss and perplexity of a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "corpus.h"
#include "lm.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"

static const char EVAL_USAGE[] = "usage: kanrun eval RUN --data PATH [flags]\n";

int eval_main(int argc, char **argv)
{
    const char *data = NULL, *val = NULL;
    int64_t batches = 20, seed = 1337, threads = 0;
    const CliOpt opts[] = {
        CLI_STR("data", &data, "PATH", "the text to evaluate on (its validation split: the last 10%)"),
        CLI_STR("val", &val, "PATH", "evaluate on all of this text instead"),
        CLI_INT("batches", &batches, 1, CLI_INT_MAX, "K", "fixed validation batches (default 20)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "which fixed batches (default 1337)"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
    };
    CliSpec spec = {"kanrun eval", EVAL_USAGE, NULL, opts, CLI_COUNT(opts), 1, 1, NULL};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    const char *dir = pos[0];
    if (!data) {
        fprintf(stderr, "kanrun eval: error: give --data PATH\n%s", EVAL_USAGE);
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
    LmIo io;
    char *cache = xasprintf("%s/tokens", dir);
    double vl;
    if (model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4, "auto", stderr)) {
        fprintf(stderr, "kanrun eval: error: cannot build the model saved in %s\n", info.file);
        goto out;
    }
    if (ckpt_load(dir, &m, NULL, err, sizeof err) || lm_find_io(&m, &io, err, sizeof err) ||
        !(tok = tok_open(info.tokenizer, err, sizeof err)) ||
        ckpt_check_tokenizer(&info, tok, io.vocab, "kanrun eval", stderr, err, sizeof err) ||
        corpus_prepare(data, val, tok, cache, &corpus, err, sizeof err) ||
        corpus_check_batch(&corpus, (int)io.block, (int)io.batch, err, sizeof err) ||
        lm_evaluate(&m, &io, &corpus, (uint64_t)seed, batches, &vl, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        goto out;
    }
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
