/* checkpoint.c: model and optimizer state to and from safetensors, atomically. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kan_grid.h"
#include "kan_op.h"
#include "util.h"

static char *model_file(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) return xstrdup(dir); /* st_open says what it is */
    return xasprintf("%s/model.safetensors", dir);
}

char *ckpt_optimizer_path(const char *dir, int64_t step)
{
    return xasprintf("%s/optimizer-%lld.safetensors", dir, (long long)step);
}

/* one entry per parameter (and buffer) of an area copied to the host; an
   integer KAN grid (kan_grid_is_i64) is converted to I64 into owned[n] (else
   owned[n] is NULL), which the caller frees with the names */
static int add_entries(Model *m, StEntry *e, int n, const char *prefix, const void *area,
                       int params, char **names, void **owned)
{
    Graph *g = &m->g;
    for (int i = 0; i < g->n; i++) {
        const GNode *x = &g->nodes[i];
        if (x->op != (params ? OP_PARAM : OP_BUFFER)) continue;
        names[n] = prefix ? xasprintf("%s%s", prefix, x->name) : xstrdup(x->name);
        e[n].name = names[n];
        e[n].dtype = ST_F32;
        e[n].rank = x->shape.nd;
        for (int d = 0; d < x->shape.nd; d++) e[n].shape[d] = x->shape.d[d];
        e[n].data = (const char *)area + m->plan.pos[i] * 4;
        owned[n] = NULL;
        if (kan_grid_is_i64(x)) { /* the values were checked to be its integers (check_grid) */
            int64_t numel = shape_numel(&x->shape), *v = xmalloc(sizeof(int64_t) * (size_t)(numel + 1));
            for (int64_t j = 0; j < numel; j++) v[j] = (int64_t)((const float *)e[n].data)[j];
            e[n].dtype = ST_I64;
            e[n].data = owned[n] = v;
        }
        n++;
    }
    return n;
}

static void *read_area(Model *m, KancArea a)
{
    void *p = xmalloc((size_t)(device_area_elems(m->dev, a) + 1) * m->plan.real_size);
    m->dev->ops->read_area(m->dev, a, p);
    return p;
}

/* the values of every parameter (or buffer) in a host copy of an area, as
   the loader will check them */
static int check_area(Model *m, const void *area, int params, const char *prefix, ModelValues kind,
                      const char *label, char *err, size_t errlen)
{
    char name[512];
    for (int i = 0; i < m->g.n; i++) {
        const GNode *x = &m->g.nodes[i];
        if (x->op != (params ? OP_PARAM : OP_BUFFER)) continue;
        snprintf(name, sizeof name, "%s%s", prefix, x->name);
        if (model_check_values(m, i, (const float *)area + m->plan.pos[i], kind, label, name, err, errlen))
            return -1;
    }
    return 0;
}

int ckpt_save(const char *dir, Model *m, const Tokenizer *tok, const cJSON *train_state,
              char *err, size_t errlen)
{
    if (m->plan.real_size != 4) {
        snprintf(err, errlen, "checkpoints hold float32 state");
        return -1;
    }
    int64_t step = m->dev->step;
    char step_text[32], label[64];
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    snprintf(label, sizeof label, "the state after step %lld", (long long)step);
    /* nothing is written that ckpt_load would refuse */
    void *params = read_area(m, AREA_PARAMS), *buffers = read_area(m, AREA_BUFFERS);
    void *pm = train_state ? read_area(m, AREA_M) : NULL, *pv = train_state ? read_area(m, AREA_V) : NULL;
    if (check_area(m, params, 1, "", MODEL_VALUES_STATE, label, err, errlen) ||
        check_area(m, buffers, 0, "", MODEL_VALUES_STATE, label, err, errlen) ||
        (pm && check_area(m, pm, 1, "m.", MODEL_VALUES_M, label, err, errlen)) ||
        (pv && check_area(m, pv, 1, "v.", MODEL_VALUES_V, label, err, errlen))) {
        free(params), free(buffers), free(pm), free(pv);
        return CKPT_REFUSED;
    }
    int n = m->g.n, rc = 0;
    StEntry *e = xcalloc((size_t)n, sizeof *e);
    char **names = xcalloc((size_t)n, sizeof *names);
    void **owned = xcalloc((size_t)n, sizeof *owned);
    char *path = NULL, *old_optim = NULL;
    CkptInfo prev = {0};
    char perr[256];
    int had_prev = 0;
    char derr[512];
    if (make_dirs(dir, derr, sizeof derr)) {
        snprintf(err, errlen, "%s: %s", dir, derr);
        rc = -1;
        goto out;
    }
    had_prev = ckpt_info(dir, &prev, perr, sizeof perr) == 0;

    if (train_state) { /* 1. the optimizer file of this step */
        int k = add_entries(m, e, 0, "m.", pm, 1, names, owned);
        k = add_entries(m, e, k, "v.", pv, 1, names, owned);
        char *state = cJSON_PrintUnformatted(train_state);
        StMeta meta[] = {{"kanc_step", step_text}, {"kanc_train", state}};
        path = ckpt_optimizer_path(dir, step);
        rc = st_write(path, e, k, meta, 2, err, errlen);
        free(state);
        for (int i = 0; i < k; i++) free(names[i]), free(owned[i]);
        free(path);
        if (rc) goto out;
    }
    { /* 2. the model, which names the step */
        int k = add_entries(m, e, 0, NULL, params, 1, names, owned);
        k = add_entries(m, e, k, NULL, buffers, 0, names, owned);
        cJSON *cfg = config_from_params(&m->params);
        char *config = cJSON_PrintUnformatted(cfg);
        cJSON_Delete(cfg);
        char hash[TOK_FINGERPRINT_HEX] = "0000000000000000"; /* bytes: no files */
        if (tok) tok_fingerprint_hex(tok, hash);
        StMeta meta[] = {{"format", "pt"},
                         {"kanc_source", m->src},
                         {"kanc_model", m->path},
                         {"kanc_config", config},
                         {"kanc_tokenizer", tok ? tok_spec(tok) : "bytes"},
                         {"kanc_tokenizer_hash", hash},
                         {"kanc_step", step_text}};
        path = model_file(dir);
        rc = st_write(path, e, k, meta, (int)(sizeof meta / sizeof *meta), err, errlen);
        free(path);
        free(config);
        for (int i = 0; i < k; i++) free(names[i]), free(owned[i]);
        if (rc) goto out;
    }
    /* 3. the previous step's optimizer file is no longer needed */
    if (had_prev && prev.step != step) {
        old_optim = ckpt_optimizer_path(dir, prev.step);
        unlink(old_optim);
    }
out:
    if (had_prev) ckpt_info_free(&prev);
    free(old_optim);
    free(params);
    free(buffers);
    free(pm);
    free(pv);
    free(e);
    free(names);
    free(owned);
    return rc;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->source);
    free(info->model_path);
    free(info->tokenizer);
    free(info->tokenizer_hash);
    free(info->file);
    cJSON_Delete(info->config);
    memset(info, 0, sizeof *info);
}

/* f's kanc_step: a plain integer in [0, KANC_INT_MAX] */
static int read_step(const StFile *f, int64_t *step, char *err, size_t errlen)
{
    const char *text = st_meta(f, "kanc_step");
    if (!text) {
        set_err(err, errlen, "%s: no kanc_step in the metadata", f->path);
        return -1;
    }
    char *what = xasprintf("%s: kanc_step", f->path);
    int rc = parse_int_strict(what, text, 0, KANC_INT_MAX, step, err, errlen);
    free(what);
    return rc;
}

static int is_fingerprint(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == TOK_FINGERPRINT_HEX - 1 && !s[n];
}

int ckpt_info(const char *dir, CkptInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    char *path = model_file(dir);
    StFile f;
    if (st_open(&f, path, err, errlen)) {
        free(path);
        return -1;
    }
    const char *src = st_meta(&f, "kanc_source"), *cfg = st_meta(&f, "kanc_config");
    const char *tok = st_meta(&f, "kanc_tokenizer"), *hash = st_meta(&f, "kanc_tokenizer_hash");
    const char *mp = st_meta(&f, "kanc_model");
    cJSON *config = cfg ? cJSON_Parse(cfg) : NULL;
    int64_t step = 0;
    char cerr[512];
    int rc = -1;
    if (!src || !cfg)
        set_err(err, errlen, "%s: not a kanc checkpoint (its metadata has no %s)", path,
                !src ? "kanc_source" : "kanc_config");
    else if (!cJSON_IsObject(config))
        set_err(err, errlen, "%s: kanc_config is not a JSON object of hyperparameters", path);
    else if (config_check(config, cerr, sizeof cerr))
        set_err(err, errlen, "%s: kanc_config: %s", path, cerr);
    else if (hash && !is_fingerprint(hash))
        set_err(err, errlen, "%s: kanc_tokenizer_hash needs 16 lowercase hex digits, got '%s'", path,
                hash);
    else if (!read_step(&f, &step, err, errlen))
        rc = 0;
    if (rc) {
        cJSON_Delete(config);
        st_close(&f);
        free(path);
        return -1;
    }
    info->source = xstrdup(src);
    info->model_path = xstrdup(mp ? mp : path);
    info->config = config;
    info->tokenizer = xstrdup(tok ? tok : "bytes");
    info->tokenizer_hash = hash ? xstrdup(hash) : NULL;
    info->file = path;
    info->step = step;
    st_close(&f);
    return 0;
}

int ckpt_check_tokenizer(const CkptInfo *info, const Tokenizer *tok, int64_t model_vocab,
                         const char *prog, FILE *warn, char *err, size_t errlen)
{
    char now[TOK_FINGERPRINT_HEX];
    tok_fingerprint_hex(tok, now);
    if (!info->tokenizer_hash || !strcmp(now, info->tokenizer_hash)) return 0;
    int vocab = tok_vocab_size(tok);
    if (model_vocab > 0 && vocab > model_vocab) {
        int id = (int)model_vocab;
        while (id < vocab - 1 && !tok_has_id(tok, id)) id++; /* the last id always exists */
        char what[160];
        tok_describe_id(tok, id, what, sizeof what);
        set_err(err, errlen,
                "%s: the tokenizer %s changed since training (fingerprint %s, the checkpoint's %s): it "
                "has %d ids and the model's embedding %lld, so token %s (id %d) would reach past it; "
                "use the tokenizer files the model was trained with",
                info->file, tok_spec(tok), now, info->tokenizer_hash, vocab, (long long)model_vocab,
                what, id);
        return -1;
    }
    fprintf(warn,
            "%s: warning: the tokenizer %s changed since %s was trained (fingerprint %s, the "
            "checkpoint's %s): its %d ids fit the model, but may now stand for other text\n",
            prog, tok_spec(tok), info->file, now, info->tokenizer_hash, vocab);
    return 0;
}

void ckpt_sets(const CkptInfo *info, ConfigSets *cs)
{
    config_to_sets(info->config, cs);
    for (int i = 0; i < cs->n; i++) cs->sets[i].soft = 0;
}

/* area <- tensors prefix+name of every parameter: F32, the parameter's exact
   shape, values checked for `kind` */
static int load_area(Model *m, const StFile *f, const char *prefix, KancArea a, ModelValues kind,
                     char *err, size_t errlen)
{
    float *host = xcalloc((size_t)device_area_elems(m->dev, a) + 1, 4);
    char name[512], s1[96], s2[96];
    int rc = 0;
    for (int i = 0; i < m->g.n && !rc; i++) {
        const GNode *x = &m->g.nodes[i];
        if (x->op != OP_PARAM) continue;
        snprintf(name, sizeof name, "%s%s", prefix, x->name);
        const StTensor *t = st_find(f, name);
        int same = t && t->rank == x->shape.nd;
        for (int d = 0; same && d < t->rank; d++) same = t->shape[d] == x->shape.d[d];
        if (!t) {
            set_err(err, errlen, "%s: missing '%s' %s", f->path, name, shape_str(&x->shape, s2, sizeof s2));
            rc = -1;
        } else if (!same) {
            set_err(err, errlen, "%s: '%s' has shape %s in the file, the model needs %s", f->path, name,
                    st_shape_str(t, s1, sizeof s1), shape_str(&x->shape, s2, sizeof s2));
            rc = -1;
        } else if (t->dtype != ST_F32) {
            set_err(err, errlen, "%s: '%s' is %s, optimizer state is F32", f->path, name,
                    st_dtype_name(t->dtype));
            rc = -1;
        } else {
            st_read_f32(t, host + m->plan.pos[i]);
            rc = model_check_values(m, i, host + m->plan.pos[i], kind, f->path, name, err, errlen);
        }
    }
    if (!rc) m->dev->ops->write_area(m->dev, a, host);
    free(host);
    return rc;
}

int ckpt_load(const char *dir, Model *m, cJSON **train_state, char *err, size_t errlen)
{
    char *path = model_file(dir);
    StFile f;
    int rc = st_open(&f, path, err, errlen);
    free(path);
    if (rc) return -1;
    int64_t step = 0;
    KanGridHold hold = {0}; /* a finer grid than the checkpoint's: the splines refitted onto it */
    rc = read_step(&f, &step, err, errlen);
    int extended = rc ? 0 : kan_grid_extend_weights(m, &f, &hold, stderr, err, errlen);
    if (extended < 0) rc = -1;
    if (!rc) rc = model_load_state(m, &f, NULL, err, errlen);
    st_close(&f);
    kan_grid_hold_free(&hold);
    if (rc || !train_state) return rc;

    path = ckpt_optimizer_path(dir, step);
    if (st_open(&f, path, err, errlen)) {
        free(path);
        return -1;
    }
    int64_t ostep = 0;
    const char *state = st_meta(&f, "kanc_train");
    *train_state = state ? cJSON_Parse(state) : NULL;
    if (read_step(&f, &ostep, err, errlen)) {
        rc = -1;
    } else if (ostep != step) {
        set_err(err, errlen, "%s: kanc_step is %lld: not the optimizer state of step %lld", path,
                (long long)ostep, (long long)step);
        rc = -1;
    } else if (!state) {
        set_err(err, errlen, "%s: no kanc_train (the training state) in the metadata", path);
        rc = -1;
    } else if (!cJSON_IsObject(*train_state)) {
        set_err(err, errlen, "%s: kanc_train is not a JSON object (the training state)", path);
        rc = -1;
    }
    if (!rc && extended) kan_grid_extend_moments(m, &f, &hold);
    if (!rc) rc = load_area(m, &f, "m.", AREA_M, MODEL_VALUES_M, err, errlen);
    if (!rc) rc = load_area(m, &f, "v.", AREA_V, MODEL_VALUES_V, err, errlen);
    if (!rc) m->dev->step = step;
    if (rc) {
        cJSON_Delete(*train_state);
        *train_state = NULL;
    }
    st_close(&f);
    kan_grid_hold_free(&hold);
    free(path);
    return rc;
}
