/* model.c: compile a .kdl into a runnable model on a device; state in and out by name. */
#include "model.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "autodiff.h"
#include "cuda_api.h"
#include "init.h"
#include "kan_basis.h"
#include "kan_op.h"
#include "util.h"

/* MODEL_GRAD_OUTPUT: an input "d<output>" shaped like the first output */
static int add_seed_input(Graph *g)
{
    GNode n = {0};
    n.op = OP_INPUT;
    n.shape = g->nodes[g->output].shape;
    n.dtype = DT_REAL;
    n.fwd = -1;
    n.init_ref = -1;
    n.name = xasprintf("d%s", g->output_names[0]);
    int id = graph_add(g, &n);
    free(n.name);
    return id;
}

static int differentiate(Model *m, FILE *diag)
{
    Graph *g = &m->g;
    char err[256];
    if (m->mode == MODEL_TRAIN) {
        if (g->loss < 0) {
            fprintf(diag, "%s: error: training needs the model to return a scalar named 'loss'\n",
                    m->path);
            return -1;
        }
        if (autodiff(g, g->loss, -1, 0, err, sizeof err)) goto fail;
        autodiff_add_optimizer(g);
    } else if (m->mode == MODEL_GRAD_OUTPUT) {
        if (g->output < 0) {
            fprintf(diag, "%s: error: the model returns nothing\n", m->path);
            return -1;
        }
        m->seed_input = add_seed_input(g);
        g->n_forward = g->n;
        if (autodiff(g, g->output, m->seed_input, 1, err, sizeof err)) goto fail;
    }
    return 0;
fail:
    fprintf(diag, "%s: error: %s\n", m->path, err);
    return -1;
}

/* model_compile for a prebuilt step (path names a cubin, kanc -o): the model
   is rebuilt from the artifact's source and hyperparameters (overrides in sets:
   hard ones are applied and must agree with the cubin, soft ones are ignored),
   checked against the embedded plan, and opened on `device`: "cuda" loads the
   cubin itself; "cpu", "emu" and "auto" (without a GPU) run the same model
   from its source. mode must be MODEL_TRAIN. */
static int compile_prebuilt(Model *m, const char *path, const KdlSet *sets, int nsets, ModelMode mode,
                            size_t real_size, const char *device, FILE *diag)
{
    char err[1024];
    Artifact a;
    memset(m, 0, sizeof *m);
    if (artifact_read(&a, path, err, sizeof err)) {
        fprintf(diag, "error: %s\n", err);
        return -1;
    }
    int rc = -1;
    ConfigSets cs = {0};
    if (mode != MODEL_TRAIN || real_size != 4) {
        fprintf(diag, "error: %s holds a float training step; give the model's .kdl for this command\n",
                path);
        goto out;
    }
    const char *model_path;
    const char *src = artifact_model_source(&a, &model_path);
    artifact_model_sets(&a, &cs);
    for (int i = 0; i < nsets; i++)
        if (!sets[i].soft) config_sets_add(&cs, sets[i].name, sets[i].value, 0);
    if (model_compile(m, model_path, src, cs.sets, cs.n, MODEL_TRAIN, 4, "none", diag)) goto out;
    /* laid out as the cubin was (attention's P in bf16 under bf16 operands) for the check */
    const char *prec = artifact_str(&a, "precision");
    int cubin_bf16 = prec && !strcmp(prec, "bf16");
    const char *dev = device_resolve(device, 4);
    plan_free(&m->plan);
    plan_build_for(&m->plan, &m->g, 4, cubin_bf16);
    if (artifact_check_plan(&a, &m->plan, err, sizeof err)) {
        fprintf(diag, "error: %s\n", err);
        goto out;
    }
    if (strcmp(dev, "cuda") && m->plan.gemm_bf16 != device_gemm_bf16(dev, 4)) { /* the source on another device */
        plan_free(&m->plan);
        plan_build_for(&m->plan, &m->g, 4, device_gemm_bf16(dev, 4));
    }
    if (!strcmp(dev, "cuda")) {
        CudaProgram prog;
        if (artifact_program(&a, &m->plan, &prog, err, sizeof err) == 0) {
            prog.n_nodes = m->plan.g->n;
            m->dev = device_cuda_new_prebuilt(&m->plan, &prog, a.data, artifact_sm(&a), a.path, err, sizeof err);
        }
    } else {
        m->dev = device_open(&m->plan, dev, err, sizeof err);
    }
    if (!m->dev) {
        fprintf(diag, "error: %s\n", err);
        goto out;
    }
    void *buffers = xcalloc((size_t)m->plan.n_buffer_elems + 1, 4);
    init_buffers(&m->plan, buffers);
    m->dev->ops->write_area(m->dev, AREA_BUFFERS, buffers);
    free(buffers);
    rc = 0;
out:
    config_sets_free(&cs);
    artifact_free(&a);
    return rc;
}

int model_compile(Model *m, const char *path, const char *src, const KdlSet *sets, int nsets,
                  ModelMode mode, size_t real_size, const char *device, FILE *diag)
{
    /* a prebuilt step (kanc -o step.cubin): the model comes from its plan */
    if (!src && artifact_is_cubin(path))
        return compile_prebuilt(m, path, sets, nsets, mode, real_size, device, diag);
    memset(m, 0, sizeof *m);
    m->path = xstrdup(path);
    m->mode = mode;
    m->seed_input = -1;
    graph_init(&m->g);
    char why[256];
    if (src) {
        m->src = xstrdup(src);
        m->src_len = strlen(src);
    } else if (!(m->src = read_file_why(path, &m->src_len, why, sizeof why))) {
        fprintf(diag, "%s: error: cannot read the model: %s\n", path, why);
        return -1;
    }
    if (kdl_compile(path, m->src, m->src_len, sets, nsets, &m->g, &m->params, diag)) return -1;
    m->g.n_forward = m->g.n;
    if (differentiate(m, diag)) return -1;
    plan_build_for(&m->plan, &m->g, real_size, device_gemm_bf16(device, real_size));
    if (!strcmp(device, "none")) return 0; /* the caller opens the device (a prebuilt cubin) */
    char derr[1024];
    if (!(m->dev = device_open(&m->plan, device, derr, sizeof derr))) { /* cpu, cuda, emu, auto */
        fprintf(diag, "error: %s\n", derr);
        return -1;
    }
    void *buffers = xcalloc((size_t)m->plan.n_buffer_elems + 1, real_size);
    init_buffers(&m->plan, buffers);
    m->dev->ops->write_area(m->dev, AREA_BUFFERS, buffers);
    free(buffers);
    return 0;
}

int model_init_params(Model *m, uint64_t seed, char *err, size_t errlen)
{
    size_t rs = m->plan.real_size;
    void *params = xcalloc((size_t)m->plan.n_param_elems + 1, rs);
    void *buffers = xcalloc((size_t)m->plan.n_buffer_elems + 1, rs);
    int rc = init_state(&m->plan, params, buffers, seed, err, errlen);
    if (!rc) {
        Device *d = m->dev;
        d->ops->write_area(d, AREA_PARAMS, params);
        d->ops->write_area(d, AREA_BUFFERS, buffers);
        memset(params, 0, (size_t)m->plan.n_param_elems * rs);
        d->ops->write_area(d, AREA_M, params);
        d->ops->write_area(d, AREA_V, params);
        d->step = 0;
    }
    free(params);
    free(buffers);
    return rc;
}

void model_free(Model *m)
{
    if (m->dev) m->dev->ops->destroy(m->dev);
    if (m->plan.off) plan_free(&m->plan);
    graph_free(&m->g);
    kdl_params_free(&m->params);
    free(m->path);
    free(m->src);
    memset(m, 0, sizeof *m);
}

static int same_shape(const StTensor *t, const GShape *s)
{
    if (t->rank != s->nd) return 0;
    for (int i = 0; i < s->nd; i++)
        if (t->shape[i] != s->d[i]) return 0;
    return 1;
}

static void read_real(size_t rs, void *dst, const StTensor *t)
{
    if (rs == 8)
        st_read_f64(t, dst);
    else
        st_read_f32(t, dst);
}

double model_value_bound(const Model *m)
{
    return m->plan.real_size == 8 ? sqrt(DBL_MAX) : sqrt((double)FLT_MAX);
}

/* the kan op whose basis grid node i is, or NULL */
static const GNode *grid_owner(const Graph *g, int i)
{
    if (g->nodes[i].op != OP_BUFFER) return NULL;
    for (int j = 0; j < g->n_forward; j++)
        if (g->nodes[j].op == OP_KAN && g->nodes[j].in[1] == i) return &g->nodes[j];
    return NULL;
}

/* " ([2, 5])": flat index k of shape s as a multi-index (nothing for rank <= 1) */
static void index_str(const GShape *s, int64_t k, char *buf, size_t n)
{
    buf[0] = 0;
    if (s->nd <= 1) return;
    int64_t ix[G_MAXDIM];
    for (int d = s->nd - 1; d >= 0; d--) {
        ix[d] = s->d[d] ? k % s->d[d] : 0;
        k = s->d[d] ? k / s->d[d] : 0;
    }
    size_t w = (size_t)snprintf(buf, n, " ([");
    for (int d = 0; d < s->nd && w < n; d++)
        w += (size_t)snprintf(buf + w, n - w, "%s%lld", d ? ", " : "", (long long)ix[d]);
    if (w < n) snprintf(buf + w, n - w, "])");
}

int model_check_values(const Model *m, int i, const void *v, ModelValues kind, const char *file,
                       const char *name, char *err, size_t errlen)
{
    const GShape *s = &m->g.nodes[i].shape;
    int64_t n = shape_numel(s);
    int dbl = m->plan.real_size == 8;
    double bound = model_value_bound(m);
    char at[160];
#define VAL(k) (dbl ? ((const double *)v)[k] : (double)((const float *)v)[k])
    for (int64_t k = 0; k < n; k++) {
        double x = VAL(k);
        const char *why = NULL;
        if (!isfinite(x))
            why = "the file is broken (a diverged run?)";
        else if (kind == MODEL_VALUES_STATE && fabs(x) > bound)
            why = dbl ? "beyond sqrt(DBL_MAX): it cannot be squared in float64, so no step or forward "
                        "pass with it means anything"
                      : "beyond sqrt(FLT_MAX) = 1.8e19: it cannot be squared in float32, so no step "
                        "or forward pass with it means anything";
        else if (kind == MODEL_VALUES_V && x < 0)
            why = "an AdamW second moment (a mean of squares) cannot be negative";
        if (why) {
            index_str(s, k, at, sizeof at);
            char val[32];
            if (isnan(x)) snprintf(val, sizeof val, "NaN");
            else snprintf(val, sizeof val, "%g", x); /* inf, -inf, 1e+30 */
            set_err(err, errlen, "%s: '%s' holds %s at index %lld%s: %s", file, name, val, (long long)k,
                    at, why);
            return -1;
        }
    }
    const GNode *kan = kind == MODEL_VALUES_STATE ? grid_owner(&m->g, i) : NULL;
    if (kan) {
        const KanBasis *b = kan_basis(kan->a.basis);
        int G = kan->a.grid_size, k = kan->a.spline_order;
        int64_t len = shape_last(s);
        double *row = xmalloc(sizeof(double) * (size_t)(len ? len : 1));
        for (int64_t r = 0; len > 0 && r < n / len; r++) {
            for (int64_t j = 0; j < len; j++) row[j] = VAL(r * len + j);
            char why[200];
            if (b->check_grid(row, G, k, why, sizeof why) >= 0) {
                set_err(err, errlen, "%s: '%s' is a KAN grid (%s basis), but row %lld %s", file, name, b->name,
                        (long long)r, why);
                free(row);
                return -1;
            }
        }
        free(row);
    }
#undef VAL
    return 0;
}

int model_load_state(Model *m, const StFile *f, FILE *defaults, char *err, size_t errlen)
{
    Graph *g = &m->g;
    Device *d = m->dev;
    size_t rs = m->plan.real_size;
    char a[96], b[96];
    void *params = xcalloc((size_t)m->plan.n_param_elems + 1, rs);
    void *buffers = xcalloc((size_t)m->plan.n_buffer_elems + 1, rs);
    d->ops->read_area(d, AREA_PARAMS, params);
    d->ops->read_area(d, AREA_BUFFERS, buffers);
    int rc = 0;
    for (int i = 0; i < g->n && !rc; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER) continue;
        const StTensor *t = st_find(f, n->name);
        if (!t) {
            if (n->optional) continue;
            if (defaults && n->op == OP_PARAM && (n->init == INIT_ZEROS || n->init == INIT_ONES)) {
                void *area = (char *)params + m->plan.pos[i] * (int64_t)rs;
                for (int64_t j = 0; j < shape_numel(&n->shape); j++) {
                    if (rs == 8) ((double *)area)[j] = n->init == INIT_ONES;
                    else ((float *)area)[j] = n->init == INIT_ONES;
                }
                fprintf(defaults, "note: %s: no '%s'; it takes the model's initial value (%s)\n",
                        f->path, n->name, n->init == INIT_ONES ? "ones" : "zeros");
                continue;
            }
            snprintf(err, errlen, "%s: missing %s '%s' %s", f->path,
                     n->op == OP_PARAM ? "parameter" : "buffer", n->name,
                     shape_str(&n->shape, a, sizeof a));
            rc = -1;
        } else if (!same_shape(t, &n->shape)) {
            snprintf(err, errlen, "%s: '%s' has shape %s in the file, the model needs %s", f->path,
                     n->name, st_shape_str(t, b, sizeof b), shape_str(&n->shape, a, sizeof a));
            rc = -1;
        } else if (kan_grid_is_i64(n) != (t->dtype == ST_I64)) {
            snprintf(err, errlen, "%s: '%s' is %s, the model needs %s", f->path, n->name, st_dtype_name(t->dtype),
                     kan_grid_is_i64(n) ? "I64 (an integer KAN grid, as PyTorch stores it)" : "a float dtype");
            rc = -1;
        } else {
            void *area = n->op == OP_PARAM ? params : buffers;
            read_real(rs, (char *)area + m->plan.pos[i] * (int64_t)rs, t);
        }
    }
    /* every value the model will run with, from the file or not */
    for (int i = 0; i < g->n && !rc; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER) continue;
        const char *area = n->op == OP_PARAM ? params : buffers;
        rc = model_check_values(m, i, area + m->plan.pos[i] * (int64_t)rs, MODEL_VALUES_STATE, f->path,
                                n->name, err, errlen);
    }
    if (!rc) {
        d->ops->write_area(d, AREA_PARAMS, params);
        d->ops->write_area(d, AREA_BUFFERS, buffers);
    }
    free(params);
    free(buffers);
    return rc;
}

int model_input(const Model *m, const char *name) { return graph_find(&m->g, OP_INPUT, name); }

int model_set_tokens(Model *m, int node, const int32_t *ids, char *err, size_t errlen)
{
    const GNode *n = &m->g.nodes[node];
    int64_t vocab = graph_vocab(&m->g, node), lo = -1; /* targets may be -1 (ignored) */
    for (int i = 0; i < m->g.n_forward; i++)
        if (m->g.nodes[i].op == OP_EMBEDDING && m->g.nodes[i].in[0] == node) lo = 0;
    for (int64_t i = 0; i < shape_numel(&n->shape); i++)
        if (ids[i] < lo || (vocab > 0 && ids[i] >= vocab)) {
            snprintf(err, errlen, "input '%s': token id %d at position %lld is outside [%lld, %lld)",
                     n->name, ids[i], (long long)i, (long long)lo, (long long)vocab);
            return -1;
        }
    m->dev->ops->write_value(m->dev, node, ids);
    return 0;
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
    size_t rs = n->dtype == DT_I32 ? 4 : m->plan.real_size;
    void *host = xmalloc((size_t)(t->numel + 1) * rs);
    int rc = 0;
    if (n->dtype == DT_I32) {
        if (st_read_i32(t, host)) {
            snprintf(err, errlen, "input '%s': token ids must be integers", n->name);
            rc = -1;
        } else {
            rc = model_set_tokens(m, node, host, err, errlen);
        }
    } else {
        read_real(rs, host, t);
        m->dev->ops->write_value(m->dev, node, host);
    }
    free(host);
    return rc;
}

static int64_t to_double(Model *m, const void *src, int64_t numel, double *dst)
{
    for (int64_t i = 0; i < numel; i++)
        dst[i] = m->plan.real_size == 8 ? ((const double *)src)[i] : ((const float *)src)[i];
    return numel;
}

/* node i's value or gradient, through the device, as doubles */
static int64_t read_as_double(Model *m, int i, double *dst,
                              void (*read)(Device *, int, void *))
{
    int64_t numel = shape_numel(&m->g.nodes[i].shape);
    void *host = xmalloc((size_t)(numel + 1) * m->plan.real_size);
    read(m->dev, i, host);
    to_double(m, host, numel, dst);
    free(host);
    return numel;
}

int64_t model_read_value(Model *m, int i, double *dst)
{
    return read_as_double(m, i, dst, m->dev->ops->read_value);
}

int64_t model_read_grad(Model *m, int i, double *dst)
{
    return read_as_double(m, i, dst, m->dev->ops->read_grad);
}

void model_write_value(Model *m, int i, const double *src)
{
    int64_t numel = shape_numel(&m->g.nodes[i].shape);
    size_t rs = m->plan.real_size;
    void *host = xmalloc((size_t)(numel + 1) * rs);
    for (int64_t j = 0; j < numel; j++)
        if (rs == 8) ((double *)host)[j] = src[j];
        else ((float *)host)[j] = (float)src[j];
    m->dev->ops->write_value(m->dev, i, host);
    free(host);
}
