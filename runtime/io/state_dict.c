/* state_dict.c: strict loading by state_dict name, every mismatch reported. */
#include "state_dict.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_grid.h"
#include "kan_op.h"
#include "util.h"

int sd_is_mask_name(const char *name)
{
    size_t n = strlen(name);
    return n >= 9 && !strcmp(name + n - 9, "attn.bias") && (n == 9 || name[n - 10] == '.');
}

/* the problems of one kind: a growing list, one line each */
typedef struct {
    char *text;
    size_t len, cap;
    int n;
} Problems;

enum { P_MISSING, P_EXTRA, P_SHAPE, P_DTYPE, P_TIED, P_KINDS };

static void add_line(Problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(Problems *p, const char *fmt, ...)
{
    p->n++;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap); /* a name and two shapes fit */
    va_end(ap);
    size_t n = strlen(line);
    if (p->len + n + 2 > p->cap) {
        p->cap = (p->len + n + 2) * 2;
        p->text = xrealloc(p->text, p->cap);
    }
    p->text[p->len++] = '\n';
    memcpy(p->text + p->len, line, n + 1);
    p->len += n;
}

static int is_float(StDtype d) { return d == ST_F32 || d == ST_F64 || d == ST_F16 || d == ST_BF16; }

static int same_shape(const StTensor *t, const GShape *s)
{
    if (t->rank != s->nd) return 0;
    for (int i = 0; i < s->nd; i++)
        if (t->shape[i] != s->d[i]) return 0;
    return 1;
}

/* the model's parameter or buffer called name, -1 if none */
static int state_node(const Model *m, const char *name)
{
    int i = graph_find(&m->g, OP_PARAM, name);
    return i >= 0 ? i : graph_find(&m->g, OP_BUFFER, name);
}

/* the file's tensor under a tied name standing for parameter node i (nanoGPT's
   state_dict lists its head as lm_head.weight too), NULL if none */
static const StTensor *tied_tensor(const Graph *g, const StFile *f, int i)
{
    for (int a = 0; a < g->n_alias; a++) {
        const StTensor *t = g->alias_param[a] == i ? st_find(f, g->alias_name[a]) : NULL;
        if (t) return t;
    }
    return NULL;
}

/* a tied name's tensor beside the parameter's own: it must hold the same values
   (as a tied PyTorch module's state_dict does); a problem line if not */
static void check_tied_copy(const Model *m, const StTensor *t, int i, const void *area, Problems *p)
{
    const GNode *n = &m->g.nodes[i];
    char a[96], b[96];
    if (!same_shape(t, &n->shape)) {
        add_line(&p[P_SHAPE], "  shape:   %s (tied to %s) is %s in the file, the model needs %s", t->name, n->name,
                 st_shape_str(t, b, sizeof b), shape_str(&n->shape, a, sizeof a));
        return;
    }
    if (!is_float(t->dtype)) {
        add_line(&p[P_DTYPE], "  dtype:   %s (tied to %s) is %s, a weight needs F32, F64, F16 or BF16", t->name,
                 n->name, st_dtype_name(t->dtype));
        return;
    }
    int64_t k = shape_numel(&n->shape), at = -1;
    double worst = 0;
    if (m->plan.real_size == 8) {
        double *v = xmalloc(sizeof(double) * (size_t)(k ? k : 1));
        st_read_f64(t, v);
        for (int64_t e = 0; e < k; e++)
            if (!(v[e] == ((const double *)area)[e]) && (at < 0 || fabs(v[e] - ((const double *)area)[e]) > worst))
                at = e, worst = fabs(v[e] - ((const double *)area)[e]);
        free(v);
    } else {
        float *v = xmalloc(sizeof(float) * (size_t)(k ? k : 1));
        st_read_f32(t, v);
        for (int64_t e = 0; e < k; e++)
            if (!(v[e] == ((const float *)area)[e]) && (at < 0 || fabs((double)v[e] - ((const float *)area)[e]) > worst))
                at = e, worst = fabs((double)v[e] - ((const float *)area)[e]);
        free(v);
    }
    if (at >= 0)
        add_line(&p[P_TIED], "  tied:    %s differs from %s, the parameter it is tied to (by %g at element %lld)",
                 t->name, n->name, worst, (long long)at);
}

int sd_load(Model *m, const char *path, char *err, size_t errlen)
{
    StFile f;
    if (st_open(&f, path, err, errlen)) return -1;
    KanGridHold hold = {0}; /* a finer grid than the file's: the splines refitted onto it */
    if (kan_grid_extend_weights(m, &f, &hold, stderr, err, errlen) < 0) {
        st_close(&f);
        return -1;
    }
    const Graph *g = &m->g;
    Device *d = m->dev;
    size_t rs = m->plan.real_size;
    void *params = xcalloc((size_t)m->plan.n_param_elems + 1, rs);
    void *buffers = xcalloc((size_t)m->plan.n_buffer_elems + 1, rs);
    d->ops->read_area(d, AREA_PARAMS, params); /* the masks keep their values */
    d->ops->read_area(d, AREA_BUFFERS, buffers);
    Problems p[P_KINDS] = {{0}};
    char a[96], b[96];
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        if ((n->op != OP_PARAM && n->op != OP_BUFFER) || n->optional) continue;
        const StTensor *t = st_find(&f, n->name);
        if (!t && n->op == OP_PARAM) t = tied_tensor(g, &f, i); /* a file with the tied name only */
        char *area = (char *)(n->op == OP_PARAM ? params : buffers) + m->plan.pos[i] * (int64_t)rs;
        if (!t) {
            add_line(&p[P_MISSING], "  missing: %s %s (%s)", n->name, shape_str(&n->shape, a, sizeof a),
                     n->op == OP_PARAM ? "parameter" : "buffer");
        } else if (!same_shape(t, &n->shape)) {
            add_line(&p[P_SHAPE], "  shape:   %s is %s in the file, the model needs %s", n->name,
                     st_shape_str(t, b, sizeof b), shape_str(&n->shape, a, sizeof a));
        } else if (kan_grid_is_i64(n) && t->dtype != ST_I64) {
            add_line(&p[P_DTYPE], "  dtype:   %s is %s, an integer KAN grid needs I64 (as PyTorch stores it)",
                     n->name, st_dtype_name(t->dtype));
        } else if (!kan_grid_is_i64(n) && !is_float(t->dtype)) {
            add_line(&p[P_DTYPE], "  dtype:   %s is %s, a weight needs F32, F64, F16 or BF16", n->name,
                     st_dtype_name(t->dtype));
        } else if (rs == 8) {
            st_read_f64(t, (double *)area);
        } else {
            st_read_f32(t, (float *)area);
        }
    }
    for (int k = 0; k < st_num_tensors(&f); k++) {
        const StTensor *t = st_tensor_at(&f, k);
        int i = state_node(m, t->name), tied = i < 0 ? graph_alias_param(g, t->name) : -1;
        if (tied >= 0) { /* loaded from it (the parameter's own name is absent), or a copy to check */
            if (st_find(&f, g->nodes[tied].name))
                check_tied_copy(m, t, tied, (char *)params + m->plan.pos[tied] * (int64_t)rs, p);
        } else if (i < 0 && !sd_is_mask_name(t->name)) { /* the model's own masks are optional buffers */
            add_line(&p[P_EXTRA], "  extra:   %s %s (%s), not in the model", t->name, st_shape_str(t, b, sizeof b),
                     st_dtype_name(t->dtype));
        }
    }
    int rc = 0;
    if (p[P_MISSING].n + p[P_EXTRA].n + p[P_SHAPE].n + p[P_DTYPE].n + p[P_TIED].n) {
        static const char *const one[P_KINDS] = {"missing name", "extra name", "shape mismatch",
                                                 "dtype the model cannot take", "tied copy that differs"};
        static const char *const many[P_KINDS] = {"missing names", "extra names", "shape mismatches",
                                                  "dtypes the model cannot take", "tied copies that differ"};
        char counts[256] = "";
        size_t w = 0;
        for (int j = 0; j < P_KINDS; j++)
            if (p[j].n)
                w += (size_t)snprintf(counts + w, sizeof counts - w, "%s%d %s", w ? ", " : "", p[j].n,
                                      p[j].n == 1 ? one[j] : many[j]);
        int full = snprintf(err, errlen, "%s does not hold the state_dict of %s (%s):%s%s%s%s%s", path,
                            m->path, counts, p[0].text ? p[0].text : "", p[1].text ? p[1].text : "",
                            p[2].text ? p[2].text : "", p[3].text ? p[3].text : "", p[4].text ? p[4].text : "");
        if (full >= 0 && (size_t)full >= errlen && errlen > 4) strcpy(err + errlen - 4, "...");
        rc = -1;
    }
    /* every value the model will run with, from the file or derived */
    for (int i = 0; i < g->n && !rc; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER) continue;
        const char *area = n->op == OP_PARAM ? params : buffers;
        rc = model_check_values(m, i, area + m->plan.pos[i] * (int64_t)rs, MODEL_VALUES_STATE, path,
                                n->name, err, errlen);
    }
    if (!rc) {
        d->ops->write_area(d, AREA_PARAMS, params);
        d->ops->write_area(d, AREA_BUFFERS, buffers);
    }
    for (int j = 0; j < P_KINDS; j++) free(p[j].text);
    free(params);
    free(buffers);
    st_close(&f);
    kan_grid_hold_free(&hold);
    return rc;
}
