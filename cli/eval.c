/* eval.c: kanrun eval: a checkpoint's validation metrics: loss and perplexity, or a table's MSE or accuracy. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "corpus.h"
#include "lm.h"
#include "objective.h"
#include "run_folder.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"
#include "weights.h"

static const char EVAL_USAGE[] = "usage: kanrun eval RUN [--data PATH] [flags]\n"
                                 "       kanrun eval FILE --model MODEL.kdl --data PATH [flags]\n";

static const char EVAL_EPILOG[] =
    "RUN is a run folder or its model.safetensors (or a bare checkpoint file, which\n"
    "needs --data). Without --data, the run's own --data and --val. The run's token\n"
    "cache (RUN/tokens) is only read; other data is cached in RUN/tokens-eval-<hash>.\n"
    "With --model, FILE is any safetensors file holding MODEL's state_dict by name\n"
    "(a PyTorch export; minGPT's attn.bias masks ignored), built with --set/--preset.\n"
    "\n"
    "The run's objective (kanrun train --objective) decides what is scored: lm and\n"
    "mlm the loss over the fixed batches (mlm with the run's mask id and\n"
    "--mask-prob, masks drawn as training draws them), table every validation row\n"
    "of the CSV (MSE and RMSE, or the loss and accuracy). Without a run, --objective\n"
    "(default lm, or table for a .csv) and --mask-prob say it.\n";

/* 1 when both are NULL or both name the same file */
static int same_source(const char *a, const char *b)
{
    return a == b || (a && b && run_same_path(a, b));
}

/* FNV-1a of the sources' absolute paths: one cache per data (and val) */
static char *eval_cache(const char *run, const char *data, const char *val)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < 2; k++) {
        const char *path = k ? val : data;
        char *real = path ? realpath(path, NULL) : NULL;
        const char *p = real ? real : path ? path : "";
        for (const char *c = p;; c++) { /* the NUL too: data "ab" + val "" != data "a" + val "b" */
            h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
            if (!*c) break;
        }
        free(real);
    }
    return xasprintf("%s/tokens-eval-%016llx", run, (unsigned long long)h);
}

int eval_main(int argc, char **argv)
{
    const char *data = NULL, *val = NULL, *objective = NULL;
    double mask_prob = NAN;
    int64_t batches = 20, seed = 1337, threads = 0;
    WeightsArgs w = {0};
    CliOpt wopts[WEIGHTS_NOPTS];
    weights_opts(&w, wopts);
    const CliOpt opts[] = {
        wopts[0], wopts[1], wopts[2], wopts[3],
        CLI_STR("data", &data, "PATH", "the text to evaluate on (its validation split: the last\n10%; default: the run's --data)"),
        CLI_STR("val", &val, "PATH", "evaluate on all of this text instead"),
        CLI_INT("batches", &batches, 1, CLI_INT_MAX, "K", "fixed validation batches (default 20)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "which fixed batches (default 1337)"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
        CLI_STR("objective", &objective, "OBJ", "lm, mlm or table (default: the run's)"),
        CLI_REAL_POS("mask-prob", &mask_prob, 1, "P", "mlm: the share of positions masked (default: the run's)"),
    };
    CliSpec spec = {"kanrun eval", EVAL_USAGE, EVAL_EPILOG, opts, CLI_COUNT(opts), 1, 1, &w.sets};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) {
        config_sets_free(&w.sets);
        return r > 0 ? 0 : 2;
    }
    const char *ckpt = w.weights = pos[0];
    set_threads((int)threads);
    char err[16384];
    KanProbe probe = {0};
    double *out_of_grid = NULL;
    CkptInfo info = {0};
    Model m = {0};
    Tokenizer *tok = NULL;
    Corpus corpus = {0};
    int rc = 1;
    Objective obj = {0};
    Table table_train = {0}, table_val = {0};
    ObjMetrics mt;
    /* the run folder (NULL: a checkpoint file outside a run, or a state_dict) and what it trained on */
    char *run = w.model ? NULL : run_dir_of(ckpt), *run_data = NULL, *run_val = NULL, *cache = NULL;
    char rerr[600] = "";
    if (weights_open(&w, NULL, "auto", "kanrun eval", &m, &info, &tok, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        goto out;
    }
    int recorded = run && run_recorded_data(run, info.step, &run_data, &run_val, rerr, sizeof rerr) == 0;
    if (!data) {
        if (!recorded) {
            fprintf(stderr, "kanrun eval: error: %s: %s: give --data PATH\n", ckpt,
                    run ? rerr
                        : w.model ? "a state_dict file records no training data"
                                  : "a checkpoint file outside a run folder records no training data");
            rc = 2;
            goto out;
        }
        data = run_data;
        if (!val) val = run_val;
    }
    /* the run's own cache is the trainer's: read it, never write it */
    int own = recorded && same_source(data, run_data) && same_source(val, run_val);
    if (run) cache = own ? xasprintf("%s/tokens", run) : eval_cache(run, data, val);
    kan_probe_init(&probe, &m); /* the out-of-grid fraction of each KAN layer */
    out_of_grid = xcalloc((size_t)probe.n + 1, sizeof *out_of_grid);
    /* the objective: the run's record, unless given */
    ObjRecord rec = {.kind = objective_default(data), .mask_prob = OBJ_DEFAULT_MASK_PROB, .mask_id = -1};
    if (run && objective_recorded(run, info.step, &rec, rerr, sizeof rerr) && !objective) {
        fprintf(stderr, "kanrun eval: error: %s (--objective lm|mlm|table evaluates without the run's record)\n",
                rerr);
        goto out;
    }
    if (objective && objective_parse(objective, &rec.kind, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!isnan(mask_prob)) rec.mask_prob = mask_prob;
    int bad;
    if (rec.kind == OBJ_TABLE)
        bad = objective_load_tables(data, val, &table_train, &table_val, err, sizeof err) ||
              objective_open_table(&obj, &m, &table_train, &table_val, err, sizeof err);
    else
        bad = objective_open_tokens(&obj, &m, rec.kind, tok_vocab_size(tok), rec.mask_prob, NULL, err, sizeof err) ||
              (own ? corpus_prepare_readonly(data, val, tok, cache, &corpus, err, sizeof err)
                   : corpus_prepare(data, val, tok, cache, &corpus, err, sizeof err)) ||
              objective_set_corpus(&obj, &corpus, err, sizeof err);
    if (!bad && rec.kind == OBJ_MLM && rec.mask_id >= 0 && rec.mask_id != obj.mask_id) {
        set_err(err, sizeof err, "%s: the run masked with id %lld, the tokenizer's vocabulary now gives %d", ckpt,
                (long long)rec.mask_id, (int)obj.mask_id);
        bad = 1;
    }
    if (bad || objective_evaluate(&obj, (uint64_t)seed, batches, &probe, out_of_grid, &mt, err, sizeof err)) {
        fprintf(stderr, "kanrun eval: error: %s\n", err);
        goto out;
    }
    char step[48] = ""; /* a state_dict has no step */
    if (!w.model) snprintf(step, sizeof step, " | step %lld", (long long)info.step);
    char val_line[256], val_json[256];
    objective_metrics_text(&obj, &mt, val_line, sizeof val_line, val_json, sizeof val_json);
    if (rec.kind == OBJ_TABLE)
        printf("%s of %s%s\n", val_line + 3, val ? val : data, step);
    else
        printf("%s | %lld batches of %lld x %lld tokens%s%s\n", val_line + 3, (long long)batches,
               (long long)obj.io.batch, (long long)obj.io.block, rec.kind == OBJ_MLM ? " (masked LM)" : "", step);
    char grid_line[256], grid_json[8192];
    kan_probe_report(&probe, out_of_grid, grid_line, grid_json, sizeof grid_line);
    if (*grid_line) printf("%s\n", grid_line);
    rc = 0;
out:
    objective_free(&obj);
    table_free(&table_train);
    table_free(&table_val);
    kan_probe_free(&probe);
    free(out_of_grid);
    free(cache);
    free(run);
    free(run_data);
    free(run_val);
    corpus_free(&corpus);
    if (tok) tok_close(tok);
    model_free(&m);
    config_sets_free(&w.sets);
    ckpt_info_free(&info);
    return rc;
}
