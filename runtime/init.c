/* init.c: parameter and buffer initialisation by rule. */
#include "init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "rng.h"
#include "util.h"

/* LAPACK (from OpenBLAS): least squares / minimum norm solution of A X = B */
extern void dgels_(const char *trans, const int *m, const int *n, const int *nrhs, double *a,
                   const int *lda, double *b, const int *ldb, double *work, const int *lwork,
                   int *info);

typedef struct {
    const Plan *p;
    size_t rs;
    void *params, *buffers;
} Init;

static void put(const Init *e, void *base, int64_t i, double v)
{
    if (e->rs == 8)
        ((double *)base)[i] = v;
    else
        ((float *)base)[i] = (float)v;
}

static double get(const Init *e, const void *base, int64_t i)
{
    return e->rs == 8 ? ((const double *)base)[i] : (double)((const float *)base)[i];
}

static double uniform(uint64_t seed, uint64_t stream, uint64_t i)
{
    return (double)(kanc_rng_bits(seed, stream, i) >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(uint64_t seed, uint64_t stream, uint64_t i)
{
    double u1 = uniform(seed, stream, 2 * i), u2 = uniform(seed, stream, 2 * i + 1);
    return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
}

/* efficient-kan's curve2coeff: spline weights [out, in, nf] fitting noise at the
   basis' fit points (the B-splines: the G+1 interior knots) by least squares */
static int init_kan_spline(const Init *e, const GNode *n, void *dst, uint64_t seed, uint64_t stream,
                           char *err, size_t errlen)
{
    const void *t = (const char *)e->buffers + e->p->pos[n->init_ref] * (int64_t)e->rs;
    const KanBasis *b = kan_basis(n->a.basis);
    int G = n->a.grid_size, k = n->a.spline_order;
    int64_t out = n->shape.d[0], in = n->shape.d[1];
    int nb = b->nf(G, k), nk = b->grid_len(G, k);
    double *grid = xcalloc((size_t)nk, sizeof(double)), *pts = xmalloc(sizeof(double) * (size_t)nk);
    int m = b->fit_points(grid, G, k, pts), ldb = m > nb ? m : nb;
    int nrhs = (int)out, info = 0, lwork = -1;
    double *A = xmalloc(sizeof(double) * (size_t)(m * nb));
    double *B = xmalloc(sizeof(double) * (size_t)(ldb * out));
    double *row = xmalloc(sizeof(double) * (size_t)nb), *scratch = xmalloc(sizeof(double) * (size_t)nk), wq;
    dgels_("N", &m, &nb, &nrhs, A, &m, B, &ldb, &wq, &lwork, &info);
    lwork = (int)wq + 1;
    double *work = xmalloc(sizeof(double) * (size_t)lwork);
    int rc = 0;
    for (int64_t i = 0; i < in && !rc; i++) {
        for (int j = 0; j < nk; j++) grid[j] = get(e, t, i * nk + j);
        b->fit_points(grid, G, k, pts);
        for (int r = 0; r < m; r++) { /* column-major A[r, c] = f_c(point r) */
            b->reference(grid, pts[r], G, k, row, scratch);
            for (int c = 0; c < nb; c++) A[r + c * m] = row[c];
        }
        for (int64_t o = 0; o < out; o++)
            for (int r = 0; r < m; r++)
                B[r + o * ldb] = (uniform(seed, stream, (uint64_t)((r * in + i) * out + o)) - 0.5) *
                                 n->init_a / G;
        dgels_("N", &m, &nb, &nrhs, A, &m, B, &ldb, work, &lwork, &info);
        if (info != 0) {
            snprintf(err, errlen, "init: spline fit of '%s' failed (LAPACK info %d)", n->name, info);
            rc = -1;
        }
        for (int64_t o = 0; o < out && !rc; o++)
            for (int c = 0; c < nb; c++) put(e, dst, (o * in + i) * nb + c, B[c + o * ldb]);
    }
    free(A), free(B), free(grid), free(pts), free(row), free(scratch), free(work);
    return rc;
}

static void init_buffer(const Init *e, const GNode *n)
{
    void *dst = (char *)e->buffers + e->p->pos[n->id] * (int64_t)e->rs;
    int64_t numel = shape_numel(&n->shape);
    if (n->init == INIT_KAN_GRID) {
        const KanBasis *b = kan_basis(n->a.basis);
        int G = n->a.grid_size, k = n->a.spline_order, len = b->grid_len(G, k);
        double *row = xmalloc(sizeof(double) * (size_t)len);
        b->init_grid(row, G, k, n->init_a, n->init_b);
        for (int64_t i = 0; i < numel / len; i++)
            for (int j = 0; j < len; j++) put(e, dst, i * len + j, row[j]);
        free(row);
    } else if (n->init == INIT_TRIL) {
        int64_t T = shape_last(&n->shape);
        for (int64_t r = 0; r < numel / T; r++)
            for (int64_t c = 0; c < T; c++) put(e, dst, r * T + c, c <= r % T ? 1 : 0);
    } else if (n->init == INIT_ONES) {
        for (int64_t i = 0; i < numel; i++) put(e, dst, i, 1);
    } else if (n->init == INIT_ZEROS) {
        for (int64_t i = 0; i < numel; i++) put(e, dst, i, 0);
    }
}

void init_buffers(const Plan *p, void *buffers)
{
    Init e = {p, p->real_size, NULL, buffers};
    for (int i = 0; i < p->g->n; i++)
        if (p->g->nodes[i].op == OP_BUFFER) init_buffer(&e, &p->g->nodes[i]);
}

int init_state(const Plan *p, void *params, void *buffers, uint64_t seed, char *err, size_t errlen)
{
    Init init = {p, p->real_size, params, buffers}, *e = &init;
    init_buffers(p, buffers);
    for (int i = 0; i < p->g->n; i++) {
        const GNode *n = &p->g->nodes[i];
        if (n->op != OP_PARAM) continue;
        void *dst = (char *)params + p->pos[i] * (int64_t)e->rs;
        int64_t numel = shape_numel(&n->shape);
        uint64_t stream = (uint64_t)i + 1;
        switch (n->init) {
        case INIT_ZEROS:
        case INIT_ONES:
            for (int64_t j = 0; j < numel; j++) put(e, dst, j, n->init == INIT_ONES);
            break;
        case INIT_NORMAL:
            for (int64_t j = 0; j < numel; j++) put(e, dst, j, n->init_a * normal(seed, stream, j));
            break;
        case INIT_KAIMING_UNIFORM: { /* torch: bound = sqrt(3) * sqrt(2 / (1 + a^2)) / sqrt(fan_in) */
            int64_t fan_in = n->shape.nd ? numel / n->shape.d[0] : 1;
            double bound = sqrt(3.0) * sqrt(2.0 / (1 + n->init_a * n->init_a)) / sqrt((double)fan_in);
            for (int64_t j = 0; j < numel; j++)
                put(e, dst, j, (2 * uniform(seed, stream, j) - 1) * bound);
            break;
        }
        case INIT_UNIFORM:
            for (int64_t j = 0; j < numel; j++) put(e, dst, j, (2 * uniform(seed, stream, j) - 1) * n->init_a);
            break;
        case INIT_TRUNC_NORMAL: /* torch.nn.init.trunc_normal_(std = init_a): N(0, std^2) within [-2, 2] */
            for (int64_t j = 0; j < numel; j++) {
                double v = 0;
                for (uint64_t draw = 0;; draw++) { /* rejection: a bounded number of draws in practice */
                    v = n->init_a * normal(seed, stream, (uint64_t)j + draw * (uint64_t)numel);
                    if (fabs(v) <= 2) break;
                }
                put(e, dst, j, v);
            }
            break;
        case INIT_KAN_SPLINE:
            if (init_kan_spline(e, n, dst, seed, stream, err, errlen)) return -1;
            break;
        default:
            snprintf(err, errlen, "init: parameter '%s' has no initialisation rule", n->name);
            return -1;
        }
    }
    return 0;
}
