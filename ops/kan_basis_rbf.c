/* kan_basis_rbf.c: FastKAN's Gaussian radial basis (ZiyaoLi/fast-kan).
 *
 * num_grids G (GAttr grid_size; spline_order is 0) functions per input,
 * exp(-((u - c_g) / h)^2) at the centres c = rbf.grid, one row of G values
 * that every input shares (linspace(grid_min, grid_max, G) at init; frozen:
 * a buffer, never trained), with FastKAN's denominator h = the centres'
 * spacing (c_{G-1} - c_0) / (G - 1), taken from the grid itself. The weights
 * are spline_linear.weight [out, in * G], the op's [out, in, G] order. The
 * LayerNorm on u and the base branch base_linear(act(x)) are ordinary nodes
 * around the op (ops/kan.c, kan_one_rbf).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "util.h"

static int rbf_nf(int G, int k) { return G; }
static int rbf_grid_len(int G, int k) { return G; }

/* torch.linspace's values: from each end towards the middle */
static double centre(int g, int G, double lo, double hi)
{
    double step = (hi - lo) / (G - 1);
    return g < G / 2 ? lo + g * step : hi - (G - 1 - g) * step;
}

static const char *rbf_check_options(int G, int k, double lo, double hi)
{
    if (G < 2 || k != 0) return "needs num_grids >= 2";
    float prev = -INFINITY;
    for (int g = 0; g < G; g++) {
        float c = (float)centre(g, G, lo, hi);
        if (!isfinite(c) || !(c > prev))
            return "must give finite, strictly increasing float32 centres linspace(lo, hi, num_grids)";
        prev = c;
    }
    return NULL;
}

static void rbf_init_grid(double *row, int G, int k, double lo, double hi)
{
    for (int g = 0; g < G; g++) row[g] = centre(g, G, lo, hi);
}

static int64_t rbf_check_grid(const double *row, int G, int k, char *why, size_t whylen)
{
    for (int g = 1; g < G; g++)
        if (!(row[g] > row[g - 1])) {
            snprintf(why, whylen,
                     "is not strictly increasing (centre %d is %g, centre %d is %g): FastKAN's rbf.grid is "
                     "linspace(grid_min, grid_max, num_grids)",
                     g - 1, row[g - 1], g, row[g]);
            return g;
        }
    return -1;
}

static int rbf_fit_points(const double *row, int G, int k, double *x)
{
    memcpy(x, row, sizeof(double) * (size_t)G);
    return G;
}

static void rbf_reference(const double *row, double x, int G, int k, double *v, double *scratch)
{
    double h = (row[G - 1] - row[0]) / (G - 1);
    for (int g = 0; g < G; g++) {
        double z = (x - row[g]) / h;
        v[g] = exp(-z * z);
    }
}

/* the centres' span: past it every Gaussian is on its tail */
static void rbf_grid_range(const double *row, int G, int k, double *lo, double *hi)
{
    *lo = row[0];
    *hi = row[G - 1];
}

#define REAL    float
#define K(name) name##_f32
#define RBF_EXP expf
#include "kan_basis_rbf_cpu.inc"
#undef REAL
#undef K
#undef RBF_EXP
#define REAL    double
#define K(name) name##_f64
#define RBF_EXP exp
#include "kan_basis_rbf_cpu.inc"
#undef REAL
#undef K
#undef RBF_EXP

const KanBasis kan_basis_rbf = {
    .name = "rbf",
    .nf = rbf_nf,
    .grid_len = rbf_grid_len,
    .check_options = rbf_check_options,
    .init_grid = rbf_init_grid,
    .check_grid = rbf_check_grid,
    .fit_points = rbf_fit_points,
    .reference = rbf_reference,
    .grid_range = rbf_grid_range,
    .cpu_f32 = &rbf_cpu_f32,
    .cpu_f64 = &rbf_cpu_f64,
    .cuda_type = "KancRbf<%d>",
    .weight_in_major = 0, /* spline_linear.weight [out, in * num_grids] */
    .shared_grid = 1,     /* rbf.grid [num_grids] */
    .grid_i64 = 0,
};
