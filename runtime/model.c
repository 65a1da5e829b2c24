/* model.c: compile a .kdl into a runnable CPU model; state in and out by name. */
#include "model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "init.h"
#include "util.h"

/* MODEL_GRAD_OUTPUT: an input "d<output>" shaped like the first output */
static int add_seed_input(Graph *g)
{
    const GNode *out = &g->nodes[g->output];
    GNode n = {0};
    n.op = OP_INPUT;
    n.shape = out->shape;
    n.dtype = DT_REAL;
    n.fwd = -1;
    n.init_ref = -1;
    char *name = xasprintf("d%s", g->output_names[0]);
    n.name = name;
    int id = graph_add(g, &n);
    free(name);
    return id;
}

int model_compile(Model *m, const char *path, const char *src, const KdlSet *sets, int nsets,
                  ModelMode mode, double clip, size_t real_size, FILE *diag)
{
    memset(m, 0, sizeof *m);
    m->path = xstrdup(path);
    m->mode = mode;
    m->seed_input = -1;
    if (src) {
        m->src = xstrdup(src);
        m->src_len = strlen(src);
    } else if (!(m->src = read_file(path, &m->src_len))) {
        fprintf(diag, "%s: error: cannot read the model: %s\n", path, strerror(errno));
        return -1;
    }
    graph_init(&m->g);
    if (kdl_compile(path, m->src, m->src_len, sets, nsets, &m->g, &m->params, diag)) return -1;
    Graph *g = &m->g;
    g->n_forward = g->n;
    char err[256];
    if (mode == MODEL_TRAIN) {
        if (g->loss < 0) {
            fprintf(diag, "%s: error: training needs the model to return a scalar named 'loss'\n",
                    path);
            return -1;
        }
        if (autodiff(g, g->loss, -1, 0, err, sizeof err)) {
            fprintf(diag, "%s: error: %s\n", path, err);
            return -1;
        }
        autodiff_add_optimizer(g, clip);
    } else if (mode == MODEL_GRAD_OUTPUT) {
        if (g->output < 0) {
            fprintf(diag, "%s: error: the model returns nothing\n", path);
            return -1;
        }
        m->seed_input = add_seed_input(g);
        g->n_forward = g->n;
        if (autodiff(g, g->output, m->seed_input, 1, err, sizeof err)) {
            fprintf(diag, "%s: error: %s\n", path, err);
            return -1;
        }
    }
    plan_build(&m->plan, g, real_size);
    cpu_exec_init(&m->ex, &m->plan);
    init_buffers(&m->ex);
    return 0;
}

void model_free(Model *m)
{
    if (m->ex.arena) cpu_exec_free(&m->ex);
    if (m->plan.off) plan_free(&m->plan);
    graph_free(&m->g);
    kdl_params_free(&m->params);
    free(m->path);
    free(m->src);
    memset(m, 0, sizeof *m);
}

static int same_shape(const StTensor *t, const GShape *s)
{
    /* a scalar and a one-element vector are not interchangeable, except that
       torch saves [] for 0-d tensors: compare dims exactly */
    if (t->rank != s->nd) return 0;
    for (int i = 0; i < s->nd; i++)
        if (t->shape[i] != s->d[i]) return 0;
    return 1;
}

static void read_into(Model *m, void *dst, const StTensor *t)
{
    if (m->ex.rs == 8)
        st_read_f64(t, dst);
    else
        st_read_f32(t, dst);
}

int model_load_state(Model *m, const StFile *f, char *err, size_t errlen)
{
    Graph *g = &m->g;
    char a[96], b[96];
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER) continue;
        const StTensor *t = st_find(f, n->name);
        if (!t) {
            if (n->optional) continue;
            snprintf(err, errlen, "%s: missing %s '%s' %s", f->path,
                     n->op == OP_PARAM ? "parameter" : "buffer", n->name,
                     shape_str(&n->shape, a, sizeof a));
            return -1;
        }
        if (!same_shape(t, &n->shape)) {
            snprintf(err, errlen, "%s: '%s' has shape %s in the file, the model needs %s", f->path,
                     n->name, st_shape_str(t, b, sizeof b), shape_str(&n->shape, a, sizeof a));
            return -1;
        }
        read_into(m, cpu_exec_value(&m->ex, i), t);
    }
    return 0;
}

int model_input(const Model *m, const char *name)
{
    return graph_find(&m->g, OP_INPUT, name);
}

int model_set_input(Model *m, int node, const StTensor *t, char *err, size_t errlen)
{
    const GNode *n = &m->g.nodes[node];
    char a[96], b[96];
    if (!same_shape(t, &n->shape)) {
        snprintf(err, errlen, "input '%s' has shape %s in the file, the model needs %s", n->name,
                 st_shape_str(t, b, sizeof b), shape_str(&n->shape, a, sizeof a));
        return -1;
    }
    void *dst = cpu_exec_value(&m->ex, node);
    if (n->dtype == DT_I32) {
        if (st_read_i32(t, dst)) {
            snprintf(err, errlen, "input '%s': token ids must be integers", n->name);
            return -1;
        }
        /* the vocabulary: rows of the embedding that reads this input */
        int64_t vocab = -1, lo = -1; /* targets may be -1 (ignored); embedded ids may not */
        for (int i = 0; i < m->g.n_forward; i++) {
            const GNode *e = &m->g.nodes[i];
            if (e->op == OP_EMBEDDING && e->in[0] == node) {
                vocab = m->g.nodes[e->in[1]].shape.d[0];
                lo = 0;
            }
            if (e->op == OP_CROSS_ENTROPY && e->in[1] == node)
                vocab = shape_last(&m->g.nodes[e->in[0]].shape);
        }
        const int32_t *ids = dst;
        for (int64_t i = 0; i < t->numel; i++)
            if (ids[i] < lo || (vocab > 0 && ids[i] >= vocab)) {
                snprintf(err, errlen, "input '%s': token id %d at position %lld is outside [%lld, %lld)",
                         n->name, ids[i], (long long)i, (long long)lo, (long long)vocab);
                return -1;
            }
    } else {
        read_into(m, dst, t);
    }
    return 0;
}

static int64_t copy_out(Model *m, const void *src, int64_t numel, double *dst)
{
    for (int64_t i = 0; i < numel; i++)
        dst[i] = m->ex.rs == 8 ? ((const double *)src)[i] : ((const float *)src)[i];
    return numel;
}

int64_t model_read_value(Model *m, int i, double *dst)
{
    return copy_out(m, cpu_exec_value(&m->ex, i), shape_numel(&m->g.nodes[i].shape), dst);
}

int64_t model_read_grad(Model *m, int i, double *dst)
{
    return copy_out(m, cpu_exec_grad(&m->ex, i), shape_numel(&m->g.nodes[i].shape), dst);
}
