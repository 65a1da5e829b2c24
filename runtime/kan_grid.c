/* kan_grid.c: grid update and grid extension of B-spline KAN layers. */
#include "kan_grid.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "kan_op.h"
#include "util.h"

/* LAPACK (from OpenBLAS): minimum-norm least squares through the SVD */
extern void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                    const int *ldb, double *s, const double *rcond, int *rank, double *work, const int *lwork,
                    int *iwork, int *info);

/* Singular values below this share of the largest are dropped: the rank a
   float32 spline can resolve, far above rounding, far below any fit that
   matters (the fixture's batches have condition numbers < 1e6). */
#define KAN_GRID_RCOND 1e-10

int kan_grid_mode_parse(const char *s, KanGridMode *mode)
{
    if (!strcmp(s, "keep")) return *mode = KAN_GRID_KEEP, 0;
    if (!strcmp(s, "efficient-kan")) return *mode = KAN_GRID_EFFICIENT_KAN, 0;
    return -1;
}

const char *kan_grid_mode_name(KanGridMode mode) { return mode == KAN_GRID_KEEP ? "keep" : "efficient-kan"; }

void kan_grid_sample_index(int64_t n, int G, int64_t *idx)
{
    /* torch's integer linspace: from the start for the first half, from the end after */
    double s = (double)(n - 1) / G;
    int half = (G + 1) / 2;
    for (int j = 0; j <= G; j++)
        idx[j] = j < half ? (int64_t)(j * s) : (int64_t)((double)(n - 1) - (G - j) * s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The least-squares fit of one input: A [m x nf] column-major (overwritten),
   rhs [ldb x out] column-major with ldb = max(m, nf): on return its first nf
   rows hold the coefficients. Returns LAPACK's info. */
static int lstsq(double *A, int m, int nf, double *rhs, int ldb, int out)
{
    int rank, info, lwork = -1, liwork;
    double wq, rcond = KAN_GRID_RCOND;
    double *s = xmalloc((size_t)(nf < m ? nf : m) * sizeof *s + 8);
    int iq;
    dgelsd_(&m, &nf, &out, A, &m, rhs, &ldb, s, &rcond, &rank, &wq, &lwork, &iq, &info);
    lwork = (int)wq + 1;
    liwork = iq > 1 ? iq : 1;
    double *work = xmalloc((size_t)lwork * sizeof *work);
    int *iwork = xmalloc((size_t)liwork * sizeof *iwork);
    if (info == 0) dgelsd_(&m, &nf, &out, A, &m, rhs, &ldb, s, &rcond, &rank, work, &lwork, iwork, &info);
    free(work);
    free(iwork);
    free(s);
    return info;
}

/* B [m x nf] column-major: the basis of one grid row at the m points x[t * xstride] */
static void basis_matrix(const KanBasis *b, const double *row, const double *x, int64_t xstride, int m, int G,
                         int k, double *B, double *v, double *scratch)
{
    int nf = b->nf(G, k);
    for (int t = 0; t < m; t++) {
        b->reference(row, x[(int64_t)t * xstride], G, k, v, scratch);
        for (int c = 0; c < nf; c++) B[(int64_t)c * m + t] = v[c];
    }
}

/* the new knots of one input from its sorted samples xs[0..N) */
static void new_knots(const double *xs, int64_t N, int G, int k, const int64_t *idx, const KanGridOpts *o,
                      double *row)
{
    double h = (xs[N - 1] - xs[0] + 2 * o->margin) / G;
    for (int j = 0; j <= G; j++) {
        double uniform = j * h + xs[0] - o->margin;
        row[k + j] = o->eps * uniform + (1 - o->eps) * xs[idx[j]];
    }
    for (int j = 1; j <= k; j++) {
        row[k - j] = row[k] - h * j;
        row[k + G + j] = row[k + G] + h * j;
    }
}

/* strictly increasing once stored in the model's real type */
static int64_t first_unordered(const double *row, int len, size_t real_size)
{
    for (int j = 1; j < len; j++) {
        double a = real_size == 8 ? row[j - 1] : (double)(float)row[j - 1];
        double b = real_size == 8 ? row[j] : (double)(float)row[j];
        if (!(b > a) || !isfinite(b)) return j;
    }
    return isfinite(row[0]) ? -1 : 0;
}

int kan_grid_update_layer(const double *x, int64_t N, int64_t in, int64_t out, int G, int k, double *grid,
                          double *spline, const double *scaler, const KanGridOpts *o, size_t real_size,
                          char *err, size_t errlen)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf = b->nf(G, k), len = b->grid_len(G, k);
    if (N < 1) return set_err(err, errlen, "the batch holds no samples"), -1;
    if (N > INT32_MAX / 4) return set_err(err, errlen, "a batch of %lld samples is too large for LAPACK", (long long)N), -1;
    int m = (int)N, ldb = m > nf ? m : nf;
    double *xs = xmalloc((size_t)N * sizeof *xs), *rows = xmalloc((size_t)(in * len) * sizeof *rows);
    double *Bold = xmalloc((size_t)N * nf * sizeof *Bold), *Bnew = xmalloc((size_t)N * nf * sizeof *Bnew);
    double *W = xmalloc((size_t)nf * out * sizeof *W), *T = xmalloc((size_t)ldb * out * sizeof *T);
    double *res = xmalloc((size_t)(in * out * nf) * sizeof *res);
    double *v = xmalloc((size_t)(nf + len) * sizeof *v), *scratch = v + nf;
    int64_t *idx = xmalloc((size_t)(G + 1) * sizeof *idx);
    kan_grid_sample_index(N, G, idx);
    int rc = -1;
    for (int64_t i = 0; i < in; i++) {
        for (int64_t t = 0; t < N; t++) {
            xs[t] = x[t * in + i];
            if (!isfinite(xs[t])) {
                set_err(err, errlen, "input %lld: sample %lld is %g", (long long)i, (long long)t, xs[t]);
                goto out;
            }
        }
        /* the target: the spline part now, input i's share of every output */
        basis_matrix(b, grid + i * len, x + i, in, m, G, k, Bold, v, scratch);
        for (int64_t oo = 0; oo < out; oo++) {
            double s = scaler && o->mode == KAN_GRID_EFFICIENT_KAN ? scaler[oo * in + i] : 1;
            for (int c = 0; c < nf; c++) W[c + oo * nf] = spline[(oo * in + i) * nf + c] * s;
        }
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, (int)out, nf, 1, Bold, m, W, nf, 0, T, ldb);
        qsort(xs, (size_t)N, sizeof *xs, cmp_double);
        double *row = rows + i * len;
        new_knots(xs, N, G, k, idx, o, row);
        int64_t bad = first_unordered(row, len, real_size);
        if (bad >= 0) {
            set_err(err, errlen, "input %lld: the new knots are not strictly increasing in float%d at knot %lld "
                    "(samples span [%g, %g]; a larger --grid-margin or --grid-eps separates them)", (long long)i,
                    real_size == 8 ? 64 : 32, (long long)bad, xs[0], xs[N - 1]);
            goto out;
        }
        basis_matrix(b, row, x + i, in, m, G, k, Bnew, v, scratch);
        int info = lstsq(Bnew, m, nf, T, ldb, (int)out);
        if (info) {
            set_err(err, errlen, "input %lld: the least-squares refit failed (LAPACK dgelsd info %d)", (long long)i, info);
            goto out;
        }
        for (int64_t oo = 0; oo < out; oo++)
            for (int c = 0; c < nf; c++) {
                double w = T[c + oo * ldb];
                if (!isfinite(w)) {
                    set_err(err, errlen, "input %lld: the refit gave a non-finite coefficient", (long long)i);
                    goto out;
                }
                res[(oo * in + i) * nf + c] = w;
            }
    }
    memcpy(grid, rows, (size_t)(in * len) * sizeof *grid);
    memcpy(spline, res, (size_t)(in * out * nf) * sizeof *spline);
    rc = 0;
out:
    free(xs), free(rows), free(Bold), free(Bnew), free(W), free(T), free(res), free(v), free(idx);
    return rc;
}

/* ---- the whole model ---- */

/* the spline part of a layer on its batch, [N, out]: sum_{i,c} B_c(x_ni) w_oic s_oi */
static void spline_part(const double *x, int64_t N, int64_t in, int64_t out, int G, int k, const double *grid,
                        const double *spline, const double *scaler, double *y)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf = b->nf(G, k), len = b->grid_len(G, k);
    double *v = xmalloc((size_t)(nf + len) * sizeof *v);
    memset(y, 0, (size_t)(N * out) * sizeof *y);
    for (int64_t t = 0; t < N; t++)
        for (int64_t i = 0; i < in; i++) {
            b->reference(grid + i * len, x[t * in + i], G, k, v, v + nf);
            for (int64_t oo = 0; oo < out; oo++) {
                const double *w = spline + (oo * in + i) * nf;
                double acc = 0;
                for (int c = 0; c < nf; c++) acc += v[c] * w[c];
                y[t * out + oo] += acc * (scaler ? scaler[oo * in + i] : 1);
            }
        }
    free(v);
}

int kan_grid_update_model(Model *m, KanProbe *p, const KanGridOpts *o, int nbatches, KanGridLoad load,
                          void *ctx, KanGridReport *r, char *err, size_t errlen)
{
    Device *dev = m->dev;
    const Graph *g = &m->g;
    int training = dev->training, rc = -1, from = 0;
    memset(r, 0, sizeof *r);
    dev->training = 0; /* no dropout: the layers see what evaluation sees */
    if (!load) nbatches = 1;
    for (int l = 0; l < p->n; l++) {
        KanProbeLayer *L = &p->layers[l];
        const GNode *n = &g->nodes[L->node];
        if (n->a.basis != KAN_BASIS_BSPLINE) continue; /* a grid of fixed centres or none */
        int G = n->a.grid_size, k = n->a.spline_order;
        int64_t N = L->rows * nbatches, in = L->in, out = shape_last(&n->shape);
        double *x = xmalloc((size_t)(N * in) * sizeof *x);
        for (int bi = 0; bi < nbatches; bi++) {
            if (load) { /* every batch from the start: the layers before this one changed */
                if (load(ctx, bi, err, errlen)) {
                    free(x);
                    goto out;
                }
                from = 0;
            }
            dev->ops->run(dev, from, L->node);
            from = L->node;
            model_read_value(m, n->in[0], x + (int64_t)bi * L->rows * in);
        }
        int has_scaler = n->a.has_scaler;
        double *grid = xmalloc((size_t)shape_numel(&g->nodes[n->in[1]].shape) * sizeof *grid);
        double *spline = xmalloc((size_t)shape_numel(&g->nodes[n->in[kan_in_spline(&n->a)]].shape) * sizeof *spline);
        double *scaler = has_scaler ? xmalloc((size_t)(in * out) * sizeof *scaler) : NULL;
        double *before = xmalloc((size_t)(N * out) * sizeof *before), *after = xmalloc((size_t)(N * out) * sizeof *after);
        model_read_value(m, n->in[1], grid);
        model_read_value(m, n->in[kan_in_spline(&n->a)], spline);
        if (scaler) model_read_value(m, n->in[kan_in_scaler(&n->a)], scaler);
        KanProbe one = {.n = 1, .layers = &(KanProbeLayer){.node = L->node, .rows = N, .in = in, .x = x}};
        double oog = kan_probe_out_of_grid(&one, m, 0, grid);
        spline_part(x, N, in, out, G, k, grid, spline, scaler, before);
        char why[512];
        int bad = kan_grid_update_layer(x, N, in, out, G, k, grid, spline, scaler, o, m->plan.real_size, why,
                                        sizeof why);
        if (bad) set_err(err, errlen, "grid update of %s: %s", L->name, why);
        else {
            model_write_value(m, n->in[1], grid);
            model_write_value(m, n->in[kan_in_spline(&n->a)], spline);
            spline_part(x, N, in, out, G, k, grid, spline, scaler, after);
            double d2 = 0, b2 = 0;
            for (int64_t t = 0; t < N * out; t++) d2 += (after[t] - before[t]) * (after[t] - before[t]), b2 += before[t] * before[t];
            double change = b2 > 0 ? sqrt(d2 / b2) : sqrt(d2 / (double)(N * out));
            if (!r->worst || change > r->change) r->change = change, r->worst = L->name;
            r->oog_before += oog;
            r->oog_after += kan_probe_out_of_grid(&one, m, 0, grid);
            r->layers++;
        }
        free(x), free(grid), free(spline), free(scaler), free(before), free(after);
        if (bad) goto out;
    }
    if (r->layers) r->oog_before /= r->layers, r->oog_after /= r->layers;
    rc = 0;
out:
    dev->training = training;
    return rc;
}

/* ---- grid extension ---- */

/* the knot at fractional index u of a row (linear between knots; past the
   ends, the end intervals continued) */
static double knot_at(const double *row, int len, double u)
{
    int j = (int)floor(u);
    if (j < 0) j = 0;
    if (j > len - 2) j = len - 2;
    return row[j] + (u - j) * (row[j + 1] - row[j]);
}

double kan_grid_extend(const double *old_grid, const double *old_spline, int64_t in, int64_t out, int k,
                       int G_old, int G_new, double *new_grid, double *new_spline)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf_old = b->nf(G_old, k), nf_new = b->nf(G_new, k);
    int len_old = b->grid_len(G_old, k), len_new = b->grid_len(G_new, k);
    /* samples: 8 per new interval over the old grid range, where every new
       function has some of its support */
    int m = 8 * G_new + 1, ldb = m > nf_new ? m : nf_new;
    double *xs = xmalloc((size_t)m * sizeof *xs);
    double *Bold = xmalloc((size_t)m * nf_old * sizeof *Bold), *Bnew = xmalloc((size_t)m * nf_new * sizeof *Bnew);
    double *W = xmalloc((size_t)nf_old * out * sizeof *W), *T = xmalloc((size_t)ldb * out * sizeof *T);
    double *Y = xmalloc((size_t)m * out * sizeof *Y);
    double *v = xmalloc((size_t)(nf_new + nf_old + len_new + len_old) * sizeof *v), *scratch = v + nf_new + nf_old;
    double worst = 0;
    for (int64_t i = 0; i < in; i++) {
        const double *orow = old_grid + i * len_old;
        double *nrow = new_grid + i * len_new;
        /* the interior knots k..k+G_old map onto k..k+G_new; the k outer knots
           on each side continue the end intervals' new step */
        for (int j = 0; j <= G_new; j++) nrow[k + j] = knot_at(orow, len_old, k + (double)j * G_old / G_new);
        double lo_step = nrow[k + 1] - nrow[k], hi_step = nrow[k + G_new] - nrow[k + G_new - 1];
        for (int j = 1; j <= k; j++) {
            nrow[k - j] = nrow[k] - lo_step * j;
            nrow[k + G_new + j] = nrow[k + G_new] + hi_step * j;
        }
        double lo = orow[k], hi = orow[k + G_old];
        for (int t = 0; t < m; t++) xs[t] = lo + (hi - lo) * t / (m - 1);
        basis_matrix(b, orow, xs, 1, m, G_old, k, Bold, v, scratch);
        for (int64_t oo = 0; oo < out; oo++)
            for (int c = 0; c < nf_old; c++) W[c + oo * nf_old] = old_spline[(oo * in + i) * nf_old + c];
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, (int)out, nf_old, 1, Bold, m, W, nf_old, 0, T, ldb);
        for (int64_t oo = 0; oo < out; oo++) memcpy(Y + oo * m, T + oo * ldb, (size_t)m * sizeof *Y);
        basis_matrix(b, nrow, xs, 1, m, G_new, k, Bnew, v, scratch);
        double *Bfit = xmalloc((size_t)m * nf_new * sizeof *Bfit);
        memcpy(Bfit, Bnew, (size_t)m * nf_new * sizeof *Bfit);
        lstsq(Bfit, m, nf_new, T, ldb, (int)out); /* full rank: every new function has samples */
        free(Bfit);
        for (int64_t oo = 0; oo < out; oo++)
            for (int c = 0; c < nf_new; c++) new_spline[(oo * in + i) * nf_new + c] = T[c + oo * ldb];
        /* how far the new splines are from the old on the samples */
        for (int64_t oo = 0; oo < out; oo++)
            for (int t = 0; t < m; t++) {
                double y = 0;
                for (int c = 0; c < nf_new; c++) y += Bnew[(int64_t)c * m + t] * new_spline[(oo * in + i) * nf_new + c];
                double d = fabs(y - Y[oo * m + t]);
                if (d > worst) worst = d;
            }
    }
    free(xs), free(Bold), free(Bnew), free(W), free(T), free(Y), free(v);
    return worst;
}

/* ---- grid extension on load ---- */

static void *held(KanGridHold *h, size_t bytes)
{
    h->bufs = xrealloc(h->bufs, (size_t)(h->n + 1) * sizeof *h->bufs);
    return h->bufs[h->n++] = xmalloc(bytes ? bytes : 1);
}

void kan_grid_hold_free(KanGridHold *hold)
{
    for (int i = 0; i < hold->n; i++) free(hold->bufs[i]);
    free(hold->bufs);
    memset(hold, 0, sizeof *hold);
}

/* f's tensor `name`, writable (st_find's entries are the file's own array) */
static StTensor *file_tensor(StFile *f, const char *name) { return (StTensor *)st_find(f, name); }

static void replace(StTensor *t, StDtype dtype, int rank, const int64_t *shape, const void *data)
{
    t->dtype = dtype;
    t->rank = rank;
    t->numel = 1;
    for (int d = 0; d < ST_MAX_RANK; d++) {
        t->shape[d] = d < rank ? shape[d] : 0;
        if (d < rank) t->numel *= shape[d];
    }
    t->nbytes = (size_t)t->numel * st_dtype_size(dtype);
    t->data = data;
}

int kan_grid_extend_weights(const Model *m, StFile *f, KanGridHold *hold, FILE *notes, char *err, size_t errlen)
{
    const Graph *g = &m->g;
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int extended = 0;
    for (int i = 0; i < g->n_forward; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_KAN || n->a.basis != KAN_BASIS_BSPLINE || n->a.no_base) continue;
        const GNode *gn = &g->nodes[n->in[1]], *sn = &g->nodes[n->in[kan_in_spline(&n->a)]];
        int G = n->a.grid_size, k = n->a.spline_order;
        int64_t in = sn->shape.d[1], out = sn->shape.d[0];
        StTensor *tg = file_tensor(f, gn->name), *ts = file_tensor(f, sn->name);
        /* anything but another grid size on the same layer: model_load_state's shape error */
        if (!tg || !ts || tg->rank != 2 || ts->rank != 3 || tg->shape[0] != in || ts->shape[0] != out ||
            ts->shape[1] != in)
            continue;
        int64_t G_old = tg->shape[1] - 2 * k - 1;
        if (G_old == G || G_old < 1 || ts->shape[2] != G_old + k) continue;
        if (G_old > G) {
            set_err(err, errlen, "%s: '%s' has %lld grid intervals, the model %d: a grid can be made finer "
                    "(grid extension), not coarser", f->path, gn->name, (long long)G_old, G);
            return -1;
        }
        double *og = xmalloc((size_t)tg->numel * sizeof *og), *os = xmalloc((size_t)ts->numel * sizeof *os);
        st_read_f64(tg, og);
        st_read_f64(ts, os);
        char why[256];
        for (int64_t r = 0; r < in; r++) {
            int64_t bad = b->check_grid(og + r * tg->shape[1], (int)G_old, k, why, sizeof why);
            if (bad >= 0) {
                set_err(err, errlen, "%s: '%s' row %lld, value %lld: %s", f->path, gn->name, (long long)r,
                        (long long)bad, why);
                free(og), free(os);
                return -1;
            }
        }
        double *ng = held(hold, sizeof(double) * (size_t)(in * b->grid_len(G, k)));
        double *ns = held(hold, sizeof(double) * (size_t)(out * in * b->nf(G, k)));
        double worst = kan_grid_extend(og, os, in, out, k, (int)G_old, G, ng, ns);
        free(og), free(os);
        replace(tg, ST_F64, 2, (int64_t[]){in, b->grid_len(G, k)}, ng);
        replace(ts, ST_F64, 3, (int64_t[]){out, in, b->nf(G, k)}, ns);
        if (notes)
            fprintf(notes, "note: %s: %s: grid extended from %lld to %d intervals, splines refitted (largest "
                    "change %.1e on the grid range)\n", f->path, sn->name, (long long)G_old, G, worst);
        extended++;
    }
    return extended;
}

int kan_grid_extend_moments(const Model *m, StFile *f, KanGridHold *hold)
{
    const Graph *g = &m->g;
    int replaced = 0;
    for (int i = 0; i < g->n_forward; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_KAN || n->a.basis != KAN_BASIS_BSPLINE || n->a.no_base) continue;
        const GNode *sn = &g->nodes[n->in[kan_in_spline(&n->a)]];
        int64_t out = sn->shape.d[0], in = sn->shape.d[1], nf = sn->shape.d[2];
        for (int which = 0; which < 2; which++) {
            char name[512];
            snprintf(name, sizeof name, "%s%s", which ? "v." : "m.", sn->name);
            StTensor *t = file_tensor(f, name);
            if (!t || t->rank != 3 || t->dtype != ST_F32 || t->shape[0] != out || t->shape[1] != in ||
                t->shape[2] >= nf || t->shape[2] < 1)
                continue;
            int64_t nf_old = t->shape[2];
            float *old = xmalloc((size_t)t->numel * sizeof *old);
            st_read_f32(t, old);
            float *nw = held(hold, sizeof(float) * (size_t)(out * in * nf));
            for (int64_t e = 0; e < out * in; e++) {
                double mean = 0;
                for (int64_t c = 0; c < nf_old; c++) mean += old[e * nf_old + c] / (double)nf_old;
                for (int64_t c = 0; c < nf; c++) nw[e * nf + c] = which ? (float)mean : 0.0f;
            }
            free(old);
            replace(t, ST_F32, 3, (int64_t[]){out, in, nf}, nw);
            replaced++;
        }
    }
    return replaced;
}
