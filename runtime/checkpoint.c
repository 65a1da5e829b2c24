/* checkpoint.c: model and optimizer state to and from safetensors, atomically. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static char *model_file(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISREG(st.st_mode)) return xstrdup(dir);
    return xasprintf("%s/model.safetensors", dir);
}

char *ckpt_optimizer_path(const char *dir, int64_t step)
{
    return xasprintf("%s/optimizer-%lld.safetensors", dir, (long long)step);
}

/* one entry per parameter (and buffer) of an area copied to the host */
static int add_entries(Model *m, StEntry *e, int n, const char *prefix, const void *area,
                       int params, char **names)
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
        n++;
    }
    return n;
}

static void *read_area(Model *m, DevArea a)
{
    void *p = xmalloc((size_t)(device_area_elems(m->dev, a) + 1) * m->plan.real_size);
    m->dev->ops->read_area(m->dev, a, p);
    return p;
}

int ckpt_save(const char *dir, Model *m, const char *tokenizer, const cJSON *train_state,
              char *err, size_t errlen)
{
    if (m->plan.real_size != 4) {
        snprintf(err, errlen, "checkpoints hold float32 state");
        return -1;
    }
    char derr[512];
    if (make_dirs(dir, derr, sizeof derr)) {
        snprintf(err, errlen, "%s: %s", dir, derr);
        return -1;
    }
    int64_t step = m->dev->step;
    int n = m->g.n, rc = 0;
    StEntry *e = xcalloc((size_t)n, sizeof *e);
    char **names = xcalloc((size_t)n, sizeof *names);
    char step_text[32];
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    char *path = NULL, *old_optim = NULL;
    void *pm = NULL, *pv = NULL;
    CkptInfo prev = {0};
    char perr[256];
    int had_prev = ckpt_info(dir, &prev, perr, sizeof perr) == 0;

    if (train_state) { /* 1. the optimizer file of this step */
        pm = read_area(m, AREA_M);
        pv = read_area(m, AREA_V);
        int k = add_entries(m, e, 0, "m.", pm, 1, names);
        k = add_entries(m, e, k, "v.", pv, 1, names);
        char *state = cJSON_PrintUnformatted(train_state);
        StMeta meta[] = {{"kanc_step", step_text}, {"kanc_train", state}};
        path = ckpt_optimizer_path(dir, step);
        rc = st_write(path, e, k, meta, 2, err, errlen);
        free(state);
        for (int i = 0; i < k; i++) free(names[i]);
        free(path);
        if (rc) goto out;
    }
    { /* 2. the model, which names the step */
        void *params = read_area(m, AREA_PARAMS), *buffers = read_area(m, AREA_BUFFERS);
        int k = add_entries(m, e, 0, NULL, params, 1, names);
        k = add_entries(m, e, k, NULL, buffers, 0, names);
        cJSON *cfg = config_from_params(&m->params);
        char *config = cJSON_PrintUnformatted(cfg);
        cJSON_Delete(cfg);
        StMeta meta[] = {{"format", "pt"},
                         {"kanc_source", m->src},
                         {"kanc_model", m->path},
                         {"kanc_config", config},
                         {"kanc_tokenizer", tokenizer ? tokenizer : "bytes"},
                         {"kanc_step", step_text}};
        path = model_file(dir);
        rc = st_write(path, e, k, meta, 6, err, errlen);
        free(path);
        free(config);
        free(params);
        free(buffers);
        for (int i = 0; i < k; i++) free(names[i]);
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
    free(pm);
    free(pv);
    free(e);
    free(names);
    return rc;
}

void ckpt_info_free(CkptInfo *info)
{
    free(info->source);
    free(info->model_path);
    free(info->tokenizer);
    cJSON_Delete(info->config);
    memset(info, 0, sizeof *info);
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
    const char *step = st_meta(&f, "kanc_step"), *tok = st_meta(&f, "kanc_tokenizer");
    const char *mp = st_meta(&f, "kanc_model");
    cJSON *config = cfg ? cJSON_Parse(cfg) : NULL;
    char *end = NULL;
    long long s = step ? strtoll(step, &end, 10) : -1;
    if (!src || !config || !cJSON_IsObject(config) || !step || *end || s < 0) {
        snprintf(err, errlen,
                 "%s: not a kanc checkpoint (its metadata needs kanc_source, kanc_config and "
                 "kanc_step)", path);
        cJSON_Delete(config);
        st_close(&f);
        free(path);
        return -1;
    }
    info->source = xstrdup(src);
    info->model_path = xstrdup(mp ? mp : path);
    info->config = config;
    info->tokenizer = xstrdup(tok ? tok : "bytes");
    info->step = s;
    st_close(&f);
    free(path);
    return 0;
}

void ckpt_sets(const CkptInfo *info, ConfigSets *cs)
{
    config_to_sets(info->config, cs);
    for (int i = 0; i < cs->n; i++) cs->sets[i].soft = 0;
}

/* area <- tensors prefix+name of every parameter, shapes checked */
static int load_area(Model *m, const StFile *f, const char *prefix, DevArea a, char *err,
                     size_t errlen)
{
    void *host = xcalloc((size_t)device_area_elems(m->dev, a) + 1, 4);
    char name[512], s1[96], s2[96];
    for (int i = 0; i < m->g.n; i++) {
        const GNode *x = &m->g.nodes[i];
        if (x->op != OP_PARAM) continue;
        snprintf(name, sizeof name, "%s%s", prefix, x->name);
        const StTensor *t = st_find(f, name);
        if (!t || t->numel != shape_numel(&x->shape)) {
            snprintf(err, errlen, "%s: %s '%s'%s%s", f->path, t ? "wrong shape for" : "missing",
                     name, t ? st_shape_str(t, s1, sizeof s1) : "",
                     t ? shape_str(&x->shape, s2, sizeof s2) : "");
            free(host);
            return -1;
        }
        st_read_f32(t, (float *)host + m->plan.pos[i]);
    }
    m->dev->ops->write_area(m->dev, a, host);
    free(host);
    return 0;
}

int ckpt_load(const char *dir, Model *m, cJSON **train_state, char *err, size_t errlen)
{
    char *path = model_file(dir);
    StFile f;
    int rc = st_open(&f, path, err, errlen);
    free(path);
    if (rc) return -1;
    rc = model_load_state(m, &f, NULL, err, errlen);
    const char *step_text = st_meta(&f, "kanc_step");
    int64_t step = step_text ? strtoll(step_text, NULL, 10) : 0;
    st_close(&f);
    if (rc || !train_state) return rc;

    path = ckpt_optimizer_path(dir, step);
    if (st_open(&f, path, err, errlen)) {
        free(path);
        return -1;
    }
    const char *ostep = st_meta(&f, "kanc_step"), *state = st_meta(&f, "kanc_train");
    *train_state = state ? cJSON_Parse(state) : NULL;
    if (!ostep || strtoll(ostep, NULL, 10) != step || !*train_state) {
        snprintf(err, errlen, "%s: not the optimizer state of step %lld", path, (long long)step);
        rc = -1;
    }
    if (!rc) rc = load_area(m, &f, "m.", AREA_M, err, errlen);
    if (!rc) rc = load_area(m, &f, "v.", AREA_V, err, errlen);
    if (!rc) m->dev->step = step;
    if (rc) {
        cJSON_Delete(*train_state);
        *train_state = NULL;
    }
    st_close(&f);
    free(path);
    return rc;
}
