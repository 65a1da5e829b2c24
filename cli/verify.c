/* verify.c: `kanrun verify`: run a model on a reference file and compare every tensor.
 *
 * A reference file (shared/fixtures, written by the PyTorch reference) holds
 * the parameters and inputs in F32 and the expected results in F64, with the
 * hyperparameters in its __metadata__ "config". Kinds:
 *   kan_linear, kan_chebyshev, kan_rbf (one layer of each basis):
 *               y and grad.* for the upstream gradient dy;
 *   gpt:        logits, loss, grad.<param>, step1.<param> after one clipped
 *               AdamW step, and `losses` over `steps` steps on the same batch;
 *   kan_update_grid: efficient-kan's update_grid on the batch x (kanc's grid
 *               update in mode efficient-kan): sample_index, after.grid,
 *               after.spline_weight, then y and grad.* of the updated layer on
 *               a second batch x2.
 */
#include "verify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "codegen_cuda.h"
#include "commands.h"
#include "cuda_api.h"
#include "config.h"
#include "kan_grid.h"
#include "kan_op.h"
#include "kan_probe.h"
#include "util.h"

typedef struct {
    FILE *out;
    double tol;
    double worst;
    int failed, compared;
} Tally;

/* one line: name, max abs error, relative error ||a-b|| / ||b|| */
static void compare(Tally *t, const char *name, const double *got, const StTensor *want)
{
    double *ref = xmalloc(sizeof(double) * (size_t)(want->numel ? want->numel : 1));
    st_read_f64(want, ref);
    double maxabs = 0, diff2 = 0, ref2 = 0;
    for (int64_t i = 0; i < want->numel; i++) {
        double d = got[i] - ref[i];
        if (!(fabs(d) <= maxabs)) maxabs = fabs(d); /* NaN propagates */
        diff2 += d * d;
        ref2 += ref[i] * ref[i];
    }
    double rel = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
    int ok = rel <= t->tol;
    if (!ok || isnan(rel)) t->failed++;
    if (!(rel <= t->worst)) t->worst = rel;
    t->compared++;
    fprintf(t->out, "%-56s max_abs %.3e  rel %.3e  %s\n", name, maxabs, rel, ok ? "ok" : "FAILED");
    free(ref);
}

static const StTensor *need(const StFile *f, const char *name, int64_t numel, char *err,
                            size_t errlen)
{
    const StTensor *t = st_find(f, name);
    if (!t)
        snprintf(err, errlen, "%s: no tensor '%s'", f->path, name);
    else if (t->numel != numel)
        snprintf(err, errlen, "%s: '%s' has %lld elements, the model makes %lld", f->path, name,
                 (long long)t->numel, (long long)numel);
    else
        return t;
    return NULL;
}

static int compare_value(Tally *t, Model *m, const StFile *f, const char *name, int node,
                         int is_grad, char *err, size_t errlen)
{
    int64_t numel = shape_numel(&m->g.nodes[node].shape);
    const StTensor *want = need(f, name, numel, err, errlen);
    if (!want) return -1;
    double *got = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
    if (is_grad)
        model_read_grad(m, node, got);
    else
        model_read_value(m, node, got);
    compare(t, name, got, want);
    free(got);
    return 0;
}

/* every file input of the model, by name */
static int feed_inputs(Model *m, const StFile *f, char *err, size_t errlen)
{
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_INPUT) continue;
        const StTensor *t = st_find(f, n->name);
        if (!t) {
            snprintf(err, errlen, "%s: no tensor for the model's input '%s'", f->path, n->name);
            return -1;
        }
        if (model_set_input(m, i, t, err, errlen)) return -1;
    }
    return 0;
}

static int compare_param_grads(Tally *t, Model *m, const StFile *f, const char *prefix,
                               int is_grad, char *err, size_t errlen)
{
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        char name[512];
        snprintf(name, sizeof name, "%s.%s", prefix, n->name);
        if (compare_value(t, m, f, name, i, is_grad, err, errlen)) return -1;
    }
    return 0;
}

/* one KAN layer (kan_linear, kan_chebyshev, kan_rbf): y, grad.<input>, grad.<param> */
static int verify_kan_layer(Tally *t, Model *m, const StFile *f, char *err, size_t errlen)
{
    Graph *g = &m->g;
    m->dev->ops->run(m->dev, 0, g->n);
    if (compare_value(t, m, f, g->output_names[0], g->output, 0, err, errlen)) return -1;
    for (int i = 0; i < g->n_forward; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_INPUT || n->dtype != DT_REAL || !g->grad_of || g->grad_of[i] < 0) continue;
        char name[256];
        snprintf(name, sizeof name, "grad.%s", n->name);
        if (compare_value(t, m, f, name, g->grad_of[i], 0, err, errlen)) return -1;
    }
    return compare_param_grads(t, m, f, "grad", 1, err, errlen);
}

/* Checks that the model puts weight decay on exactly the file's parameters. */
static void compare_decay(Tally *t, Model *m, const cJSON *decay)
{
    int mismatches = 0;
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        int in_file = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, decay) if (cJSON_IsString(d) && !strcmp(d->valuestring, n->name)) in_file = 1;
        if (in_file != n->decay) {
            fprintf(t->out, "weight decay on %s: model %s, reference %s  FAILED\n", n->name,
                    n->decay ? "yes" : "no", in_file ? "yes" : "no");
            mismatches++;
        }
    }
    if (mismatches) t->failed++;
    fprintf(t->out, "%-56s %s\n", "weight decay groups", mismatches ? "FAILED" : "ok");
}

/* Under bf16, one AdamW step from our own gradients, on the host in double:
   what the device's fp32 AdamW must give (t = 1, m = v = 0 before it, the clip
   scale from the global norm of the gradients as the device computes it). */
typedef struct {
    int n;         /* parameters */
    int *node;
    double **p0, **g;
} AdamSnapshot;

static void adam_snapshot(AdamSnapshot *s, Model *m)
{
    memset(s, 0, sizeof *s);
    s->node = xmalloc(sizeof(int) * (size_t)(m->g.n + 1));
    s->p0 = xmalloc(sizeof(double *) * (size_t)(m->g.n + 1));
    s->g = xmalloc(sizeof(double *) * (size_t)(m->g.n + 1));
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        int64_t numel = shape_numel(&n->shape);
        s->node[s->n] = i;
        s->p0[s->n] = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
        s->g[s->n] = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
        model_read_value(m, i, s->p0[s->n]);
        model_read_grad(m, i, s->g[s->n]);
        s->n++;
    }
}

static void adam_snapshot_free(AdamSnapshot *s)
{
    for (int i = 0; i < s->n; i++) free(s->p0[i]), free(s->g[i]);
    free(s->node), free(s->p0), free(s->g);
}

/* step1.<param> against the host AdamW of the snapshot, at the fp32 tolerance */
static void compare_adam_step(Tally *t, Model *m, const AdamSnapshot *s)
{
    const AdamWConfig *o = &m->dev->opt;
    double norm2 = 0;
    for (int q = 0; q < s->n; q++) {
        const GNode *n = &m->g.nodes[s->node[q]];
        if (!n->trainable) continue;
        for (int64_t i = 0; i < shape_numel(&n->shape); i++) norm2 += s->g[q][i] * s->g[q][i];
    }
    double gs = 1;
    if (o->clip > 0 && o->clip / (sqrt(norm2) + 1e-6) < 1) gs = o->clip / (sqrt(norm2) + 1e-6);
    Tally own = {.out = t->out, .tol = VERIFY_TOLERANCE};
    for (int q = 0; q < s->n; q++) {
        const GNode *n = &m->g.nodes[s->node[q]];
        int64_t numel = shape_numel(&n->shape);
        double *want = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
        double *got = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
        for (int64_t i = 0; i < numel; i++) {
            double gi = s->g[q][i] * gs, mi = (1 - o->beta1) * gi, vi = (1 - o->beta2) * gi * gi;
            double decay = n->decay ? 1 - o->lr * o->weight_decay : 1;
            want[i] = !n->trainable ? s->p0[q][i]
                                    : s->p0[q][i] * decay - o->lr / (1 - o->beta1) * mi /
                                                                (sqrt(vi) / sqrt(1 - o->beta2) + o->eps);
        }
        model_read_value(m, s->node[q], got);
        char name[512];
        snprintf(name, sizeof name, "step1.%s (AdamW of our gradients)", n->name);
        StTensor w = {.name = name, .dtype = ST_F64, .rank = 1, .shape = {numel}, .numel = numel,
                      .nbytes = numel * 8, .data = want};
        compare(&own, name, got, &w);
        free(want);
        free(got);
    }
    t->failed += own.failed;
    t->compared += own.compared;
    if (!(own.worst <= t->worst)) t->worst = own.worst;
}

static int verify_gpt(Tally *t, Model *m, const StFile *f, const cJSON *cfg, int bf16, char *err,
                      size_t errlen)
{
    Graph *g = &m->g;
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(cfg, "optimizer");
    const cJSON *betas = cJSON_GetObjectItemCaseSensitive(opt, "betas");
    m->dev->opt.lr = config_number(opt, "lr", 1e-3);
    m->dev->opt.eps = config_number(opt, "eps", 1e-8);
    m->dev->opt.weight_decay = config_number(opt, "weight_decay", 0.1);
    m->dev->opt.clip = config_number(cfg, "clip", 1.0);
    if (cJSON_GetArraySize(betas) == 2) {
        m->dev->opt.beta1 = cJSON_GetArrayItem(betas, 0)->valuedouble;
        m->dev->opt.beta2 = cJSON_GetArrayItem(betas, 1)->valuedouble;
    }
    compare_decay(t, m, cJSON_GetObjectItemCaseSensitive(opt, "decay"));
    int steps = (int)config_number(cfg, "steps", 1);
    int adam = -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_ADAMW) adam = i;
    double *losses = xmalloc(sizeof(double) * (size_t)(steps > 0 ? steps : 1));
    for (int s = 0; s < steps; s++) {
        m->dev->ops->run(m->dev, 0, adam); /* forward, backward, norm */
        model_read_value(m, g->loss, &losses[s]);
        if (s == 0) {
            if (compare_value(t, m, f, "logits", g->output, 0, err, errlen) ||
                compare_value(t, m, f, "loss", g->loss, 0, err, errlen) ||
                compare_param_grads(t, m, f, "grad", 1, err, errlen))
                goto fail;
        }
        AdamSnapshot snap;
        if (s == 0 && bf16) adam_snapshot(&snap, m);
        m->dev->ops->run(m->dev, adam, adam + 1);
        if (s == 0 && bf16) { /* see verify_run */
            compare_adam_step(t, m, &snap);
            adam_snapshot_free(&snap);
        } else if (s == 0 && compare_param_grads(t, m, f, "step1", 0, err, errlen)) {
            goto fail;
        }
    }
    const StTensor *want = need(f, "losses", steps, err, errlen);
    if (!want) goto fail;
    compare(t, "losses", losses, want);
    free(losses);
    return 0;
fail:
    free(losses);
    return -1;
}

/* A vector against a fixture tensor, under the name it has there */
static int compare_doubles(Tally *t, const StFile *f, const char *name, const double *got, int64_t n,
                           char *err, size_t errlen)
{
    const StTensor *want = need(f, name, n, err, errlen);
    if (!want) return -1;
    compare(t, name, got, want);
    return 0;
}

/* the grid (spline 0) or spline-weight (1) node of a one-layer model's kan op */
static int kan_input(const Model *m, int spline)
{
    for (int i = 0; i < m->g.n_forward; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op == OP_KAN) return n->in[spline ? kan_in_spline(&n->a) : 1];
    }
    return -1;
}

/* m (lead shape [batch]) updates its grid on x; after (lead shape lead_shape2,
   the file's state loaded) takes the new grid and spline weights and runs x2 */
static int verify_kan_update_grid(Tally *t, Model *m, Model *after, const StFile *f, const cJSON *cfg,
                                  char *err, size_t errlen)
{
    int grid = kan_input(m, 0), spline = kan_input(m, 1);
    if (grid < 0) return set_err(err, errlen, "the model has no KAN layer"), -1;
    int G = m->g.nodes[grid].a.grid_size;
    int64_t N = shape_rows(&m->g.nodes[model_input(m, "x")].shape);
    int64_t idx[G + 1];
    double didx[G + 1];
    kan_grid_sample_index(N, G, idx);
    for (int j = 0; j <= G; j++) didx[j] = (double)idx[j];
    if (compare_doubles(t, f, "sample_index", didx, G + 1, err, errlen)) return -1;
    KanGridOpts o = {.margin = config_number(cfg, "margin", 0.01),
                     .eps = config_number(cfg, "grid_eps", 0.02),
                     .mode = KAN_GRID_EFFICIENT_KAN};
    KanProbe p;
    kan_probe_init(&p, m);
    KanGridReport r;
    int rc = kan_grid_update_model(m, &p, &o, 1, NULL, NULL, &r, err, errlen);
    kan_probe_free(&p);
    if (rc) return -1;
    int64_t ng = shape_numel(&m->g.nodes[grid].shape), ns = shape_numel(&m->g.nodes[spline].shape);
    double *v = xmalloc(sizeof(double) * (size_t)(ng + ns));
    model_read_value(m, grid, v);
    model_read_value(m, spline, v + ng);
    rc = compare_doubles(t, f, "after.grid", v, ng, err, errlen) ||
         compare_doubles(t, f, "after.spline_weight", v + ng, ns, err, errlen);
    model_write_value(after, kan_input(after, 0), v);
    model_write_value(after, kan_input(after, 1), v + ng);
    free(v);
    if (rc) return -1;
    Graph *g = &after->g;
    after->dev->ops->run(after->dev, 0, g->n);
    if (compare_value(t, after, f, "y", g->output, 0, err, errlen) ||
        compare_value(t, after, f, "grad.x2", g->grad_of[model_input(after, "x")], 0, err, errlen))
        return -1;
    return compare_param_grads(t, after, f, "grad", 1, err, errlen);
}

/* the model's output called name, -1 if none */
static int output_node(const Model *m, const char *name)
{
    for (int i = 0; i < m->g.n_outputs; i++)
        if (!strcmp(m->g.output_names[i], name)) return m->g.outputs[i];
    return -1;
}

/* kan-stack.kdl on x and dy, d(total) = 1: total = data_term * sum(y * dy) + reg */
static int run_kan_stack(Model *m, const StFile *f, char *err, size_t errlen)
{
    double one = 1;
    StTensor seed = {.name = "dtotal", .dtype = ST_F64, .rank = 0, .numel = 1, .nbytes = 8, .data = &one};
    const StTensor *x = st_find(f, "x"), *dy = st_find(f, "dy");
    if (!x || !dy) return set_err(err, errlen, "%s: a kan_reg_loss file needs x and dy", f->path), -1;
    if (model_set_input(m, model_input(m, "x"), x, err, errlen) ||
        model_set_input(m, model_input(m, "dy"), dy, err, errlen) ||
        model_set_input(m, m->seed_input, &seed, err, errlen))
        return -1;
    m->dev->ops->run(m->dev, 0, m->g.n);
    return 0;
}

/* m with data_term 1: y, reg_loss, grad_total.*; reg_only with data_term 0: grad.* */
static int verify_kan_reg_loss(Tally *t, Model *m, Model *reg_only, const StFile *f, char *err, size_t errlen)
{
    int y = output_node(m, "y"), reg = output_node(m, "reg");
    if (y < 0 || reg < 0) return set_err(err, errlen, "%s: the model returns no y and reg", m->path), -1;
    if (run_kan_stack(m, f, err, errlen) || compare_value(t, m, f, "y", y, 0, err, errlen) ||
        compare_value(t, m, f, "reg_loss", reg, 0, err, errlen) ||
        compare_param_grads(t, m, f, "grad_total", 1, err, errlen) ||
        compare_value(t, m, f, "grad_total.x", m->g.grad_of[model_input(m, "x")], 0, err, errlen))
        return -1;
    return run_kan_stack(reg_only, f, err, errlen) || compare_param_grads(t, reg_only, f, "grad", 1, err, errlen);
}

int verify_run(const char *model_path, const char *ref_path, const KdlSet *sets, int nsets,
               double tol, const char *device, FILE *out)
{
    char err[1024];
    /* the precision the device computes in: what its compile resolves (bf16 on
       a GPU unless KANC_PRECISION says fp32; fp32 on the emulator unless it
       says bf16; always fp32 on the CPU) */
    const char *dev_name = device_resolve(device, 4);
    CudaOptions co;
    cuda_options_default(&co);
    if (strcmp(dev_name, "cpu") && cuda_options_for_device(&co, dev_name, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    int bf16 = co.precision == CUDA_BF16;
    if (tol < 0) tol = bf16 ? VERIFY_TOLERANCE_BF16 : VERIFY_TOLERANCE;
    StFile f;
    if (st_open(&f, ref_path, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    const char *kind = st_meta(&f, "kind"), *cfg_text = st_meta(&f, "config");
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    char *found = NULL;
    if (!model_path && !(model_path = found = verify_model_for(&f, kind, cfg, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        cJSON_Delete(cfg);
        st_close(&f);
        return 2;
    }
    int is_layer = kind && (!strcmp(kind, "kan_linear") || !strcmp(kind, "kan_chebyshev") || !strcmp(kind, "kan_rbf"));
    if (!kind || !cfg ||
        (strcmp(kind, "gpt") && !is_layer && strcmp(kind, "kan_update_grid") && strcmp(kind, "kan_reg_loss"))) {
        fprintf(stderr, "error: %s: not a reference file (needs __metadata__ kind gpt, kan_linear, "
                        "kan_chebyshev, kan_rbf, kan_update_grid or kan_reg_loss and a JSON config)\n", ref_path);
        free(found);
        cJSON_Delete(cfg);
        st_close(&f);
        return 2;
    }
    /* the file's config first (soft: keys the model does not declare are
       ignored), then the command line's --set, which wins */
    ConfigSets cs;
    config_to_sets(cfg, &cs);
    for (int i = 0; i < nsets; i++) config_sets_add(&cs, sets[i].name, sets[i].value, 0);
    int is_gpt = !strcmp(kind, "gpt"), is_grid = !strcmp(kind, "kan_update_grid"),
        is_reg = !strcmp(kind, "kan_reg_loss");
    Model m = {0}, after = {0};
    int rc = 2, have_after = 0;
    if (is_reg) { /* the second model: the regularization's gradient alone */
        config_sets_add(&cs, "data_term", "0.0", 0);
        if (model_compile(&after, model_path, NULL, cs.sets, cs.n, MODEL_GRAD_OUTPUT, 4, device, stderr))
            goto done;
        have_after = 1;
        config_sets_add(&cs, "data_term", "1.0", 0);
        if (model_compile(&m, model_path, NULL, cs.sets, cs.n, MODEL_GRAD_OUTPUT, 4, device, stderr)) goto done;
        if (model_load_state(&after, &f, out, err, sizeof err) || model_load_state(&m, &f, out, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            goto done;
        }
    } else if (is_grid) { /* the update on x [batch, in]; the updated layer on x2 */
        char lead[32];
        snprintf(lead, sizeof lead, "[%lld]", (long long)config_number(cfg, "batch", 1));
        config_sets_add(&cs, "lead_shape", lead, 0);
        if (model_compile(&m, model_path, NULL, cs.sets, cs.n, MODEL_FORWARD, 4, device, stderr)) goto done;
        char *lead2 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cfg, "lead_shape2"));
        config_sets_add(&cs, "lead_shape", lead2 ? lead2 : "[1]", 0);
        free(lead2);
        if (model_compile(&after, model_path, NULL, cs.sets, cs.n, MODEL_GRAD_OUTPUT, 4, device, stderr))
            goto done;
        have_after = 1;
        const StTensor *x2 = st_find(&f, "x2"), *dy = st_find(&f, "dy");
        if (!x2 || !dy) {
            fprintf(stderr, "error: %s: a kan_update_grid file needs x2 and dy\n", ref_path);
            goto done;
        }
        if (model_load_state(&after, &f, out, err, sizeof err) ||
            model_set_input(&after, model_input(&after, "x"), x2, err, sizeof err) ||
            model_set_input(&after, after.seed_input, dy, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            goto done;
        }
    } else if (model_compile(&m, model_path, NULL, cs.sets, cs.n, is_gpt ? MODEL_TRAIN : MODEL_GRAD_OUTPUT,
                             4, device, stderr))
        goto done;
    if (!is_reg && (model_load_state(&m, &f, out, err, sizeof err) || feed_inputs(&m, &f, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    Tally t = {.out = out, .tol = tol};
    fprintf(out, "verify %s against %s (%s), precision %s\n", model_path, ref_path, kind, bf16 ? "bf16" : "fp32");
    if ((is_gpt    ? verify_gpt(&t, &m, &f, cfg, bf16, err, sizeof err)
         : is_grid ? verify_kan_update_grid(&t, &m, &after, &f, cfg, err, sizeof err)
         : is_reg  ? verify_kan_reg_loss(&t, &m, &after, &f, err, sizeof err)
                   : verify_kan_layer(&t, &m, &f, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    fprintf(out, "%d tensors, worst relative error %.3e (tolerance %.3g%s): %s\n", t.compared,
            t.worst, tol, bf16 && is_gpt ? "; step1 against AdamW of our gradients at 1e-4" : "",
            t.failed ? "FAILED" : "ok");
    rc = t.failed ? 1 : 0;
done:
    model_free(&m);
    if (have_after) model_free(&after);
    config_sets_free(&cs);
    free(found);
    cJSON_Delete(cfg);
    st_close(&f);
    return rc;
}

static const char VERIFY_USAGE[] = "usage: kanrun verify [MODEL.kdl] REFERENCE.safetensors [flags]\n";

static const char VERIFY_EPILOG[] =
    "Loads every parameter and buffer from the reference file by name, takes the\n"
    "hyperparameters from its config (a --set wins), runs the model and compares\n"
    "every expected tensor: for kinds kan_linear, kan_chebyshev and kan_rbf y and\n"
    "grad.*; for kind gpt logits, loss, grad.*, step1.* (one clipped AdamW step) and\n"
    "the losses over the file's steps; for kind kan_update_grid the grid update\n"
    "(mode efficient-kan) on x, then y and grad.* of the updated layer on x2; for\n"
    "kind kan_reg_loss y, reg_loss, grad_total.* (of sum(y * dy) + reg_loss) and\n"
    "grad.* (of reg_loss alone). Tolerance: relative error ||ours - reference|| /\n"
    "||reference|| <= 1e-4 for every tensor (float32 computation against a float64\n"
    "reference). With precision bf16 (the default on --device cuda; --precision or\n"
    "KANC_PRECISION for emu) every GEMM takes bf16 operands: the tolerance is\n"
    "2^-5 = 3.1e-2 (8 unit roundoffs of bf16; docs/cuda.md, \"Precision\"), and\n"
    "step1.* is compared with one fp32 AdamW step computed on the host from our own\n"
    "gradients (1e-4), since AdamW's first step is about lr * sign(grad) and the sign\n"
    "of a gradient that is zero in exact arithmetic is rounding noise.\n"
    "Without MODEL.kdl the file's metadata names it, from the repository's models/\n"
    "($KANC_ROOT/models, else ../models next to kanrun): kan_linear and\n"
    "kan_update_grid: kan-linear.kdl; kan_reg_loss: kan-stack.kdl; kan_chebyshev:\n"
    "kan-chebyshev.kdl; kan_rbf: kan-rbf.kdl; gpt: kansformers.kdl, hybrid.kdl or\n"
    "mingpt.kdl by its config's layout (a basis other than bspline: kansformers\n"
    "only). Other kinds are not supported (an error).\n"
    "Exit status 0: all within tolerance; 1: some tensor is not; 2: error.\n";

int verify_main(int argc, char **argv)
{
    const char *device = "auto", *precision = NULL;
    double tol = VERIFY_TOLERANCE_AUTO;
    ConfigSets cs = {0};
    const CliOpt opts[] = {
        CLI_CALL("set", config_cli_set, "NAME=VALUE", "override a hyperparameter of the file's config"),
        CLI_REAL_POS("tolerance", &tol, INFINITY, "T",
                     "the largest relative error accepted (default 1e-4; 3.1e-2 in bf16)"),
        CLI_STR("device", &device, "D", "auto (default), cpu, cuda or emu"),
        CLI_STR("precision", &precision, "P", "fp32 or bf16 GEMM operands on cuda and emu (default: bf16 on\n"
                "cuda, fp32 on emu; cpu: fp32 only)"),
    };
    CliSpec spec = {"kanrun verify", VERIFY_USAGE, VERIFY_EPILOG, opts, CLI_COUNT(opts), 1, 2, &cs};
    char *pos[2];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (!r && precision && device_precision_request("kanrun verify", precision, device)) r = -1;
    int rc = r ? (r > 0 ? 0 : 2)
               : verify_run(np == 2 ? pos[0] : NULL, pos[np - 1], cs.sets, cs.n, tol, device, stdout);
    config_sets_free(&cs);
    return rc;
}
