/* test_interop.c: weights in and out of PyTorch.
 *
 * kanrun train --init-from (a state_dict by name: every mismatch listed,
 * minGPT's attn.bias masks ignored, other float dtypes converted, a fresh run
 * recording its origin), eval and sample with --model on a state_dict, and
 * kanrun forward (logits equal to the reference fixtures', the loss equal to
 * eval's and to the cross-entropy of its logits, ids out of range refused);
 * where a CPU torch is installed, a round trip from kanref.GPT through
 * kanrun forward (tests/torch_forward_roundtrip.py).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "corpus.h"
#include "lm.h"
#include "safetensors.h"
#include "state_dict.h"
#include "test_util.h"
#include "util.h"
#include "weights.h"

#define TINY_SETS "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32"
#define TINY TINY_SETS " --batch 4"
#define STILL "--lr 0 --min-lr 0 --weight-decay 0 --warmup 1 --eval-every 0 --quiet --threads 2"

/* a text of its own (the tests need no corpus): 60 KB of words in dir/text.txt */
static char *make_text(const char *dir)
{
    static const char *const words[] = {"in", "the", "beginning", "was", "word", "and", "light",
                                         "darkness", "upon", "face", "of", "deep", "waters"};
    char *path = xasprintf("%s/text.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    uint64_t s = 12345;
    for (int i = 0; i < 12000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        fprintf(f, "%s%s", words[(s >> 33) % 13], (s >> 20) % 11 == 0 ? ".\n" : " ");
    }
    fclose(f);
    return path;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The tiny models/kansformers.kdl (vocab 256) with fresh weights, exported as
   a kanc checkpoint: dir/model.safetensors holds its whole state_dict, the
   attn.bias masks included. Returns that path. */
static char *export_tiny(const char *dir, uint64_t seed)
{
    ConfigSets cs = {0};
    config_sets_add(&cs, "n_layer", "2", 0);
    config_sets_add(&cs, "n_head", "2", 0);
    config_sets_add(&cs, "n_embd", "32", 0);
    config_sets_add(&cs, "block_size", "32", 0);
    config_sets_add(&cs, "batch", "4", 0);
    char *kdl = test_repo_path("models/kansformers.kdl"), err[512];
    Model m;
    cr_assert_eq(model_compile(&m, kdl, NULL, cs.sets, cs.n, MODEL_FORWARD, 4, "cpu", stderr), 0);
    cr_assert_eq(model_init_params(&m, seed, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_save(dir, &m, NULL, NULL, err, sizeof err), 0, "%s", err);
    model_free(&m);
    config_sets_free(&cs);
    free(kdl);
    return xasprintf("%s/model.safetensors", dir);
}

/* A state_dict being edited: the tensors of a file, their data owned */
typedef struct {
    StEntry e[512];
    void *owned[512];
    int n;
} Dict;

static void dict_add(Dict *d, const char *name, StDtype dt, int rank, const int64_t *shape, const void *data,
                     size_t nbytes)
{
    cr_assert_lt(d->n, 512);
    StEntry *e = &d->e[d->n];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    e->dtype = dt;
    e->rank = rank;
    for (int k = 0; k < rank; k++) e->shape[k] = shape[k];
    d->owned[d->n] = xmalloc(nbytes + 1);
    if (data) memcpy(d->owned[d->n], data, nbytes);
    else memset(d->owned[d->n], 0, nbytes);
    e->data = d->owned[d->n];
    d->n++;
}

/* every tensor of path; with_masks 0: the attn.bias masks left out (as
   the reference fixtures do) */
static void dict_load(Dict *d, const char *path, int with_masks)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    d->n = 0;
    for (int i = 0; i < st_num_tensors(&f); i++) {
        const StTensor *t = st_tensor_at(&f, i);
        if (!with_masks && sd_is_mask_name(t->name)) continue;
        dict_add(d, t->name, t->dtype, t->rank, t->shape, t->data, t->nbytes);
    }
    st_close(&f);
}

static int dict_find(const Dict *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->e[i].name, name)) return i;
    cr_assert_fail("no tensor %s", name);
    return -1;
}

static void dict_drop(Dict *d, const char *name)
{
    int i = dict_find(d, name);
    free((char *)d->e[i].name);
    free(d->owned[i]);
    d->e[i] = d->e[d->n - 1];
    d->owned[i] = d->owned[d->n - 1];
    d->n--;
}

static int64_t numel_of(const StEntry *e)
{
    int64_t n = 1;
    for (int k = 0; k < e->rank; k++) n *= e->shape[k];
    return n;
}

/* tensor i as dt (F64 or I64, from F32) */
static void dict_convert(Dict *d, int i, StDtype dt)
{
    StEntry *e = &d->e[i];
    cr_assert_eq(e->dtype, ST_F32);
    int64_t n = numel_of(e);
    void *v = xmalloc((size_t)n * 8 + 1);
    for (int64_t k = 0; k < n; k++) {
        float x = ((const float *)e->data)[k];
        if (dt == ST_F64) ((double *)v)[k] = x;
        else ((int64_t *)v)[k] = (int64_t)x;
    }
    free(d->owned[i]);
    d->owned[i] = v;
    e->data = v;
    e->dtype = dt;
}

static void dict_save(const Dict *d, const char *path)
{
    char err[512];
    cr_assert_eq(st_write(path, d->e, d->n, NULL, 0, err, sizeof err), 0, "%s", err);
}

static void dict_free(Dict *d)
{
    for (int i = 0; i < d->n; i++) {
        free((char *)d->e[i].name);
        free(d->owned[i]);
    }
    d->n = 0;
}

/* Every problem of a state_dict is listed, not the first one only, and
   nothing is created. */
Test(interop, init_from_lists_every_missing_extra_and_misshapen_name, .timeout = 120)
{
    char *dir = test_tmpdir(), *exp = xasprintf("%s/export", dir), *text = make_text(dir);
    char *src = export_tiny(exp, 3), *bad = xasprintf("%s/bad.safetensors", dir);
    Dict *d = xcalloc(1, sizeof *d);
    dict_load(d, src, 1);
    dict_drop(d, "transformer.ln_f.bias");
    dict_drop(d, "transformer.h.1.mlp.kan.layers.0.grid"); /* a buffer: grids are read, not derived */
    int64_t s3[] = {3}, s2[] = {2, 2};
    dict_add(d, "transformer.h.0.attn.rotary", ST_F32, 1, s3, NULL, 12);
    dict_add(d, "head.weight", ST_F32, 2, s2, NULL, 16);
    int wpe = dict_find(d, "transformer.wpe.weight"); /* [32, 32] -> [33, 32] */
    free(d->owned[wpe]);
    d->e[wpe].shape[0] = 33;
    d->e[wpe].data = d->owned[wpe] = xcalloc(33 * 32, 4);
    dict_convert(d, dict_find(d, "transformer.h.0.ln_1.weight"), ST_I64);
    dict_save(d, bad);
    char *run = xasprintf("%s/run", dir), *out = NULL;
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --init-from %s --data %s --out %s --steps 1 " TINY
                      " " STILL, bad, text, run);
    cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
    const char *want[] = {"2 missing names, 2 extra names, 1 shape mismatch, 1 dtype",
                          "missing: transformer.ln_f.bias [32]",
                          "missing: transformer.h.1.mlp.kan.layers.0.grid",
                          "extra:   transformer.h.0.attn.rotary [3]",
                          "extra:   head.weight [2, 2]",
                          "transformer.wpe.weight is [33, 32] in the file, the model needs [32, 32]",
                          "transformer.h.0.ln_1.weight is I64"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(out, want[i]), "no '%s' in:\n%s", want[i], out);
    cr_expect(!strstr(out, "attn.bias"), "the masks are no problem:\n%s", out);
    cr_expect(!exists(run), "%s was created for a run that cannot start", run);
    free(out);
    /* the same list from forward and eval */
    st = test_run(&out, "$KANRUN eval %s --model models/kansformers.kdl " TINY_SETS " --data %s", bad, text);
    cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
    cr_expect(strstr(out, want[0]) && strstr(out, want[5]), "%s", out);
    free(out);
    dict_free(d);
    free(d), free(run), free(bad), free(src), free(text), free(exp), free(dir);
}

/* Another model's weights: every name and shape must match exactly. */
Test(interop, init_from_refuses_another_size, .timeout = 60)
{
    char *dir = test_tmpdir(), *text = make_text(dir), *src = export_tiny(dir, 1), *out = NULL;
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --init-from %s --data %s --out %s/run "
                      "--set n_layer=3 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4 " STILL,
                      src, text, dir);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "missing names") && strstr(out, "missing: transformer.h.2.ln_1.weight [32]"), "%s", out);
    free(out);
    st = test_run(&out, "$KANRUN train models/kansformers.kdl --init-from %s/nothing.safetensors --data %s "
                  "--out %s/run2 " TINY " " STILL, dir, text, dir);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "nothing.safetensors"), "%s", out);
    free(out);
    free(src), free(text), free(dir);
}

/* A state_dict as minGPT saves it (with attn.bias masks, here in F64) starts
   a fresh run with exactly its weights; the run records where it began and
   keeps that record when resumed. */
Test(interop, init_from_starts_a_fresh_run_from_the_weights, .timeout = 180)
{
    char *dir = test_tmpdir(), *exp = xasprintf("%s/export", dir), *text = make_text(dir);
    char *src = export_tiny(exp, 5), *sd = xasprintf("%s/state.safetensors", dir);
    Dict *d = xcalloc(1, sizeof *d);
    dict_load(d, src, 1);
    int masks = 0;
    for (int i = 0; i < d->n; i++) {
        masks += sd_is_mask_name(d->e[i].name);
        dict_convert(d, i, ST_F64); /* F32 -> F64 is exact, and so is the way back */
    }
    cr_assert_eq(masks, 2, "the export has a mask per layer");
    int grid = dict_find(d, "transformer.h.0.mlp.kan.layers.1.grid"); /* a grid of its own: read */
    for (int64_t k = 0; k < numel_of(&d->e[grid]); k++) ((double *)d->owned[grid])[k] *= 1.5;
    dict_save(d, sd);
    char *run = xasprintf("%s/run", dir), *out = NULL;
    /* lr 0 and no weight decay: the step leaves every weight as it was loaded */
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --init-from %s --data %s --out %s --steps 1 " TINY
                      " " STILL, sd, text, run);
    cr_assert_eq(st, 0, "exit %d:\n%s", st, out);
    cr_expect(strstr(out, "initialised from"), "%s", out);
    free(out);
    char *model = xasprintf("%s/model.safetensors", run), err[512];
    StFile f;
    cr_assert_eq(st_open(&f, model, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(st_meta(&f, "kanc_step"), "1");
    for (int i = 0; i < d->n; i++) {
        if (sd_is_mask_name(d->e[i].name)) continue;
        const StTensor *t = st_find(&f, d->e[i].name);
        cr_assert(t, "the run lacks %s", d->e[i].name);
        cr_assert_eq(t->numel, numel_of(&d->e[i]));
        float *v = xmalloc((size_t)t->numel * 4);
        st_read_f32(t, v);
        int64_t diff = 0;
        for (int64_t k = 0; k < t->numel; k++) diff += v[k] != (float)((const double *)d->e[i].data)[k];
        cr_expect_eq(diff, 0, "%s: %lld values differ from the file it started from", t->name, (long long)diff);
        free(v);
    }
    st_close(&f);
    /* a fresh run: metrics from step 1; its origin recorded as an absolute path */
    size_t len;
    char *mpath = xasprintf("%s/metrics.jsonl", run), *metrics = read_file(mpath, &len);
    cr_assert(metrics);
    cr_expect(!strncmp(metrics, "{\"step\":1,", 10), "%s", metrics);
    char *real = realpath(sd, NULL), *opt = xasprintf("%s/optimizer-1.safetensors", run);
    cr_assert_eq(st_open(&f, opt, err, sizeof err), 0, "%s", err);
    cJSON *state = cJSON_Parse(st_meta(&f, "kanc_train"));
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(state, "init_from");
    cr_expect(cJSON_IsString(init) && !strcmp(init->valuestring, real), "init_from %s",
              cJSON_IsString(init) ? init->valuestring : "(none)");
    cJSON_Delete(state);
    st_close(&f);
    st = test_run(&out, "$KANRUN train --resume %s --steps 2 --quiet --threads 2", run);
    cr_expect_eq(st, 0, "%s", out);
    free(out);
    free(opt);
    opt = xasprintf("%s/optimizer-2.safetensors", run);
    cr_assert_eq(st_open(&f, opt, err, sizeof err), 0, "%s", err);
    state = cJSON_Parse(st_meta(&f, "kanc_train"));
    init = cJSON_GetObjectItemCaseSensitive(state, "init_from");
    cr_expect(cJSON_IsString(init) && !strcmp(init->valuestring, real), "the resumed run forgot init_from");
    cJSON_Delete(state);
    st_close(&f);
    st = test_run(&out, "$KANRUN train --resume %s --init-from %s --steps 3 --quiet", run, sd);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "--init-from starts a new run"), "%s", out);
    free(out);
    dict_free(d);
    free(d), free(opt), free(real), free(mpath), free(metrics), free(model), free(run), free(sd), free(src),
        free(text), free(exp), free(dir);
}

/* eval and sample take a bare state_dict with --model: the same numbers as the
   kanc checkpoint it was taken from. */
Test(interop, eval_and_sample_take_a_state_dict_with_model, .timeout = 120)
{
    char *dir = test_tmpdir(), *exp = xasprintf("%s/export", dir), *text = make_text(dir);
    char *src = export_tiny(exp, 9), *sd = xasprintf("%s/state.safetensors", dir);
    Dict *d = xcalloc(1, sizeof *d);
    dict_load(d, src, 0);
    dict_save(d, sd);
    char *a = NULL, *b = NULL;
    cr_assert_eq(test_run(&a, "$KANRUN eval %s --data %s --batches 2 --threads 2", src, text), 0, "%s", a);
    cr_assert_eq(test_run(&b, "$KANRUN eval %s --model models/kansformers.kdl " TINY_SETS
                          " --set batch=4 --data %s --batches 2 --threads 2", sd, text), 0, "%s", b);
    const char *end = strstr(a, "tokens"); /* the checkpoint's line goes on with its step */
    cr_assert(end, "%s", a);
    cr_expect(!strncmp(a, b, (size_t)(end - a) + 6), "checkpoint: %sstate_dict: %s", a, b);
    free(a), free(b);
    cr_assert_eq(test_run(&a, "$KANRUN sample %s --prompt 'In the' --tokens 30 --seed 4", src), 0, "%s", a);
    cr_assert_eq(test_run(&b, "$KANRUN sample %s --model models/kansformers.kdl " TINY_SETS
                          " --prompt 'In the' --tokens 30 --seed 4", sd), 0, "%s", b);
    cr_expect_str_eq(a, b);
    free(a), free(b);
    /* a checkpoint carries its hyperparameters: --set without --model is refused */
    cr_expect_eq(test_run(&a, "$KANRUN sample %s --set n_layer=3 --tokens 3", src), 1);
    cr_expect(strstr(a, "go with a MODEL.kdl"), "%s", a);
    free(a);
    dict_free(d);
    free(d), free(sd), free(src), free(text), free(exp), free(dir);
}

/* ---------------------------------------------------------------- forward */

static void write_ids(const char *path, const int64_t *idx, const int64_t *targets, int64_t B, int64_t T)
{
    StEntry e[2] = {{.name = "idx", .dtype = ST_I64, .rank = 2, .shape = {B, T}, .data = idx},
                    {.name = "targets", .dtype = ST_I64, .rank = 2, .shape = {B, T}, .data = targets}};
    char err[512];
    cr_assert_eq(st_write(path, e, targets ? 2 : 1, NULL, 0, err, sizeof err), 0, "%s", err);
}

/* tensor name of path as doubles (caller frees) */
static double *read_doubles(const char *path, const char *name, int64_t *numel, int *rank)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    const StTensor *t = st_find(&f, name);
    cr_assert(t, "%s: no %s", path, name);
    double *v = xmalloc((size_t)t->numel * 8 + 8);
    st_read_f64(t, v);
    if (numel) *numel = t->numel;
    if (rank) *rank = t->rank;
    cr_expect_eq(t->dtype, ST_F32, "%s: %s is %s", path, name, st_dtype_name(t->dtype));
    st_close(&f);
    return v;
}

/* The reference fixtures (PyTorch's logits and loss on their idx, targets)
   through MODEL --init-from their state_dict: in batches smaller than B and
   with T shorter than block_size, both padded. */
Test(interop, forward_gives_the_reference_logits_and_loss, .timeout = 120)
{
    struct {
        const char *model, *fixture;
    } cases[] = {{"kansformers.kdl", "gpt_kansformers"}, {"hybrid.kdl", "gpt_hybrid"}, {"mingpt.kdl", "gpt_mlp"}};
    char *dir = test_tmpdir();
    for (int c = 0; c < 3; c++) {
        char *name = xasprintf("%s.safetensors", cases[c].fixture), *fx = test_fixture_path(name), err[512];
        free(name);
        StFile f;
        cr_assert_eq(st_open(&f, fx, err, sizeof err), 0, "%s", err);
        cJSON *cfg = cJSON_Parse(st_meta(&f, "config"));
        int64_t B = (int64_t)config_number(cfg, "batch", 0), T = (int64_t)config_number(cfg, "block_size", 0);
        char *sets = xasprintf("--set vocab_size=%g --set block_size=%g --set n_layer=%g --set n_head=%g "
                               "--set n_embd=%g --set batch=2",
                               config_number(cfg, "vocab_size", 0), config_number(cfg, "block_size", 0),
                               config_number(cfg, "n_layer", 0), config_number(cfg, "n_head", 0),
                               config_number(cfg, "n_embd", 0));
        /* the state_dict: everything but the inputs and expectations */
        Dict *d = xcalloc(1, sizeof *d);
        for (int i = 0; i < st_num_tensors(&f); i++) {
            const StTensor *t = st_tensor_at(&f, i);
            const char *nm = t->name;
            if (!strncmp(nm, "grad.", 5) || !strncmp(nm, "step1.", 6) || !strcmp(nm, "idx") ||
                !strcmp(nm, "targets") || !strcmp(nm, "logits") || !strcmp(nm, "loss") || !strcmp(nm, "losses"))
                continue;
            dict_add(d, nm, t->dtype, t->rank, t->shape, t->data, t->nbytes);
        }
        /* the fixtures leave out c_attn.bias with the masks (both end in "attn.bias"):
           zeros in the reference, as initialised */
        for (int l = 0; l < (int)config_number(cfg, "n_layer", 0); l++) {
            char w[96], bias[96];
            snprintf(w, sizeof w, "transformer.h.%d.attn.c_attn.weight", l);
            snprintf(bias, sizeof bias, "transformer.h.%d.attn.c_attn.bias", l);
            const StTensor *t = st_find(&f, w);
            if (t && !st_find(&f, bias)) dict_add(d, bias, ST_F32, 1, t->shape, NULL, (size_t)t->shape[0] * 4);
        }
        char *sd = xasprintf("%s/%s.state.safetensors", dir, cases[c].fixture);
        dict_save(d, sd);
        int64_t *idx = xmalloc((size_t)(B * T) * 8), *tg = xmalloc((size_t)(B * T) * 8);
        cr_assert_eq(st_read_i64(st_find(&f, "idx"), idx), 0);
        cr_assert_eq(st_read_i64(st_find(&f, "targets"), tg), 0);
        int64_t V = st_find(&f, "logits")->shape[2];
        double *ref = xmalloc((size_t)(B * T * V) * 8), ref_loss;
        st_read_f64(st_find(&f, "logits"), ref);
        st_read_f64(st_find(&f, "loss"), &ref_loss);
        double scale = 0;
        for (int64_t k = 0; k < B * T * V; k++) scale = fmax(scale, fabs(ref[k]));
        for (int full = 1; full >= 0; full--) {
            int64_t Tk = full ? T : T - 3; /* the first T-3 positions: what a causal model gives them */
            int64_t *ix = xmalloc((size_t)(B * Tk) * 8);
            for (int64_t b = 0; b < B; b++) memcpy(ix + b * Tk, idx + b * T, (size_t)Tk * 8);
            char *ids = xasprintf("%s/%s.ids%d.safetensors", dir, cases[c].fixture, full);
            char *out = xasprintf("%s/%s.out%d.safetensors", dir, cases[c].fixture, full), *log = NULL;
            write_ids(ids, ix, full ? tg : NULL, B, Tk);
            int st = test_run(&log, "$KANRUN forward models/%s --init-from %s --tokens %s -o %s %s", cases[c].model,
                              sd, ids, out, sets);
            cr_assert_eq(st, 0, "%s: exit %d\n%s", cases[c].model, st, log);
            int64_t n;
            int rank;
            double *got = read_doubles(out, "logits", &n, &rank);
            cr_assert_eq(n, B * Tk * V);
            cr_expect_eq(rank, 3);
            double worst = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t k = 0; k < Tk * V; k++)
                    worst = fmax(worst, fabs(got[b * Tk * V + k] - ref[b * T * V + k]));
            cr_expect_leq(worst / scale, 1e-4, "%s (T %lld): logits off by %g relative", cases[c].model,
                          (long long)Tk, worst / scale);
            if (full) {
                double *loss = read_doubles(out, "loss", &n, &rank);
                cr_expect_eq(rank, 0, "loss is a scalar");
                cr_expect_leq(fabs(loss[0] - ref_loss), 1e-4 * fabs(ref_loss), "%s: loss %.7f, reference %.7f",
                              cases[c].model, loss[0], ref_loss);
                free(loss);
            } else {
                StFile o;
                cr_assert_eq(st_open(&o, out, err, sizeof err), 0, "%s", err);
                cr_expect(!st_find(&o, "loss"), "no targets, no loss");
                st_close(&o);
            }
            free(got), free(log), free(out), free(ids), free(ix);
        }
        dict_free(d);
        free(d), free(ref), free(idx), free(tg), free(sd), free(sets), free(fx);
        cJSON_Delete(cfg);
        st_close(&f);
    }
    free(dir);
}

/* forward on a run: its loss is what eval computes on the same tokens, and
   the cross-entropy of its own logits over the counted positions. */
Test(interop, forward_loss_equals_eval_and_the_logits_cross_entropy, .timeout = 180)
{
    char *dir = test_tmpdir(), *text = make_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps 3 " TINY
                          " --warmup 1 --eval-every 0 --quiet --threads 2", text, run), 0, "%s", out);
    free(out);
    /* eval's batch 0 (seed 1337) of the run's validation split, in process */
    char err[1024];
    Tokenizer *tok = tok_open("bytes", err, sizeof err);
    Corpus corpus;
    cr_assert_eq(corpus_prepare(text, NULL, tok, NULL, &corpus, err, sizeof err), 0, "%s", err);
    WeightsArgs w = {.weights = run};
    Model m;
    CkptInfo info;
    cr_assert_eq(weights_open(&w, NULL, "cpu", "test", &m, &info, NULL, err, sizeof err), 0, "%s", err);
    LmIo io;
    cr_assert_eq(lm_find_io(&m, &io, err, sizeof err), 0, "%s", err);
    double eval_loss;
    cr_assert_eq(lm_evaluate(&m, &io, &corpus, 1337, 1, NULL, NULL, &eval_loss, err, sizeof err), 0, "%s", err);
    int64_t B = io.batch, T = io.block, V = io.vocab;
    int32_t *x = xmalloc((size_t)(B * T) * 4), *y = xmalloc((size_t)(B * T) * 4);
    corpus_eval_batch(corpus.val, corpus.n_val, (int)T, (int)B, 1337, 0, x, y);
    int64_t *ix = xmalloc((size_t)(B * T) * 8), *iy = xmalloc((size_t)(B * T) * 8);
    for (int64_t k = 0; k < B * T; k++) ix[k] = x[k], iy[k] = y[k];
    char *ids = xasprintf("%s/ids.safetensors", dir), *o = xasprintf("%s/out.safetensors", dir);
    write_ids(ids, ix, iy, B, T);
    cr_assert_eq(test_run(&out, "$KANRUN forward %s --tokens %s -o %s", run, ids, o), 0, "%s", out);
    free(out);
    double *loss = read_doubles(o, "loss", NULL, NULL);
    cr_expect_leq(fabs(loss[0] - eval_loss), 1e-6 * eval_loss, "forward %.8f, eval %.8f", loss[0], eval_loss);
    free(loss);

    /* B not a multiple of the batch, ignored targets: the mean over what counts */
    int64_t B2 = B + 3;
    int64_t *jx = xmalloc((size_t)(B2 * T) * 8), *jy = xmalloc((size_t)(B2 * T) * 8);
    for (int64_t k = 0; k < B2 * T; k++) {
        jx[k] = ix[k % (B * T)];
        jy[k] = k % 7 == 3 ? -1 : (ix[k % (B * T)] * 31 + k) % 256;
    }
    for (int64_t k = B * T; k < (B + 1) * T; k++) jy[k] = -1; /* one batch row with no target at all */
    write_ids(ids, jx, jy, B2, T);
    cr_assert_eq(test_run(&out, "$KANRUN forward %s --tokens %s -o %s", run, ids, o), 0, "%s", out);
    free(out);
    int64_t n;
    double *lg = read_doubles(o, "logits", &n, NULL), *l2 = read_doubles(o, "loss", NULL, NULL);
    cr_assert_eq(n, B2 * T * V);
    double sum = 0;
    int64_t count = 0;
    for (int64_t r = 0; r < B2 * T; r++) {
        if (jy[r] < 0) continue;
        const double *row = lg + r * V;
        double mx = row[0], s = 0;
        for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
        for (int64_t v = 0; v < V; v++) s += exp(row[v] - mx);
        sum += mx + log(s) - row[jy[r]];
        count++;
    }
    cr_expect_leq(fabs(l2[0] - sum / count), 1e-5 * (sum / count), "forward %.8f, cross-entropy %.8f", l2[0],
                  sum / count);
    free(lg), free(l2), free(jx), free(jy), free(ix), free(iy), free(x), free(y), free(ids), free(o);
    model_free(&m);
    ckpt_info_free(&info);
    corpus_free(&corpus);
    tok_close(tok);
    free(run), free(text), free(dir);
}

/* ids the model cannot take are errors naming the position; nothing written */
Test(interop, forward_refuses_bad_ids, .timeout = 120)
{
    char *dir = test_tmpdir(), *src = export_tiny(dir, 2);
    char *ids = xasprintf("%s/ids.safetensors", dir), *o = xasprintf("%s/out.safetensors", dir), *out = NULL;
    int64_t idx[2 * 5], tg[2 * 5];
    for (int k = 0; k < 10; k++) idx[k] = k * 20, tg[k] = k;
    idx[7] = 300; /* [1, 2] */
    write_ids(ids, idx, NULL, 2, 5);
    int st = test_run(&out, "$KANRUN forward %s --tokens %s -o %s", dir, ids, o);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "idx[1, 2] is 300, outside the model's vocabulary [0, 256)"), "%s", out);
    free(out);
    idx[7] = 7;
    tg[3] = -2;
    write_ids(ids, idx, tg, 2, 5);
    st = test_run(&out, "$KANRUN forward %s --tokens %s -o %s", dir, ids, o);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "targets[0, 3] is -2, outside the model's vocabulary [-1, 256)"), "%s", out);
    free(out);
    int64_t longer[33];
    for (int k = 0; k < 33; k++) longer[k] = k;
    write_ids(ids, longer, NULL, 1, 33);
    st = test_run(&out, "$KANRUN forward %s --tokens %s -o %s", dir, ids, o);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "T = 33 positions, more than the model's block_size 32"), "%s", out);
    free(out);
    st = test_run(&out, "$KANRUN forward models/kansformers.kdl --tokens %s -o %s", ids, o);
    cr_expect_eq(st, 2, "%s", out);
    cr_expect(strstr(out, "--init-from"), "%s", out);
    free(out);
    st = test_run(&out, "$KANRUN forward %s --tokens %s", dir, ids);
    cr_expect_eq(st, 2, "%s", out);
    cr_expect(strstr(out, "-o OUT is needed"), "%s", out);
    free(out);
    cr_expect(!exists(o), "%s was written", o);
    free(ids), free(o), free(src), free(dir);
}

/* PyTorch -> kanrun forward -> PyTorch, with the reference itself */
Test(interop, torch_state_dict_round_trip, .timeout = 300)
{
    if (!test_have_torch())
        cr_skip_test("no PyTorch under /usr/bin/python3 (apt-get install python3-torch): the round trip "
                     "from kanref.GPT is not checked");
    char *dir = test_tmpdir(), *out = NULL;
    int st = test_run(&out, "/usr/bin/python3 tests/torch_forward_roundtrip.py \"$KANRUN\" %s %s", test_shared(), dir);
    cr_expect_eq(st, 0, "exit %d:\n%s", st, out);
    cr_expect(strstr(out, "\nok"), "%s", out);
    cr_log_info("%s", out);
    free(out);
    free(dir);
}

/* the new flags and command are in the help the user reads */
Test(interop, help_shows_init_from_model_and_forward)
{
    const struct {
        const char *cmd, *want;
    } cases[] = {{"train --help", "--init-from FILE"},
                 {"eval --help", "--model MODEL.kdl"},
                 {"sample --help", "--model MODEL.kdl"},
                 {"forward --help", "usage: kanrun forward RUN --tokens IDS.safetensors -o OUT.safetensors"},
                 {"--help", "forward DIR --tokens IDS -o OUT"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = NULL;
        int st = test_run(&out, "$KANRUN %s", cases[i].cmd);
        cr_expect_eq(st, 0, "kanrun %s: exit %d", cases[i].cmd, st);
        cr_expect(out && strstr(out, cases[i].want), "kanrun %s lacks '%s':\n%s", cases[i].cmd, cases[i].want, out);
        free(out);
    }
}
