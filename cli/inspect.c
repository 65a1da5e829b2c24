/* inspect.c: kanrun inspect: the learned edge functions of a trained KAN.
 *
 * Every edge (o, i) of a KAN layer is a function of one variable,
 *     phi_oi(x) = base_weight[o,i] act(x) + sum_c spline_weight[o,i,c] spline_scaler[o,i] f_c(x)
 * (no scaler factor when the layer has none), f_c the basis functions of the
 * layer's family evaluated through KanBasis.reference (ops/kan_basis.h), so
 * any family with a finite grid range works. For each chosen layer inspect
 * samples every edge over its input's grid range widened by 10% each side
 * and writes, into the output folder:
 *   <layer>.csv   the sampled edges (columns x_<i>, then o<o>_i<i> per input);
 *   <layer>.json  the grid, G, k, basis, sizes, the data's out-of-grid
 *                 fraction and the edges' L1 norms and ranking;
 *   <layer>.png   the top edges by L1 norm, one small plot each (plot.h),
 *                 with the input's histogram on the data and the grid range.
 * With --data the layers' inputs come from the forward pass on fixed
 * validation batches (runtime/kan_probe.h), and an edge's L1 norm is
 * mean |phi_oi(x_i)| over those samples of input i; without, over the
 * sampled points. The run is only read (its token cache too).
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "corpus.h"
#include "cpu_kernels.h"
#include "kan_basis.h"
#include "kan_op.h"
#include "kan_probe.h"
#include "lm.h"
#include "objective.h"
#include "plot.h"
#include "run_folder.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"
#include "weights.h"

static const char INSPECT_USAGE[] =
    "usage: kanrun inspect RUN [--layer NAME ...] [--data PATH] [--batches B] -o DIR [flags]\n"
    "       kanrun inspect FILE --model MODEL.kdl [--set NAME=VALUE ...] -o DIR [flags]\n";

static const char INSPECT_EPILOG[] =
    "RUN is a run folder or its model.safetensors (a checkpoint); it is only read.\n"
    "For each chosen KAN layer, DIR gets <layer>.csv (every edge phi_oi sampled at\n"
    "--points x per input over the grid range, 10% wider each side: columns x_<i>,\n"
    "then o<o>_i<i> for each edge of input i), <layer>.json (grid, G, k, basis,\n"
    "sizes, out-of-grid fraction, the edges' L1 norms and ranking) and <layer>.png\n"
    "(the top edges by L1 norm, the input's histogram under each curve with --data,\n"
    "dashed lines at the grid range). NAME is a layer's state_dict prefix\n"
    "(transformer.h.0.mlp.kan.layers.0), a prefix of it at a dot (transformer.h.0)\n"
    "or a glob ('*.c_attn.*'); default: every KAN layer. With --data the layers'\n"
    "inputs are those of fixed validation batches (as kanrun eval's) and an edge's\n"
    "L1 norm is the mean |phi_oi(x_i)| over them; without, over the sampled x.\n"
    "The run's token cache is read when --data is the run's own data; other data\n"
    "is tokenized without a cache. With --model, FILE is any safetensors file\n"
    "holding MODEL's state_dict by name (a PyTorch export), built with --set/--preset.\n"
    "A KAN layer at the model's root (kan_linear in the model itself) is 'root'.\n";

#define INSPECT_BINS   48  /* histogram bins over an input's sampled range */
#define INSPECT_WIDEN  0.1 /* the sampled range: the grid range, this much wider each side */
#define INSPECT_RANKED 100 /* edges listed by name in the JSON's ranking */

typedef struct {
    int64_t o, i;
    double l1;
} Edge;

/* one KAN layer's parameters as doubles, and what inspect learns of it */
typedef struct {
    const char *name;
    const KanBasis *b;
    int G, k, nf, len, act, scaler;
    int64_t in, out;
    double *grid;      /* [in, len] */
    double *w;         /* [out, in, nf + 1]: base_weight, then spline_weight (* spline_scaler) */
    double *glo, *ghi; /* per input: the grid range */
    double *xlo, *xhi; /* per input: the sampled range */
    int64_t samples;   /* data samples per input (0: no --data) */
    int64_t *outside;  /* [in]: data samples outside the grid range */
    double *hist;      /* [in, INSPECT_BINS]: data samples over the sampled range */
    double *l1;        /* [out, in]: sums of |phi|, then (layer_rank) the means */
    Edge *rank;        /* [out * in] by l1, largest first */
} Layer;

static const char *act_name(int act)
{
    switch (act) {
    case ACT_SILU: return "silu";
    case ACT_GELU: return "gelu";
    case ACT_RELU: return "relu";
    default: return "none";
    }
}

/* row a[0 .. nf] for input i at x: act(x), f_0(x) .. f_{nf-1}(x); scratch: len values */
static void features(const Layer *L, int64_t i, double x, double *a, double *scratch)
{
    act_fwd_f64(L->act, a, &x, 1);
    L->b->reference(L->grid + i * L->len, x, L->G, L->k, a + 1, scratch);
}

static double phi(const Layer *L, int64_t o, int64_t i, const double *a)
{
    const double *w = L->w + (o * L->in + i) * (L->nf + 1);
    double s = 0;
    for (int c = 0; c <= L->nf; c++) s += w[c] * a[c];
    return s;
}

static double sample_x(const Layer *L, int64_t i, int p, int points)
{
    return L->xlo[i] + (L->xhi[i] - L->xlo[i]) * p / (points - 1);
}

static double *read_node(Model *m, int node)
{
    double *v = xmalloc((size_t)shape_numel(&m->g.nodes[node].shape) * sizeof *v);
    model_read_value(m, node, v);
    return v;
}

static int layer_open(Layer *L, Model *m, const KanProbeLayer *P, const char *name, char *err, size_t errlen)
{
    const GNode *n = &m->g.nodes[P->node];
    memset(L, 0, sizeof *L);
    L->name = name;
    L->b = kan_basis(n->a.basis);
    if (n->a.basis != KAN_BASIS_BSPLINE || n->a.no_base) { /* a shared grid, another weight layout, no base */
        set_err(err, errlen, "layer %s: inspect draws B-spline layers (efficient-kan's); this one's basis is %s",
                name, L->b ? L->b->name : "unknown");
        return -1;
    }
    if (!L->b || !L->b->reference || !L->b->grid_range) {
        set_err(err, errlen, "layer %s: its basis family (%s) gives no reference values or grid range, "
                             "which inspect evaluates the edges with",
                 name, L->b ? L->b->name : "unknown");
        return -1;
    }
    L->G = n->a.grid_size, L->k = n->a.spline_order, L->act = n->a.act, L->scaler = n->a.has_scaler;
    L->nf = L->b->nf(L->G, L->k), L->len = L->b->grid_len(L->G, L->k);
    L->in = P->in, L->out = shape_last(&n->shape);
    L->grid = read_node(m, n->in[1]);
    double *base = read_node(m, n->in[kan_in_base(&n->a)]), *spline = read_node(m, n->in[kan_in_spline(&n->a)]);
    double *scaler = L->scaler ? read_node(m, n->in[kan_in_scaler(&n->a)]) : NULL;
    int S = L->nf + 1;
    L->w = xmalloc((size_t)(L->out * L->in * S) * sizeof *L->w);
    for (int64_t e = 0; e < L->out * L->in; e++) {
        L->w[e * S] = base[e];
        for (int c = 0; c < L->nf; c++) L->w[e * S + 1 + c] = spline[e * L->nf + c] * (scaler ? scaler[e] : 1);
    }
    free(base), free(spline), free(scaler);
    L->glo = xmalloc((size_t)L->in * 4 * sizeof(double));
    L->ghi = L->glo + L->in, L->xlo = L->ghi + L->in, L->xhi = L->xlo + L->in;
    for (int64_t i = 0; i < L->in; i++) {
        double lo, hi;
        L->b->grid_range(L->grid + i * L->len, L->G, L->k, &lo, &hi);
        if (!isfinite(lo) || !isfinite(hi) || !(hi > lo)) {
            set_err(err, errlen, "layer %s, input %lld: the %s basis gives the grid range [%g, %g]; "
                                 "inspect samples each edge over a finite range",
                     name, (long long)i, L->b->name, lo, hi);
            return -1;
        }
        L->glo[i] = lo, L->ghi[i] = hi;
        L->xlo[i] = lo - INSPECT_WIDEN * (hi - lo), L->xhi[i] = hi + INSPECT_WIDEN * (hi - lo);
    }
    L->outside = xcalloc((size_t)L->in, sizeof *L->outside);
    L->hist = xcalloc((size_t)(L->in * INSPECT_BINS), sizeof *L->hist);
    L->l1 = xcalloc((size_t)(L->out * L->in), sizeof *L->l1);
    return 0;
}

static void layer_free(Layer *L)
{
    free(L->grid), free(L->w), free(L->glo), free(L->outside), free(L->hist), free(L->l1), free(L->rank);
}

/* One batch of the layer's inputs x [rows, in]: the out-of-grid counts, the
   histograms, and |phi_oi| summed over the rows, as one product per input
   (features [rows, nf+1] times that input's weights [out, nf+1]^T). */
static void layer_add_data(Layer *L, const double *x, int64_t rows)
{
    const int S = L->nf + 1;
    const int64_t out = L->out, in = L->in;
    int64_t chunk = ((int64_t)1 << 20) / (out > 0 ? out : 1); /* phi stays within 8 MiB a thread */
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
#pragma omp parallel
    {
        double *a = xmalloc((size_t)(chunk * S) * sizeof *a), *wi = xmalloc((size_t)(out * S) * sizeof *wi);
        double *ph = xmalloc((size_t)(chunk * out) * sizeof *ph), *scratch = xmalloc((size_t)L->len * sizeof *scratch);
        double *col = xmalloc((size_t)out * sizeof *col); /* input i's sums, contiguous */
#pragma omp for schedule(dynamic)
        for (int64_t i = 0; i < in; i++) { /* input i's counts and l1 column belong to one thread */
            for (int64_t o = 0; o < out; o++) memcpy(wi + o * S, L->w + (o * in + i) * S, S * sizeof *wi);
            double span = L->xhi[i] - L->xlo[i];
            memset(col, 0, (size_t)out * sizeof *col);
            for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
                int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
                for (int64_t r = 0; r < nr; r++) {
                    double v = x[(r0 + r) * in + i];
                    L->outside[i] += v < L->glo[i] || v > L->ghi[i];
                    if (v >= L->xlo[i] && v <= L->xhi[i]) {
                        int bin = (int)((v - L->xlo[i]) / span * INSPECT_BINS);
                        L->hist[i * INSPECT_BINS + (bin < INSPECT_BINS ? bin : INSPECT_BINS - 1)] += 1;
                    }
                    features(L, i, v, a + r * S, scratch);
                }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)out, S, 1.0, a, S, wi, S,
                            0.0, ph, (int)out);
                for (int64_t r = 0; r < nr; r++)
                    for (int64_t o = 0; o < out; o++) col[o] += fabs(ph[r * out + o]);
            }
            for (int64_t o = 0; o < out; o++) L->l1[o * in + i] += col[o];
        }
        free(a), free(wi), free(ph), free(scratch), free(col);
    }
    L->samples += rows;
}

/* the features of every sampled point: [in, points, nf + 1] */
static double *sampled_features(const Layer *L, int points)
{
    const int S = L->nf + 1;
    double *A = xmalloc((size_t)(L->in * points * S) * sizeof *A);
#pragma omp parallel
    {
        double *scratch = xmalloc((size_t)L->len * sizeof *scratch);
#pragma omp for
        for (int64_t i = 0; i < L->in; i++)
            for (int p = 0; p < points; p++)
                features(L, i, sample_x(L, i, p, points), A + (i * points + p) * S, scratch);
        free(scratch);
    }
    return A;
}

static int by_l1(const void *pa, const void *pb)
{
    const Edge *a = pa, *b = pb;
    if (a->l1 != b->l1) return a->l1 < b->l1 ? 1 : -1;
    if (a->o != b->o) return a->o < b->o ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* l1 to means (over the data, or over the sampled points without data) and the ranking */
static void layer_rank(Layer *L, const double *A, int points)
{
    const int S = L->nf + 1;
    if (L->samples > 0) {
        for (int64_t e = 0; e < L->out * L->in; e++) L->l1[e] /= (double)L->samples;
    } else {
#pragma omp parallel for
        for (int64_t o = 0; o < L->out; o++)
            for (int64_t i = 0; i < L->in; i++) {
                double s = 0;
                for (int p = 0; p < points; p++) s += fabs(phi(L, o, i, A + (i * points + p) * S));
                L->l1[o * L->in + i] = s / points;
            }
    }
    L->rank = xmalloc((size_t)(L->out * L->in) * sizeof *L->rank);
    for (int64_t o = 0, e = 0; o < L->out; o++)
        for (int64_t i = 0; i < L->in; i++, e++) L->rank[e] = (Edge){o, i, L->l1[e]};
    qsort(L->rank, (size_t)(L->out * L->in), sizeof *L->rank, by_l1);
}

/* a file of the output folder, checked on close */
static int close_checked(FILE *f, const char *path, char *err, size_t errlen)
{
    int bad = ferror(f);
    if (fclose(f) || bad) {
        set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

/* <layer>.csv: one row per sampled point; per input i (increasing) x_<i>,
   then o<o>_i<i> for its edges in increasing o. csv_top > 0 keeps only the
   csv_top top-ranked edges (and the inputs they come from). */
static int write_csv(const Layer *L, const double *A, int points, int64_t csv_top, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    const int S = L->nf + 1;
    int64_t edges = L->out * L->in;
    char *pick = xcalloc((size_t)edges, 1), *used = xcalloc((size_t)L->in, 1);
    int64_t keep = csv_top > 0 && csv_top < edges ? csv_top : edges;
    for (int64_t e = 0; e < keep; e++) pick[L->rank[e].o * L->in + L->rank[e].i] = 1, used[L->rank[e].i] = 1;
    const char *sep = "";
    for (int64_t i = 0; i < L->in; i++) {
        if (!used[i]) continue;
        fprintf(f, "%sx_%lld", sep, (long long)i), sep = ",";
        for (int64_t o = 0; o < L->out; o++)
            if (pick[o * L->in + i]) fprintf(f, ",o%lld_i%lld", (long long)o, (long long)i);
    }
    fputc('\n', f);
    /* rows are formatted in parallel, a block at a time, and written in order;
       a value takes at most 17 characters ("-1.23456789e-300,") */
    int64_t cols = 0;
    for (int64_t i = 0; i < L->in; i++) cols += used[i];
    cols += keep;
    size_t row_cap = (size_t)cols * 17 + 2;
    int block = (int)(((size_t)64 << 20) / row_cap);
    block = block < 1 ? 1 : block > points ? points : block;
    char *buf = xmalloc(row_cap * block);
    size_t *len = xmalloc((size_t)block * sizeof *len);
    for (int p0 = 0; p0 < points; p0 += block) {
        int nb = points - p0 < block ? points - p0 : block;
#pragma omp parallel for schedule(dynamic)
        for (int b = 0; b < nb; b++) {
            int p = p0 + b;
            char *row = buf + row_cap * b;
            size_t at = 0;
            for (int64_t i = 0; i < L->in; i++) {
                if (!used[i]) continue;
                const double *a = A + (i * points + p) * S;
                at += (size_t)snprintf(row + at, row_cap - at, "%s%.9g", at ? "," : "", sample_x(L, i, p, points));
                for (int64_t o = 0; o < L->out; o++)
                    if (pick[o * L->in + i]) at += (size_t)snprintf(row + at, row_cap - at, ",%.9g", phi(L, o, i, a));
            }
            row[at++] = '\n';
            len[b] = at;
        }
        for (int b = 0; b < nb; b++) fwrite(buf + row_cap * b, 1, len[b], f);
    }
    free(buf), free(len), free(pick), free(used);
    return close_checked(f, path, err, errlen);
}

/* v in the fewest digits that read back as exactly v (cJSON's own printing
   may lose the last bit); every value written is finite */
static cJSON *exact_number(double v)
{
    char b[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(b, sizeof b, "%.*g", digits, v);
        if (strtod(b, NULL) == v) break;
    }
    return cJSON_CreateRaw(b);
}

static cJSON *exact_array(const double *v, int64_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, exact_number(v[i]));
    return arr;
}

static cJSON *pairs(const double *a, const double *b, int64_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, exact_array((double[]){a[i], b[i]}, 2));
    return arr;
}

static int write_json(const Layer *L, const char *data, int64_t batches, int points, int shown, const char *png,
                      const char *path, char *err, size_t errlen)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "layer", L->name);
    cJSON_AddNumberToObject(j, "in", (double)L->in);
    cJSON_AddNumberToObject(j, "out", (double)L->out);
    cJSON_AddStringToObject(j, "basis", L->b->name);
    cJSON_AddNumberToObject(j, "grid_size", L->G);
    cJSON_AddNumberToObject(j, "spline_order", L->k);
    cJSON_AddNumberToObject(j, "basis_functions", L->nf);
    cJSON_AddStringToObject(j, "base_activation", act_name(L->act));
    cJSON_AddBoolToObject(j, "spline_scaler", L->scaler);
    cJSON *grid = cJSON_AddArrayToObject(j, "grid");
    for (int64_t i = 0; i < L->in; i++) cJSON_AddItemToArray(grid, exact_array(L->grid + i * L->len, L->len));
    cJSON_AddItemToObject(j, "grid_range", pairs(L->glo, L->ghi, L->in));
    cJSON_AddItemToObject(j, "sampled_range", pairs(L->xlo, L->xhi, L->in));
    cJSON_AddNumberToObject(j, "points", points);
    if (L->samples > 0) {
        cJSON *d = cJSON_AddObjectToObject(j, "data");
        cJSON_AddStringToObject(d, "path", data);
        cJSON_AddNumberToObject(d, "batches", (double)batches);
        cJSON_AddNumberToObject(d, "samples_per_input", (double)L->samples);
        int64_t total = 0;
        double *per = xmalloc((size_t)L->in * sizeof *per);
        for (int64_t i = 0; i < L->in; i++) total += L->outside[i], per[i] = (double)L->outside[i] / L->samples;
        cJSON_AddItemToObject(d, "out_of_grid", exact_number((double)total / ((double)L->samples * L->in)));
        cJSON_AddItemToObject(d, "out_of_grid_per_input", exact_array(per, L->in));
        free(per);
    } else {
        cJSON_AddNullToObject(j, "data");
    }
    cJSON *r = cJSON_AddObjectToObject(j, "ranking");
    cJSON_AddStringToObject(r, "by", L->samples > 0 ? "mean |phi_oi(x_i)| over the data"
                                                    : "mean |phi_oi(x)| over the sampled points");
    cJSON *l1 = cJSON_AddArrayToObject(r, "l1");
    for (int64_t o = 0; o < L->out; o++) cJSON_AddItemToArray(l1, exact_array(L->l1 + o * L->in, L->in));
    cJSON *top = cJSON_AddArrayToObject(r, "top");
    for (int64_t e = 0; e < L->out * L->in && e < INSPECT_RANKED; e++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "out", (double)L->rank[e].o);
        cJSON_AddNumberToObject(t, "in", (double)L->rank[e].i);
        cJSON_AddItemToObject(t, "l1", exact_number(L->rank[e].l1));
        cJSON_AddItemToArray(top, t);
    }
    cJSON *pl = cJSON_AddObjectToObject(j, "plot");
    cJSON_AddStringToObject(pl, "file", png);
    cJSON_AddNumberToObject(pl, "edges_shown", shown);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    FILE *f = fopen(path, "w");
    if (!f) {
        set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    fputs(text, f);
    fputc('\n', f);
    free(text);
    return close_checked(f, path, err, errlen);
}

static int write_png(const Layer *L, const double *A, int points, int64_t batches, int shown, const char *path,
                     char *err, size_t errlen)
{
    const int S = L->nf + 1;
    PlotPanel *pp = xcalloc((size_t)shown, sizeof *pp);
    double *xy = xmalloc((size_t)shown * 2 * points * sizeof *xy);
    double *hist = xmalloc((size_t)shown * INSPECT_BINS * sizeof *hist);
    char (*labels)[64] = xmalloc((size_t)shown * sizeof *labels);
    for (int e = 0; e < shown; e++) {
        const Edge *E = &L->rank[e];
        double *x = xy + (size_t)e * 2 * points, *y = x + points;
        for (int p = 0; p < points; p++) {
            x[p] = sample_x(L, E->i, p, points);
            y[p] = phi(L, E->o, E->i, A + (E->i * points + p) * S);
        }
        snprintf(labels[e], sizeof labels[e], "o%lld i%lld   L1 %.3g", (long long)E->o, (long long)E->i, E->l1);
        memcpy(hist + e * INSPECT_BINS, L->hist + E->i * INSPECT_BINS, INSPECT_BINS * sizeof *hist);
        pp[e] = (PlotPanel){.label = labels[e], .x = x, .y = y, .n = points, .x_lo = L->xlo[E->i],
                            .x_hi = L->xhi[E->i], .mark_lo = L->glo[E->i], .mark_hi = L->ghi[E->i],
                            .hist = L->samples > 0 ? hist + e * INSPECT_BINS : NULL, .nbins = INSPECT_BINS};
    }
    int64_t edges = L->out * L->in;
    char count[64], by[160];
    if (shown < edges)
        snprintf(count, sizeof count, "top %d of %lld edges", shown, (long long)edges);
    else
        snprintf(count, sizeof count, "all %lld edges", (long long)edges);
    if (L->samples > 0)
        snprintf(by, sizeof by, "by L1 on the data (%lld batch%s, %lld samples per input; bars: its histogram)",
                 (long long)batches, batches == 1 ? "" : "es", (long long)L->samples);
    else
        snprintf(by, sizeof by, "by L1 over the sampled range (no --data)");
    char *title = xasprintf("%s: %lld x %lld, %s G=%d k=%d, base %s\n%s %s; dashed: the grid range", L->name,
                            (long long)L->in, (long long)L->out, L->b->name, L->G, L->k, act_name(L->act), count,
                            by);
    int rc = plot_sheet_png(path, title, pp, shown, err, errlen);
    free(title), free(pp), free(xy), free(hist), free(labels);
    return rc;
}

/* the layer's stdout line */
static void print_summary(const Layer *L)
{
    char grid[32] = "-";
    if (L->samples > 0) {
        int64_t total = 0;
        for (int64_t i = 0; i < L->in; i++) total += L->outside[i];
        snprintf(grid, sizeof grid, "%.1f%%", 100.0 * total / ((double)L->samples * L->in));
    }
    printf("%s  %lld x %lld  out of grid %s  top", L->name, (long long)L->in, (long long)L->out, grid);
    for (int64_t e = 0; e < 3 && e < L->out * L->in; e++)
        printf("%s o%lld_i%lld (%.3g)", e ? "," : "", (long long)L->rank[e].o, (long long)L->rank[e].i,
               L->rank[e].l1);
    putchar('\n');
}

/* ---- choosing layers ---- */

typedef struct {
    const char **v;
    int n, cap;
} Patterns;

/* the parser's context: --set and --preset (weights.h's handlers take it as
   their ConfigSets, its first member) and the --layer patterns */
typedef struct {
    ConfigSets sets;
    Patterns pat;
} InspectCtx;

static int add_pattern(const char *value, void *ctx)
{
    Patterns *p = &((InspectCtx *)ctx)->pat;
    if (p->n == p->cap) p->v = xrealloc(p->v, (size_t)(p->cap = p->cap ? 2 * p->cap : 8) * sizeof *p->v);
    p->v[p->n++] = value;
    return 0;
}

/* The probe's name of layer l, except for a layer at the model's root
   (kan_linear(x, out) in the model itself, state_dict names "grid",
   "base_weight", ...), which the probe would call "grid": "root". */
static const char *layer_name(const Model *m, const KanProbeLayer *L)
{
    return strcmp(m->g.nodes[L->grid].name, "grid") ? L->name : "root";
}

/* NAME itself, a prefix of it ending at a dot, or a glob matching it */
static int layer_matches(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (!strncmp(pattern, name, n) && (name[n] == 0 || name[n] == '.' || (n && pattern[n - 1] == '.'))) return 1;
    return fnmatch(pattern, name, 0) == 0;
}

/* chosen[l] for the probe's layers; -1 with the message when a pattern matches none */
static int choose_layers(const KanProbe *p, const char *const *names, const Patterns *pat, char *chosen,
                         char *err, size_t errlen)
{
    memset(chosen, pat->n == 0, (size_t)p->n);
    for (int k = 0; k < pat->n; k++) {
        int hit = 0;
        for (int l = 0; l < p->n; l++)
            if (layer_matches(pat->v[k], names[l])) chosen[l] = 1, hit = 1;
        if (hit) continue;
        int at = snprintf(err, errlen, "--layer '%s' names no KAN layer of the model; its %d layer%s ", pat->v[k],
                          p->n, p->n == 1 ? " is" : "s are");
        for (int l = 0; l < p->n && l < 6 && at > 0 && (size_t)at < errlen; l++)
            at += snprintf(err + at, errlen - at, "%s%s", l ? ", " : "", names[l]);
        if (p->n > 6 && at > 0 && (size_t)at < errlen) snprintf(err + at, errlen - at, ", ...");
        return -1;
    }
    return 0;
}

/* ---- the run and the output folder ---- */

/* 1 when path (existing or not) lies in dir or is dir */
static int path_inside(const char *dir, const char *path)
{
    char *d = realpath(dir, NULL);
    if (!d) return 0;
    /* the deepest existing ancestor of path, resolved, and the rest as given */
    char *p = xstrdup(path), *rest = NULL, *real = NULL;
    for (;;) {
        real = realpath(p, NULL);
        if (real) break;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) {
            free(p);
            p = xstrdup(slash == p ? "/" : ".");
            rest = xstrdup(path[0] == '/' ? path + 1 : path);
            real = realpath(p, NULL);
            break;
        }
        *slash = 0;
        free(rest);
        rest = xstrdup(path + strlen(p) + 1);
    }
    int inside = 0;
    if (real) {
        char *full = rest && *rest ? xasprintf("%s/%s", strcmp(real, "/") ? real : "", rest) : xstrdup(real);
        size_t n = strlen(d);
        inside = !strncmp(full, d, n) && (full[n] == 0 || full[n] == '/' || !strcmp(d, "/"));
        free(full);
    }
    free(d), free(p), free(rest), free(real);
    return inside;
}

/* RUN must be a run folder (holding model.safetensors) or a checkpoint file */
static int check_run(const char *run, char *err, size_t errlen)
{
    struct stat st;
    if (stat(run, &st) != 0) {
        set_err(err, errlen, "%s: no such run folder or checkpoint (%s)", run, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        char *model = xasprintf("%s/model.safetensors", run);
        int ok = stat(model, &st) == 0 && S_ISREG(st.st_mode);
        free(model);
        if (!ok) {
            set_err(err, errlen, "%s is not a run folder: it holds no model.safetensors (the checkpoint "
                                 "kanrun train --out writes)", run);
            return -1;
        }
    }
    return 0;
}

/* 1 when both are NULL or both name the same file */
static int same_source(const char *a, const char *b) { return a == b || (a && b && run_same_path(a, b)); }

/* the layers' inputs on `batches` fixed validation batches of data */
static int collect_data(Model *m, KanProbe *probe, Layer *layers, const char *chosen, const char *run,
                        const CkptInfo *info, Tokenizer *tok, const char *data, int64_t batches, int64_t seed,
                        char *err, size_t errlen)
{
    char *run_data = NULL, *run_val = NULL, *cache = NULL, rerr[600];
    const char *val = NULL;
    /* the run's own data: its token cache, only read */
    if (run && run_recorded_data(run, info->step, &run_data, &run_val, rerr, sizeof rerr) == 0 &&
        same_source(data, run_data)) {
        val = run_val;
        cache = xasprintf("%s/tokens", run);
    }
    /* the batches of the run's objective (objective.h): masked for mlm, rows of a table */
    ObjRecord rec = {.kind = objective_default(data), .mask_prob = OBJ_DEFAULT_MASK_PROB, .mask_id = -1};
    Objective o = {0};
    Table tt = {0}, tv = {0};
    Corpus c = {0};
    int rc = run && objective_recorded(run, info->step, &rec, err, errlen) ? -1 : 0;
    if (!rc && rec.kind == OBJ_TABLE)
        rc = objective_load_tables(data, val, &tt, &tv, err, errlen) || objective_open_table(&o, m, &tt, &tv, err, errlen)
                 ? -1
                 : 0;
    else if (!rc)
        rc = objective_open_tokens(&o, m, rec.kind, tok_vocab_size(tok), rec.mask_prob, NULL, err, errlen) ||
                     corpus_prepare_readonly(data, val, tok, cache, &c, err, errlen) ||
                     objective_set_corpus(&o, &c, err, errlen)
                 ? -1
                 : 0;
    for (int64_t j = 0; j < batches && !rc; j++) {
        if (objective_eval_batch(&o, (uint64_t)seed, j, err, errlen)) {
            rc = -1;
            break;
        }
        kan_probe_collect(probe, m);
        for (int l = 0, at = 0; l < probe->n && !rc; l++) {
            if (!chosen[l]) continue;
            const KanProbeLayer *P = &probe->layers[l];
            for (int64_t q = 0; q < P->rows * P->in; q++)
                if (!isfinite(P->x[q])) {
                    set_err(err, errlen, "layer %s: its input on batch %lld holds %s (row %lld, input %lld): "
                                         "the weights are broken",
                            layers[at].name, (long long)j, isnan(P->x[q]) ? "NaN" : "an infinity",
                            (long long)(q / P->in), (long long)(q % P->in));
                    rc = -1;
                    break;
                }
            if (!rc) layer_add_data(&layers[at++], P->x, P->rows);
        }
    }
    free(run_data), free(run_val), free(cache);
    objective_free(&o);
    table_free(&tt), table_free(&tv);
    corpus_free(&c);
    return rc;
}

/* writes the three files of one layer */
static int write_layer(Layer *L, const char *dir, const char *data, int64_t batches, int points, int64_t top,
                       int64_t csv_top, char *err, size_t errlen)
{
    double *A = sampled_features(L, points);
    layer_rank(L, A, points);
    int64_t edges = L->out * L->in;
    int shown = (int)(top < edges ? top : edges);
    char *csv = xasprintf("%s/%s.csv", dir, L->name), *json = xasprintf("%s/%s.json", dir, L->name);
    char *png = xasprintf("%s/%s.png", dir, L->name), *png_name = xasprintf("%s.png", L->name);
    int rc = write_csv(L, A, points, csv_top, csv, err, errlen) ||
                     write_json(L, data, batches, points, shown, png_name, json, err, errlen) ||
                     write_png(L, A, points, batches, shown, png, err, errlen)
                 ? -1
                 : 0;
    if (!rc) print_summary(L);
    free(A), free(csv), free(json), free(png), free(png_name);
    return rc;
}

int inspect_main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    int64_t batches = 4, seed = 1337, points = 201, top = 64, csv_top = 0, threads = 0;
    InspectCtx ctx = {0};
    WeightsArgs w = {0};
    CliOpt wopts[WEIGHTS_NOPTS];
    weights_opts(&w, wopts);
    const CliOpt opts[] = {
        CLI_CALL("layer", add_pattern, "NAME",
                 "a KAN layer: its state_dict prefix, a prefix of it at a dot,\nor a glob (repeatable; default: every KAN layer)"),
        CLI_STR("data", &data, "PATH", "text to run the model on (its validation split: the last\n10%): histograms, out-of-grid fraction, L1 on the data"),
        CLI_INT("batches", &batches, 1, CLI_INT_MAX, "B", "fixed validation batches of --data (default 4)"),
        CLI_INT("seed", &seed, 0, CLI_INT_MAX, "S", "which fixed batches (default 1337, as kanrun eval)"),
        CLI_INT("points", &points, 2, 100000, "P", "sampled x per input (default 201)"),
        CLI_INT("top", &top, 1, 4096, "N", "edges plotted per layer, the top N by L1 norm (default 64)"),
        CLI_INT("csv-top", &csv_top, 0, CLI_INT_MAX, "N", "write only the top N edges to the CSV (default 0: all)"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
        {.name = "out", .short_name = 'o', .kind = CLI_KIND_STR, .dst = &out, .arg = "DIR",
         .help = "the folder to write into (created if missing; not inside RUN)"},
        wopts[0], wopts[1], wopts[2], wopts[3],
    };
    CliSpec spec = {"kanrun inspect", INSPECT_USAGE, INSPECT_EPILOG, opts, CLI_COUNT(opts), 1, 1, &ctx};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    w.sets = ctx.sets; /* freed once, through w */
    const char *run_path = w.weights = r ? NULL : pos[0];
    char err[16384];
    char *run = NULL, *chosen = NULL;
    const char **names = NULL;
    Model m = {0};
    CkptInfo info = {0};
    Tokenizer *tok = NULL;
    KanProbe probe = {0};
    Layer *layers = NULL;
    int nl = 0, rc = 2;
    if (r) {
        rc = r > 0 ? 0 : 2;
        goto done;
    }
    if (!out) {
        fprintf(stderr, "kanrun inspect: error: -o DIR is needed (the folder for the CSV, JSON and PNG files)\n%s",
                INSPECT_USAGE);
        goto done;
    }
    if (!w.model) { /* a run folder or a checkpoint file; with --model any state_dict file */
        if (check_run(run_path, err, sizeof err)) {
            fprintf(stderr, "kanrun inspect: error: %s\n", err);
            rc = 1;
            goto done;
        }
        run = run_dir_of(run_path); /* NULL: a checkpoint file outside a run */
        const char *owner = run ? run : run_path;
        if (path_inside(owner, out) || run_same_path(run_path, out)) {
            fprintf(stderr, "kanrun inspect: error: -o %s lies inside the run %s, which inspect only reads: "
                            "choose a folder outside it\n", out, owner);
            goto done;
        }
    }
    rc = 1;
    set_threads((int)threads);
    if (weights_open(&w, NULL, "auto", "kanrun inspect", &m, &info, data ? &tok : NULL, err, sizeof err)) {
        fprintf(stderr, "kanrun inspect: error: %s\n", err);
        goto done;
    }
    if (kan_probe_init(&probe, &m) == 0) {
        fprintf(stderr, "kanrun inspect: error: %s: the model has no KAN layers\n", info.file);
        goto done;
    }
    names = xmalloc((size_t)probe.n * sizeof *names);
    for (int l = 0; l < probe.n; l++) names[l] = layer_name(&m, &probe.layers[l]);
    chosen = xmalloc((size_t)probe.n);
    if (choose_layers(&probe, names, &ctx.pat, chosen, err, sizeof err)) {
        fprintf(stderr, "kanrun inspect: error: %s\n", err);
        rc = 2;
        goto done;
    }
    layers = xcalloc((size_t)probe.n, sizeof *layers);
    for (int l = 0; l < probe.n; l++)
        if (chosen[l] && layer_open(&layers[nl++], &m, &probe.layers[l], names[l], err, sizeof err)) {
            fprintf(stderr, "kanrun inspect: error: %s\n", err);
            goto done;
        }
    if (data && collect_data(&m, &probe, layers, chosen, run, &info, tok, data, batches, seed, err, sizeof err)) {
        fprintf(stderr, "kanrun inspect: error: %s\n", err);
        goto done;
    }
    if (make_dirs(out, err, sizeof err)) {
        fprintf(stderr, "kanrun inspect: error: -o %s: %s\n", out, err);
        goto done;
    }
    for (int l = 0; l < nl; l++)
        if (write_layer(&layers[l], out, data, batches, (int)points, top, csv_top, err, sizeof err)) {
            fprintf(stderr, "kanrun inspect: error: %s\n", err);
            goto done;
        }
    rc = 0;
done:
    for (int l = 0; l < nl; l++) layer_free(&layers[l]);
    free(layers), free(chosen), free(names), free(run), free(ctx.pat.v);
    kan_probe_free(&probe);
    if (tok) tok_close(tok);
    model_free(&m);
    ckpt_info_free(&info);
    config_sets_free(&w.sets);
    return rc;
}
