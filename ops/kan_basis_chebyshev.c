/* kan_basis_chebyshev.c: ChebyKAN's Chebyshev basis (SynodicMonth/ChebyKAN).
 *
 * Degree D (GAttr grid_size; spline_order is 0): nf = D + 1 functions per
 * input, T_d(tanh x) for d = 0 .. D, computed as upstream does,
 * cos(d * acos(tanh x)). tanh maps every x into [-1, 1], so there is no grid
 * range to leave. The "grid" is ChebyKAN's buffer `arange` = 0 .. D, one row
 * for every input, stored as I64 in a state_dict; a loaded one must hold
 * exactly those integers (the layer's function is defined by them). The
 * weights are cheby_coeffs [in, out, D + 1], input-major, and the layer has
 * neither a base branch nor a scaler.
 *
 * Derivative: d/dx T_d(tanh x) = d U_{d-1}(t) (1 - t^2), t = tanh x, with
 * U by its recurrence (U_0 = 1, U_1 = 2t, U_n = 2t U_{n-1} - U_{n-2}): finite
 * at |t| = 1, where it is 0 (upstream's autograd through acos gives NaN there).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "util.h"

static int cheby_nf(int D, int k) { return D + 1; }
static int cheby_grid_len(int D, int k) { return D + 1; }

static const char *cheby_check_options(int D, int k, double lo, double hi)
{
    return D >= 0 && k == 0 ? NULL : "must be a degree >= 0";
}

static void cheby_init_grid(double *row, int D, int k, double lo, double hi)
{
    for (int d = 0; d <= D; d++) row[d] = d;
}

static int64_t cheby_check_grid(const double *row, int D, int k, char *why, size_t whylen)
{
    for (int d = 0; d <= D; d++)
        if (row[d] != d) {
            snprintf(why, whylen,
                     "holds %g at index %d: ChebyKAN's arange must be 0 .. degree (%d), the degrees of "
                     "the polynomials",
                     row[d], d, D);
            return d;
        }
    return -1;
}

/* the D + 1 Chebyshev nodes cos((2j + 1) pi / (2D + 2)), mapped back through tanh
   (they keep inside (-1, 1), so atanh is finite) */
static int cheby_fit_points(const double *row, int D, int k, double *x)
{
    for (int j = 0; j <= D; j++) x[j] = atanh(cos((2 * j + 1) * M_PI / (2 * D + 2)));
    return D + 1;
}

static void cheby_reference(const double *row, double x, int D, int k, double *v, double *scratch)
{
    double th = acos(tanh(x));
    for (int d = 0; d <= D; d++) v[d] = cos(d * th);
}

static void cheby_grid_range(const double *row, int D, int k, double *lo, double *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
}

#define REAL           float
#define K(name)        name##_f32
#define CHEBY_TANH     tanhf
#define CHEBY_ACOS     acosf
#define CHEBY_COS      cosf
#include "kan_basis_chebyshev_cpu.inc"
#undef REAL
#undef K
#undef CHEBY_TANH
#undef CHEBY_ACOS
#undef CHEBY_COS
#define REAL           double
#define K(name)        name##_f64
#define CHEBY_TANH     tanh
#define CHEBY_ACOS     acos
#define CHEBY_COS      cos
#include "kan_basis_chebyshev_cpu.inc"
#undef REAL
#undef K
#undef CHEBY_TANH
#undef CHEBY_ACOS
#undef CHEBY_COS

const KanBasis kan_basis_chebyshev = {
    .name = "chebyshev",
    .nf = cheby_nf,
    .grid_len = cheby_grid_len,
    .check_options = cheby_check_options,
    .init_grid = cheby_init_grid,
    .check_grid = cheby_check_grid,
    .fit_points = cheby_fit_points,
    .reference = cheby_reference,
    .grid_range = cheby_grid_range,
    .cpu_f32 = &chebyshev_cpu_f32,
    .cpu_f64 = &chebyshev_cpu_f64,
    .cuda_type = "KancChebyshev<%d>",
    .weight_in_major = 1,
    .shared_grid = 1,
    .grid_i64 = 1,
};
