/* regrid.c: kanrun regrid: one grid update of a run's checkpoint, written as a checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "corpus.h"
#include "kan_basis.h"
#include "kan_grid.h"
#include "kan_probe.h"
#include "lm.h"
#include "objective.h"
#include "run_folder.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"

static const char REGRID_USAGE[] = "usage: kanrun regrid RUN [--data PATH] [flags]\n";

static const char REGRID_EPILOG[] =
    "Refits every B-spline KAN layer of RUN's checkpoint to its inputs on --batches\n"
    "training batches (kanrun train's --grid-update-every, once; layer by layer, each\n"
    "on what the layers before it, already updated, produce), and writes the result\n"
    "as RUN's checkpoint at the same step: the AdamW moments, the step and the\n"
    "training state are kept, so kanrun train --resume RUN continues from it. The\n"
    "previous weights stay in RUN/model-step<N>-before-regrid.safetensors and\n"
    "metrics.jsonl records the update. With --out DIR the checkpoint goes to DIR (a\n"
    "new folder) and RUN is only read. RUN is a run folder or its model.safetensors;\n"
    "PATH defaults to the run's own --data.\n";

typedef struct {
    Objective *o;
    uint64_t seed, step;
} Batches;

/* batch b: the one the run would train on at step + b (of its objective: masked for mlm, CSV rows for a table) */
static int load_batch(void *ctx, int b, char *err, size_t errlen)
{
    Batches *B = ctx;
    return objective_train_batch(B->o, B->seed, B->step + (uint64_t)b, 0, err, errlen);
}

/* RUN/model-step<N>-before-regrid[-K].safetensors: a second name for the weights
   ckpt_save is about to replace (it renames a new file over model.safetensors) */
static int keep_old_weights(const char *run, int64_t step, char *kept, size_t n, char *err, size_t errlen)
{
    char *model = xasprintf("%s/model.safetensors", run);
    int rc = -1;
    for (int k = 1; k < 1000; k++) {
        if (k == 1) snprintf(kept, n, "%s/model-step%lld-before-regrid.safetensors", run, (long long)step);
        else snprintf(kept, n, "%s/model-step%lld-before-regrid-%d.safetensors", run, (long long)step, k);
        if (link(model, kept) == 0) {
            rc = 0;
            break;
        }
        if (errno != EEXIST) {
            set_err(err, errlen, "%s: cannot keep the previous weights: %s", kept, strerror(errno));
            break;
        }
    }
    free(model);
    return rc;
}

int regrid_main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *device = "auto", *mode_name = "keep";
    int64_t batches = 4, seed = -1, threads = 0;
    KanGridOpts o = KAN_GRID_DEFAULTS;
    const CliOpt opts[] = {
        CLI_STR("data", &data, "PATH", "the text whose training split the batches come from\n(default: the run's --data)"),
        CLI_INT("batches", &batches, 1, 4096, "B", "training batches the grids adapt to (default 4)"),
        CLI_REAL("grid-margin", &o.margin, 0, INFINITY, "M", "the grid's margin past the samples' range (default 0.01)"),
        CLI_REAL("grid-eps", &o.eps, 0, 1, "E", "the uniform grid's share in the new knots (default 0.02)"),
        CLI_STR("grid-mode", &mode_name, "MODE", "keep (default) or efficient-kan (kanrun train --help)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "which batches (default: the run's seed)"),
        CLI_STR("out", &out, "DIR", "write the checkpoint to DIR instead of RUN"),
        CLI_STR("device", &device, "D", "auto (default), cpu, cuda or emu"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
    };
    CliSpec spec = {"kanrun regrid", REGRID_USAGE, REGRID_EPILOG, opts, CLI_COUNT(opts), 1, 1, NULL};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    set_threads((int)threads);
    char err[16384], kept[4200] = "";
    int rc = 1, lock = -1, out_lock = -1;
    CkptInfo info = {0};
    ConfigSets cs = {0};
    Tokenizer *tok = NULL;
    Model m = {0};
    int compiled = 0;
    cJSON *state = NULL;
    Corpus corpus = {0};
    KanProbe probe = {0};
    char *run = run_dir_of(pos[0]), *run_data = NULL, *run_val = NULL;
    Objective obj = {0};
    Table table_train = {0}, table_val = {0};
    if (kan_grid_mode_parse(mode_name, &o.mode)) {
        fprintf(stderr, "kanrun regrid: error: --grid-mode %s: must be keep or efficient-kan\n", mode_name);
        rc = 2;
        goto out;
    }
    if (!run) {
        set_err(err, sizeof err, "%s: not a run folder or a run's model.safetensors", pos[0]);
        goto fail;
    }
    /* claimed before it is read: a writer replaces its checkpoint as it saves */
    if ((lock = run_lock(run, err, sizeof err)) < 0) goto fail;
    if (out) {
        char e[900];
        int64_t step, mstep;
        if (make_dirs(out, e, sizeof e)) {
            set_err(err, sizeof err, "%s: cannot create the output folder: %s", out, e);
            goto fail;
        }
        if (run_same_path(out, run)) out = NULL; /* --out RUN: in place */
        else if ((out_lock = run_lock(out, err, sizeof err)) < 0) goto fail;
        else if (run_holds_run(out, &step, &mstep)) {
            set_err(err, sizeof err, "%s already holds a run: give a new folder", out);
            goto fail;
        }
    }
    if (ckpt_info(run, &info, err, sizeof err)) goto fail;
    ckpt_sets(&info, &cs);
    if (!(tok = tok_open(info.tokenizer, err, sizeof err))) goto fail;
    if (model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_TRAIN, 4, device, stderr)) {
        set_err(err, sizeof err, "%s: cannot build the run's model", run);
        goto fail;
    }
    compiled = 1;
    int64_t vocab = graph_vocab(&m.g, model_input(&m, "idx"));
    if (ckpt_check_tokenizer(&info, tok, vocab, "kanrun regrid", stderr, err, sizeof err) ||
        ckpt_load(run, &m, &state, err, sizeof err))
        goto fail;
    int recorded = run_recorded_data(run, info.step, &run_data, &run_val, err, sizeof err) == 0;
    if (!data && !recorded) goto fail; /* err says why the run records none */
    int own = recorded && (!data || run_same_path(data, run_data));
    if (!data) data = run_data;
    if (seed < 0) seed = (int64_t)config_number(state, "seed", 1337);
    ObjRecord rec;
    if (objective_recorded(run, info.step, &rec, err, sizeof err)) goto fail;
    char *cache = own ? xasprintf("%s/tokens", run) : NULL;
    int bad;
    if (rec.kind == OBJ_TABLE)
        bad = objective_load_tables(data, own ? run_val : NULL, &table_train, &table_val, err, sizeof err) ||
              objective_open_table(&obj, &m, &table_train, &table_val, err, sizeof err);
    else
        bad = objective_open_tokens(&obj, &m, rec.kind, tok_vocab_size(tok), rec.mask_prob, NULL, err, sizeof err) ||
              corpus_prepare_readonly(data, own ? run_val : NULL, tok, cache, &corpus, err, sizeof err) ||
              objective_set_corpus(&obj, &corpus, err, sizeof err);
    free(cache);
    if (bad) goto fail;
    kan_probe_init(&probe, &m);
    int splines = 0;
    for (int i = 0; i < probe.n; i++) splines += m.g.nodes[probe.layers[i].node].a.basis == KAN_BASIS_BSPLINE;
    if (!splines) {
        set_err(err, sizeof err, "%s: the run's model has no B-spline KAN layer to regrid", run);
        goto fail;
    }
    Batches B = {&obj, (uint64_t)seed, (uint64_t)info.step};
    KanGridReport rep;
    if (kan_grid_update_model(&m, &probe, &o, (int)batches, load_batch, &B, &rep, err, sizeof err)) goto fail;
    const char *dest = out ? out : run;
    if (!out && keep_old_weights(run, info.step, kept, sizeof kept, err, sizeof err)) goto fail;
    if (ckpt_save(dest, &m, tok, state, err, sizeof err)) goto fail;
    printf("kanrun regrid: %d layers (%s) on %lld batches: out of grid %.1f%% -> %.1f%%, spline change %.2e (%s)\n",
           rep.layers, mode_name, (long long)batches, 100 * rep.oog_before, 100 * rep.oog_after, rep.change,
           rep.worst ? rep.worst : "-");
    printf("kanrun regrid: checkpoint in %s (step %lld)%s%s\n", dest, (long long)info.step, *kept ? "; the previous weights are " : "",
           kept);
    if (!out) { /* the run's history records the update */
        char *path = xasprintf("%s/metrics.jsonl", run);
        FILE *f = fopen(path, "a");
        int wrote = f && fprintf(f, "{\"step\":%lld,\"grid_update\":{\"layers\":%d,\"mode\":\"%s\",\"batches\":%lld,"
                                    "\"out_of_grid_before\":%.6f,\"out_of_grid_after\":%.6f,\"spline_change\":%.6e,"
                                    "\"regrid\":true}}\n",
                                 (long long)info.step, rep.layers, mode_name, (long long)batches, rep.oog_before,
                                 rep.oog_after, rep.change) > 0;
        if (f && fclose(f) != 0) wrote = 0;
        if (!wrote) fprintf(stderr, "kanrun regrid: warning: %s: cannot append the update: %s\n", path, strerror(errno));
        free(path);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "kanrun regrid: error: %s\n", err);
out:
    if (lock >= 0) close(lock);
    if (out_lock >= 0) close(out_lock);
    objective_free(&obj);
    table_free(&table_train), table_free(&table_val);
    kan_probe_free(&probe);
    corpus_free(&corpus);
    cJSON_Delete(state);
    if (compiled) model_free(&m);
    if (tok) tok_close(tok);
    config_sets_free(&cs);
    ckpt_info_free(&info);
    free(run), free(run_data), free(run_val);
    return rc;
}
