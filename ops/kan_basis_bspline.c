/* kan_basis_bspline.c: efficient-kan's B-spline basis (DESIGN.md 4).
 *
 * Order k on G intervals of [lo, hi]: nf = G + k functions per input on a grid
 * of G + 2k + 1 knots, lo + (j - k) (hi - lo) / G for j = 0 .. G + 2k (the
 * grid extends k intervals past each end). B_c is non-zero on
 * [t_c, t_{c+k+1}) only, so at most k + 1 functions are non-zero at any x.
 * The spline weights start as the least-squares fit of small noise at the
 * G + 1 knots t_k .. t_{G+k} (efficient-kan's curve2coeff).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "util.h"

static int bspline_nf(int G, int k) { return G + k; }
static int bspline_grid_len(int G, int k) { return G + 2 * k + 1; }

static double knot(int j, int G, int k, double lo, double hi)
{
    return (double)(j - k) * ((hi - lo) / G) + lo;
}

/* the knots must stay finite and distinct in float32, or every basis divides by zero */
static const char *bspline_check_options(int G, int k, double lo, double hi)
{
    float prev = -INFINITY;
    for (int j = 0; j <= G + 2 * k; j++) {
        float t = (float)knot(j, G, k, lo, hi);
        if (!isfinite(t) || !(t > prev))
            return "must give finite, strictly increasing float32 knots "
                   "lo + (j - spline_order) (hi - lo) / grid_size";
        prev = t;
    }
    return NULL;
}

static void bspline_init_grid(double *row, int G, int k, double lo, double hi)
{
    for (int j = 0; j <= G + 2 * k; j++) row[j] = knot(j, G, k, lo, hi);
}

static int64_t bspline_check_grid(const double *row, int G, int k, char *why, size_t whylen)
{
    for (int j = 1; j <= G + 2 * k; j++)
        if (!(row[j] > row[j - 1])) {
            snprintf(why, whylen,
                     "is not strictly increasing (knot %d is %g, knot %d is %g): the B-spline bases "
                     "would divide by zero",
                     j - 1, row[j - 1], j, row[j]);
            return j;
        }
    return -1;
}

static int bspline_fit_points(const double *row, int G, int k, double *x)
{
    for (int r = 0; r <= G; r++) x[r] = row[k + r];
    return G + 1;
}

#define REAL           float
#define REAL_IS_DOUBLE 0
#define K(name)        name##_f32
#include "kan_basis_bspline_cpu.inc"
#undef REAL
#undef REAL_IS_DOUBLE
#undef K
#define REAL           double
#define REAL_IS_DOUBLE 1
#define K(name)        name##_f64
#include "kan_basis_bspline_cpu.inc"
#undef REAL
#undef REAL_IS_DOUBLE
#undef K

static void bspline_reference(const double *row, double x, int G, int k, double *v, double *scratch)
{
    bspline_bases_f64(x, row, G, k, v, NULL, scratch);
}

/* [grid[k], grid[k + G]]: the interval the grid was made over ([lo, hi] at
   init); past it only the outermost k splines still reach, fading to zero */
static void bspline_grid_range(const double *row, int G, int k, double *lo, double *hi)
{
    *lo = row[k];
    *hi = row[k + G];
}

const KanBasis kan_basis_bspline = {
    .name = "bspline",
    .nf = bspline_nf,
    .grid_len = bspline_grid_len,
    .check_options = bspline_check_options,
    .init_grid = bspline_init_grid,
    .check_grid = bspline_check_grid,
    .fit_points = bspline_fit_points,
    .reference = bspline_reference,
    .grid_range = bspline_grid_range,
    .cpu_f32 = &bspline_cpu_f32,
    .cpu_f64 = &bspline_cpu_f64,
    .cuda_type = "KancBSpline<%d, %d>",
    .weight_in_major = 0, /* spline_weight [out, in, G + k] */
    .shared_grid = 0,     /* grid [in, G + 2k + 1]: a row per input */
    .grid_i64 = 0,
};
