/* test_saved_values.c: every value kanrun reads back from a checkpoint is checked.
 *
 * Each test trains a tiny run for one step, rewrites a value of its
 * model.safetensors or optimizer-1.safetensors (st_write), or edits the GPT-2
 * tokenizer files it was trained with, and runs the built binary the way a
 * user does: a bad value is exit status 1 (3 for a diverging step) with a
 * message naming the file, the key or tensor and the value, never a signal,
 * a NaN printed as a result, or a silently broken checkpoint.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "test_util.h"
#include "tokenizer.h"
#include "util.h"

/* the tiny settings of tests/test_train.c */
#define TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4"

/* A run of `model` trained for one step on the first 20 kB of the corpus
   (DIR/short.txt) into DIR/run; extra flags appended. Returns DIR. */
static char *train_tiny(const char *model, const char *extra)
{
    char *dir = test_tmpdir(), *out = NULL;
    int st = test_run(&out, "head -c 20000 %s > %s/short.txt && $KANRUN train %s --data %s/short.txt "
                            "--out %s/run " TINY " --steps 1 --warmup 1 --eval-every 0 --quiet %s",
                      test_corpus(), dir, model, dir, dir, extra ? extra : "");
    cr_assert_eq(st, 0, "training the tiny run failed (%d):\n%s", st, out);
    free(out);
    return dir;
}

/* A copy of the GPT-2 files in DIR/tok and a tiny mingpt run that uses them. */
static char *train_gpt2(void)
{
    char *dir = test_tmpdir(), *out = NULL;
    int st = test_run(&out, "cp -r %s/data/gpt2 %s/tok && chmod -R u+w %s/tok && head -c 20000 %s > "
                            "%s/short.txt && $KANRUN train models/mingpt.kdl --tokenizer gpt2:%s/tok "
                            "--data %s/short.txt --out %s/run " TINY
                            " --steps 1 --warmup 1 --eval-every 0 --quiet",
                      test_shared(), dir, dir, test_corpus(), dir, dir, dir, dir);
    cr_assert_eq(st, 0, "training the gpt2 run failed (%d):\n%s", st, out);
    free(out);
    return dir;
}

typedef enum {
    ED_NONE,
    ED_FILL,        /* every value = v */
    ED_AT,          /* value [at] = v */
    ED_SCALE,       /* every value *= v */
    ED_REVERSE_ROW, /* row `at` of a 2-D tensor reversed */
    ED_TRANSPOSE,   /* a 2-D tensor's shape swapped (the data as is) */
    ED_F64,         /* stored as F64, same values */
    ED_DROP,        /* the tensor left out */
} EdKind;

/* One change to a safetensors file: a metadata key set (value NULL: removed)
   and/or a tensor edited. */
typedef struct {
    const char *key, *value;
    const char *tensor;
    EdKind kind;
    double v;
    int64_t at;
} Edit;

static void st_edit(const char *path, Edit ed)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    int n = st_num_tensors(&f), k = 0;
    StEntry *e = xcalloc((size_t)n, sizeof *e);
    void *buf = NULL;
    int found = !ed.tensor;
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_tensor_at(&f, i);
        StEntry x = {t->name, t->dtype, t->rank, {0}, t->data};
        memcpy(x.shape, t->shape, sizeof x.shape);
        if (ed.tensor && !strcmp(t->name, ed.tensor)) {
            found = 1;
            if (ed.kind == ED_DROP) continue;
            cr_assert_eq(t->dtype, ST_F32);
            float *v = xmalloc(t->nbytes + 4);
            memcpy(v, t->data, t->nbytes);
            int64_t cols = t->rank == 2 ? t->shape[1] : 0;
            switch (ed.kind) {
            case ED_FILL: for (int64_t j = 0; j < t->numel; j++) v[j] = (float)ed.v; break;
            case ED_AT: v[ed.at] = (float)ed.v; break;
            case ED_SCALE: for (int64_t j = 0; j < t->numel; j++) v[j] *= (float)ed.v; break;
            case ED_REVERSE_ROW:
                for (int64_t j = 0; j < cols; j++) v[ed.at * cols + j] = ((const float *)t->data)[ed.at * cols + cols - 1 - j];
                break;
            case ED_TRANSPOSE:
                x.shape[0] = t->shape[1];
                x.shape[1] = t->shape[0];
                break;
            case ED_F64: {
                double *d = xmalloc((size_t)t->numel * 8 + 8);
                for (int64_t j = 0; j < t->numel; j++) d[j] = v[j];
                free(v);
                v = (float *)d;
                x.dtype = ST_F64;
                break;
            }
            default: break;
            }
            x.data = buf = v;
        }
        e[k++] = x;
    }
    cr_assert(found, "%s has no tensor %s", path, ed.tensor ? ed.tensor : "");
    StMeta meta[32];
    int nm = 0, set = 0;
    for (int i = 0; i < st_num_meta(&f); i++) {
        const StMeta *m = st_meta_at(&f, i);
        if (ed.key && !strcmp(m->key, ed.key)) {
            set = 1;
            if (!ed.value) continue;
            meta[nm++] = (StMeta){m->key, ed.value};
        } else {
            meta[nm++] = *m;
        }
    }
    if (ed.key && ed.value && !set) meta[nm++] = (StMeta){ed.key, ed.value};
    cr_assert_eq(st_write(path, e, k, meta, nm, err, sizeof err), 0, "%s", err);
    free(buf);
    free(e);
    st_close(&f);
}

/* dir/run copied to dir/<name>; returns the copy's path */
static char *copy_run(const char *dir, const char *name)
{
    char *to = xasprintf("%s/%s", dir, name);
    cr_assert_eq(test_run(NULL, "rm -rf %s && cp -r %s/run %s", to, dir, to), 0);
    return to;
}

/* A metadata value of a file (caller frees). */
static char *meta_of(const char *path, const char *key)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    const char *v = st_meta(&f, key);
    char *r = v ? xstrdup(v) : NULL;
    st_close(&f);
    return r;
}

/* Runs the command; expects exit status `want` and every non-NULL needle in
   its output. */
static void expect_run(int want, const char *n1, const char *n2, const char *n3, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void expect_run(int want, const char *n1, const char *n2, const char *n3, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *out = NULL;
    int st = test_run(&out, "%s", cmd);
    cr_expect_eq(st, want, "'%s' exited %d, not %d:\n%s", cmd, st, want, out);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i])
            cr_expect(strstr(out, needles[i]) != NULL, "'%s' should mention '%s':\n%s", cmd, needles[i], out);
    free(out);
}

/* Replaces the first `from` in the file by `to`. */
static void edit_text(const char *path, const char *from, const char *to)
{
    size_t len;
    char *text = read_file(path, &len);
    cr_assert(text, "cannot read %s", path);
    char *at = strstr(text, from);
    cr_assert(at, "%s has no '%s'", path, from);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(text);
}

/* the fingerprint of gpt2:dir as it is now, as checkpoints print it */
static void fingerprint_now(const char *dir, char hex[TOK_FINGERPRINT_HEX])
{
    char err[512], *spec = xasprintf("gpt2:%s", dir);
    Tokenizer *t = tok_open(spec, err, sizeof err);
    cr_assert(t, "%s", err);
    tok_fingerprint_hex(t, hex);
    tok_close(t);
    free(spec);
}

/* ---------------------------------------------------------------- tokenizer */

/* The checkpoint stores the tokenizer's fingerprint, the same one as the
   token cache's sidecar; an unchanged tokenizer gives no warning. */
Test(saved_values, the_tokenizer_fingerprint_is_stored_and_matches_the_token_cache, .timeout = 120)
{
    char *dir = train_gpt2(), *model = xasprintf("%s/run/model.safetensors", dir);
    char *hash = meta_of(model, "kanc_tokenizer_hash"), now[TOK_FINGERPRINT_HEX];
    cr_assert(hash, "model.safetensors has no kanc_tokenizer_hash");
    char *tokdir = xasprintf("%s/tok", dir);
    fingerprint_now(tokdir, now);
    cr_expect_str_eq(hash, now);
    char *side = xasprintf("%s/run/tokens/tokens.json", dir), *text = read_file(side, NULL);
    cr_assert(text);
    cJSON *j = cJSON_Parse(text), *key = cJSON_GetObjectItem(j, "key");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(key, "tokenizer_hash")), hash);
    char *out = NULL;
    cr_expect_eq(test_run(&out, "$KANRUN sample %s/run --tokens 3", dir), 0, "%s", out);
    cr_expect(!strstr(out, "warning"), "%s", out);
    free(out);
    /* the bytes tokenizer has no files: the fingerprint of nothing */
    char *b = train_tiny("models/hybrid.kdl", NULL), *bm = xasprintf("%s/run/model.safetensors", b);
    char *bh = meta_of(bm, "kanc_tokenizer_hash");
    cr_expect(bh && !strcmp(bh, "0000000000000000"), "bytes: %s", bh ? bh : "(none)");
    cJSON_Delete(j);
    free(bh), free(bm), free(b), free(side), free(text), free(tokdir), free(hash), free(model), free(dir);
}

/* encoder.json edited after training so that " the" has id 60000, past the
   model's 50257 embedding rows: sample, eval and train --resume refuse,
   naming the token and both fingerprints. */
Test(saved_values, a_tokenizer_grown_past_the_embedding_is_refused, .timeout = 120)
{
    char *dir = train_gpt2(), *model = xasprintf("%s/run/model.safetensors", dir);
    char *old = meta_of(model, "kanc_tokenizer_hash"), *enc = xasprintf("%s/tok/encoder.json", dir);
    char *tokdir = xasprintf("%s/tok", dir), now[TOK_FINGERPRINT_HEX];
    edit_text(enc, "\"\\u0120the\": 262", "\"\\u0120the\": 60000");
    fingerprint_now(tokdir, now);
    cr_assert_str_neq(old, now);
    expect_run(1, "\" the\" (id 60000)", old, now, "$KANRUN sample %s/run --prompt 'In the beginning'", dir);
    expect_run(1, "\" the\" (id 60000)", "50257", now, "$KANRUN eval %s/run --data %s/short.txt --batches 2",
               dir, dir);
    expect_run(1, "\" the\" (id 60000)", old, now, "$KANRUN train --resume %s/run --steps 2 --quiet", dir);
    free(tokdir), free(enc), free(old), free(model), free(dir);
}

/* Two ids swapped: the vocabulary keeps its size, the ids mean other tokens.
   A warning naming the spec and both fingerprints; the command runs. */
Test(saved_values, a_changed_tokenizer_of_the_same_size_is_a_warning, .timeout = 120)
{
    char *dir = train_gpt2(), *model = xasprintf("%s/run/model.safetensors", dir);
    char *old = meta_of(model, "kanc_tokenizer_hash"), *enc = xasprintf("%s/tok/encoder.json", dir);
    char *tokdir = xasprintf("%s/tok", dir), now[TOK_FINGERPRINT_HEX];
    edit_text(enc, "\"\\u0120the\": 262", "\"\\u0120the\": 290");
    edit_text(enc, "\"\\u0120and\": 290", "\"\\u0120and\": 262");
    fingerprint_now(tokdir, now);
    cr_assert_str_neq(old, now);
    char *real = realpath(tokdir, NULL), *spec = xasprintf("gpt2:%s", real);
    expect_run(0, "warning", old, now, "$KANRUN sample %s/run --tokens 3", dir);
    expect_run(0, "warning", spec, now, "$KANRUN eval %s/run --data %s/short.txt --batches 2", dir, dir);
    free(spec), free(real), free(tokdir), free(enc), free(old), free(model), free(dir);
}

/* A checkpoint from before the fingerprint (no kanc_tokenizer_hash): no
   check at open, but an id the model does not have is still an error naming
   it, in sample and in eval. */
Test(saved_values, without_a_fingerprint_ids_past_the_embedding_are_an_error, .timeout = 120)
{
    char *dir = train_gpt2(), *model = xasprintf("%s/run/model.safetensors", dir);
    char *enc = xasprintf("%s/tok/encoder.json", dir);
    st_edit(model, (Edit){.key = "kanc_tokenizer_hash", .value = NULL});
    char *gone = meta_of(model, "kanc_tokenizer_hash");
    cr_assert_null(gone);
    edit_text(enc, "\"\\u0120the\": 262", "\"\\u0120the\": 60000");
    expect_run(1, "token id 60000", NULL, NULL, "$KANRUN sample %s/run --prompt 'In the beginning'", dir);
    expect_run(1, "token id 60000", NULL, NULL, "$KANRUN eval %s/run --data %s/short.txt --batches 2", dir, dir);
    free(enc), free(model), free(dir);
}

/* --------------------------------------------------------- training state */

/* Every saved numeric setting is checked with the flag's range, and the
   strings and the state itself must have the right types. */
Test(saved_values, bad_saved_training_settings_name_the_file_and_the_key, .timeout = 200)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    char *opt = xasprintf("%s/run/optimizer-1.safetensors", dir);
    char *orig = meta_of(opt, "kanc_train");
    cr_assert(orig);
    struct {
        const char *key, *json;
    } cases[] = {
        {"log_every", "0"},     {"lr", "-1"},          {"clip", "-1"},        {"weight_decay", "-5"},
        {"eval_batches", "0"},  {"steps", "0"},        {"warmup", "-1"},      {"seed", "1.5"},
        {"save_every", "\"x\""}, {"min_lr", "-1"},     {"eval_every", "-3"},  {"lr", "1e400"},
        {"steps", "1e300"},     {"data", "5"},         {"data", "\"\""},      {"val", "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *run = copy_run(dir, "bad");
        char *path = xasprintf("%s/optimizer-1.safetensors", run);
        cJSON *st = cJSON_Parse(orig);
        cJSON_DeleteItemFromObject(st, cases[i].key);
        cJSON_AddItemToObject(st, cases[i].key, cJSON_Parse(cases[i].json));
        char *text = cJSON_PrintUnformatted(st);
        st_edit(path, (Edit){.key = "kanc_train", .value = text});
        char quoted[64];
        snprintf(quoted, sizeof quoted, "optimizer-1.safetensors: %s", cases[i].key);
        expect_run(1, quoted, NULL, NULL, "$KANRUN train --resume %s --quiet", run);
        free(text), cJSON_Delete(st), free(path), free(run);
    }
    /* the state is not a JSON object, or missing */
    const char *states[] = {"[1, 2]", "5", "{\"lr\": ", NULL};
    for (int i = 0; i < 4; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/optimizer-1.safetensors", run);
        st_edit(path, (Edit){.key = "kanc_train", .value = states[i]});
        expect_run(1, "optimizer-1.safetensors", "kanc_train", NULL, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    free(orig), free(opt), free(dir);
}

/* The saved hyperparameters, source and tokenizer go through the compiler and
   the tokenizer, which reject bad ones with a message. */
Test(saved_values, bad_saved_hyperparameters_source_and_tokenizer_are_errors, .timeout = 200)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    char *orig = NULL;
    {
        char *m = xasprintf("%s/run/model.safetensors", dir);
        orig = meta_of(m, "kanc_config");
        free(m);
    }
    struct {
        const char *key, *json, *needle;
    } cases[] = {
        {"n_layer", "-1", "repeat count"},
        {"n_head", "0", "heads"},
        {"vocab_size", "0", "embedding"},
        {"n_embd", "\"x\"", "n_embd"},
        {"pdrop", "2", "dropout"},
        {"grid_range", "[1, 1]", "grid_range"},
        {"grid_range", "[0, 1e-300]", "grid_range"},
        {"grid_range", "[-1e300, 1e300]", "grid_range"},
        {"n_layer", "{}", "n_layer"},
        {"n_layer", "null", "n_layer"},
        {"n_embd", "\"3\\\"2\"", "n_embd"},
        {"zzz", "1", "zzz"},
        {"n_layer", "2.5", "n_layer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/model.safetensors", run);
        cJSON *cfg = cJSON_Parse(orig);
        cJSON_DeleteItemFromObject(cfg, cases[i].key);
        cJSON_AddItemToObject(cfg, cases[i].key, cJSON_Parse(cases[i].json));
        char *text = cJSON_PrintUnformatted(cfg);
        st_edit(path, (Edit){.key = "kanc_config", .value = text});
        expect_run(1, cases[i].needle, "error", NULL, "$KANRUN sample %s --tokens 1", run);
        free(text), cJSON_Delete(cfg), free(path), free(run);
    }
    struct {
        const char *key, *value, *needle;
    } meta[] = {
        {"kanc_config", "[]", "kanc_config"},
        {"kanc_config", "{", "kanc_config"},
        {"kanc_config", NULL, "kanc_config"},
        {"kanc_source", "model gpt(", "error"},
        {"kanc_source", NULL, "kanc_source"},
        {"kanc_tokenizer", "nonsense", "nonsense"},
        {"kanc_tokenizer", "gpt2:/nonexistent", "/nonexistent"},
    };
    for (size_t i = 0; i < sizeof meta / sizeof *meta; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/model.safetensors", run);
        st_edit(path, (Edit){.key = meta[i].key, .value = meta[i].value});
        expect_run(1, meta[i].needle, NULL, NULL, "$KANRUN sample %s --tokens 1", run);
        expect_run(1, meta[i].needle, NULL, NULL, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    free(orig), free(dir);
}

/* A damaged optimizer file (the moments and the training record) stops a resume, naming the
   file; sample only warns, as the weights beside it are intact. */
Test(saved_values, a_damaged_optimizer_file_stops_resume_and_lets_sample_warn, .timeout = 200)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL), *run = copy_run(dir, "bad");
    cr_assert_eq(test_run(NULL, "truncate -s 100 %s/optimizer-1.safetensors", run), 0);
    expect_run(1, "optimizer-1.safetensors", "file truncated", NULL, "$KANRUN train --resume %s --quiet", run);
    expect_run(0, "warning: ", "optimizer-1.safetensors", "sampling without the run's training record",
               "$KANRUN sample %s --tokens 3", run);
    free(run), free(dir);
}

/* kanc_step is a plain non-negative integer, in the model file and in the
   optimizer file, and the two agree. */
Test(saved_values, kanc_step_is_a_plain_integer_and_the_files_agree, .timeout = 200)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    const char *bad[] = {"", " 20", "20x", "-1", "99999999999999999999", "+1", "1e3", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/model.safetensors", run);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        /* ckpt_load reads the step itself too: check it through the library */
        CkptInfo info;
        char err[1024];
        cr_assert_eq(ckpt_info(run, &info, err, sizeof err), 0, "%s", err);
        ConfigSets cs;
        ckpt_sets(&info, &cs);
        Model m;
        cr_assert_eq(model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4,
                                   "cpu", stderr), 0);
        st_edit(path, (Edit){.key = "kanc_step", .value = bad[i]});
        cr_expect_eq(ckpt_load(run, &m, NULL, err, sizeof err), -1, "kanc_step '%s' was accepted", bad[i]);
        cr_expect(strstr(err, "kanc_step") && strstr(err, quoted), "%s", err);
        model_free(&m);
        config_sets_free(&cs);
        ckpt_info_free(&info);
        expect_run(1, "kanc_step", quoted, NULL, "$KANRUN sample %s --tokens 1", run);
        expect_run(1, "kanc_step", quoted, NULL, "$KANRUN eval %s --data %s/short.txt --batches 1", run, dir);
        expect_run(1, "kanc_step", quoted, NULL, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    /* the optimizer file's own step: another number, not a number, missing */
    const char *ostep[] = {"2", "1x", "", NULL};
    const char *needle[] = {"step 1", "'1x'", "''", "kanc_step"};
    for (int i = 0; i < 4; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/optimizer-1.safetensors", run);
        st_edit(path, (Edit){.key = "kanc_step", .value = ostep[i]});
        expect_run(1, "optimizer-1.safetensors", needle[i], NULL, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    free(dir);
}

/* The optimizer's moments must have the parameter's exact shape and be F32. */
Test(saved_values, optimizer_moments_need_the_exact_shape_and_float32, .timeout = 120)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    struct {
        Edit e;
        const char *n1, *n2;
    } cases[] = {
        {{.tensor = "m.lm_head.layers.0.base_weight", .kind = ED_TRANSPOSE}, "[32, 256]", "[256, 32]"},
        {{.tensor = "v.transformer.wte.weight", .kind = ED_TRANSPOSE}, "v.transformer.wte.weight", "[32, 256]"},
        {{.tensor = "v.lm_head.layers.0.base_weight", .kind = ED_F64}, "v.lm_head.layers.0.base_weight", "F64"},
        {{.tensor = "m.transformer.ln_f.weight", .kind = ED_DROP}, "m.transformer.ln_f.weight", "missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/optimizer-1.safetensors", run);
        st_edit(path, cases[i].e);
        expect_run(1, "optimizer-1.safetensors", cases[i].n1, cases[i].n2, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    free(dir);
}

/* --------------------------------------------------------- broken weights */

/* A non-finite value in any parameter, buffer or moment, a knot grid that is
   not strictly increasing, a negative second moment, or a weight too large to
   square in float32 is refused when the checkpoint is loaded, by every
   command, naming the tensor and the first bad index. */
Test(saved_values, broken_state_is_refused_at_load, .timeout = 200)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    struct {
        Edit e;
        const char *n1, *n2;
    } model[] = {
        {{.tensor = "transformer.wte.weight", .kind = ED_AT, .at = 7, .v = NAN}, "'transformer.wte.weight'", "index 7"},
        {{.tensor = "transformer.h.0.attn.bias", .kind = ED_AT, .at = 3, .v = INFINITY}, "'transformer.h.0.attn.bias'", "index 3"},
        {{.tensor = "lm_head.layers.0.grid", .kind = ED_FILL, .v = 0}, "'lm_head.layers.0.grid'", "strictly increasing"},
        {{.tensor = "transformer.h.1.mlp.kan.layers.1.grid", .kind = ED_REVERSE_ROW, .at = 5}, "row 5", "strictly increasing"},
        {{.tensor = "transformer.h.0.attn.c_attn.layers.0.grid", .kind = ED_AT, .at = 13, .v = NAN}, "c_attn.layers.0.grid'", "index 13"},
        {{.tensor = "lm_head.layers.0.base_weight", .kind = ED_FILL, .v = 1e30}, "'lm_head.layers.0.base_weight'", "1e+30"},
        {{.tensor = "transformer.ln_f.weight", .kind = ED_AT, .at = 4, .v = -3e19}, "'transformer.ln_f.weight'", "index 4"},
    };
    for (size_t i = 0; i < sizeof model / sizeof *model; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/model.safetensors", run);
        st_edit(path, model[i].e);
        expect_run(1, "model.safetensors", model[i].n1, model[i].n2, "$KANRUN sample %s --tokens 2", run);
        expect_run(1, "model.safetensors", model[i].n1, model[i].n2,
                   "$KANRUN eval %s --data %s/short.txt --batches 1", run, dir);
        expect_run(1, "model.safetensors", model[i].n1, model[i].n2, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    struct {
        Edit e;
        const char *n1, *n2;
    } optim[] = {
        {{.tensor = "m.transformer.wte.weight", .kind = ED_AT, .at = 5, .v = NAN}, "'m.transformer.wte.weight'", "index 5"},
        {{.tensor = "v.transformer.wpe.weight", .kind = ED_AT, .at = 2, .v = -1}, "'v.transformer.wpe.weight'", "negative"},
        {{.tensor = "v.lm_head.layers.0.spline_weight", .kind = ED_AT, .at = 9, .v = INFINITY}, "'v.lm_head.layers.0.spline_weight'", "index 9"},
    };
    for (size_t i = 0; i < sizeof optim / sizeof *optim; i++) {
        char *run = copy_run(dir, "bad"), *path = xasprintf("%s/optimizer-1.safetensors", run);
        st_edit(path, optim[i].e);
        expect_run(1, "optimizer-1.safetensors", optim[i].n1, optim[i].n2, "$KANRUN train --resume %s --quiet", run);
        free(path), free(run);
    }
    free(dir);
}

/* Finite weights whose forward pass overflows: eval and sample say so
   (exit 1) instead of printing a NaN loss or sampling from NaN logits. */
Test(saved_values, a_forward_pass_that_overflows_is_an_error, .timeout = 120)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    char *run = copy_run(dir, "big"), *path = xasprintf("%s/model.safetensors", run);
    st_edit(path, (Edit){.tensor = "transformer.ln_f.weight", .kind = ED_FILL, .v = 1e19});
    st_edit(path, (Edit){.tensor = "lm_head.layers.0.base_weight", .kind = ED_FILL, .v = 1e19});
    expect_run(1, "logits", "not finite", NULL, "$KANRUN sample %s --tokens 2", run);
    expect_run(1, "validation loss", "the weights are broken", NULL,
               "$KANRUN eval %s --data %s/short.txt --batches 1", run, dir);
    free(path), free(run), free(dir);
}

/* A checkpoint whose weights are large but finite (and within the load-time
   bound) gives a finite loss and a gradient norm of ~1e33: with --clip 0 that
   gradient would overflow AdamW's float32 second moment, so the step is not
   taken: exit 3, the checkpoint of step 1 kept as it was. Clipped (the
   default --clip 1), the same step is harmless and runs. */
Test(saved_values, a_gradient_too_large_for_adamw_stops_the_run, .timeout = 120)
{
    char *dir = train_tiny("models/kansformers.kdl", NULL);
    char *run = copy_run(dir, "big"), *path = xasprintf("%s/model.safetensors", run);
    st_edit(path, (Edit){.tensor = "transformer.ln_f.weight", .kind = ED_FILL, .v = 1e16});
    st_edit(path, (Edit){.tensor = "lm_head.layers.0.base_weight", .kind = ED_SCALE, .v = 1e16});
    size_t nbefore, nafter;
    char *before = read_file(path, &nbefore);
    cr_assert(before);
    char *out = NULL;
    int st = test_run(&out, "$KANRUN train --resume %s --steps 2 --clip 0 --log-every 1", run);
    cr_expect_eq(st, 3, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "gradient norm") && strstr(out, "e+32"), "%s", out);
    cr_expect(strstr(out, "the last good checkpoint is") != NULL, "%s", out);
    free(out);
    char *after = read_file(path, &nafter);
    cr_expect(after && nafter == nbefore && !memcmp(before, after, nbefore), "model.safetensors changed");
    CkptInfo info;
    char err[512];
    cr_assert_eq(ckpt_info(run, &info, err, sizeof err), 0, "%s", err);
    cr_expect_eq(info.step, 1);
    ckpt_info_free(&info);
    st = test_run(&out, "$KANRUN train --resume %s --steps 2 --quiet", run);
    cr_expect_eq(st, 0, "clipped, the step runs (exit status %d):\n%s", st, out);
    free(out);
    free(after), free(before), free(path), free(run), free(dir);
}

/* A step whose update makes weights beyond the load-time bound (--lr 1e30:
   ~1e30 after step 1) is a diverged run too: exit 3, and no checkpoint holding
   them is written, so the one kept always loads. */
Test(saved_values, a_step_to_absurd_weights_is_not_saved, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL;
    int st = test_run(&out, "head -c 20000 %s > %s/short.txt && $KANRUN train models/kansformers.kdl "
                            "--data %s/short.txt --out %s/run " TINY " --steps 5 --lr 1e30 --warmup 0 "
                            "--clip 0 --save-every 1 --eval-every 0 --quiet",
                      test_corpus(), dir, dir, dir);
    cr_expect_eq(st, 3, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "the state after step 1") && strstr(out, "1.8e19"), "%s", out);
    cr_expect(strstr(out, "no checkpoint was written yet") != NULL, "%s", out);
    free(out);
    char *model = xasprintf("%s/run/model.safetensors", dir);
    cr_expect(access(model, F_OK) != 0, "%s was written", model);
    free(model), free(dir);
}
