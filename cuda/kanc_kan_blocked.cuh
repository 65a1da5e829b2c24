/* kanc_kan_blocked.cuh: the blocked KAN layer: the basis of one row block at a time
 * written to the workspace, the matrix products left to cuBLASLt.
 *
 * The fused kernels (kanc_kan.cuh) rebuild A(X) inside every output tile; here a
 * row block of A = [act(x) | f_0(x) .. f_{NB-1}(x)] per input is written once,
 * and the runtime's GEMMs do forward Y = A Wf^T, weight gradient dWf += dY^T A
 * and input gradient Gb = dY Wf on it (ops/kan.c emits the launches). The basis
 * never exists for the whole batch, only for one block of rows. T is the element
 * type of A and Wf (float, or a 16-bit type constructible from float). */
#ifndef KANC_KAN_BLOCKED_CUH
#define KANC_KAN_BLOCKED_CUH

#include "kanc_core.cuh"
#include "kanc_kan.cuh"

/* Wf[o, i*S + c] = base[o,i] (c = 0 with BASE), else spline(o, i, c - BASE) * scaler[o,i] */
template <class B, int BASE, int SCALER, class T>
KD void kanc_kan_fuse_w(T *wf, const float *base, const float *spline, const float *scaler, int IN, int OUT)
{
    constexpr int S = B::NB + BASE;
    const long long n = (long long)OUT * IN * S;
    for (long long e = kanc_gtid(); e < n; e += kanc_gstride()) {
        long long oi = e / S;
        wf[e] = T(kanc_kan_w<B, BASE, SCALER>(base, spline, scaler, (int)(oi / IN), (int)(oi % IN), IN, OUT,
                                              (int)(e % S)));
    }
}

/* A[r, i*S + c] for rows r < ROWS of x (a row block: x points at its first row) */
template <class B, int ACT, int BASE, class T>
KD void kanc_kan_basis_rows(T *a, const float *x, const float *grid, long long rows, int IN)
{
    constexpr int S = B::NB + BASE;
    for (long long e = kanc_gtid(); e < rows * IN; e += kanc_gstride()) {
        float v[S];
        kanc_kan_a<B, ACT, BASE>(x[e], kanc_grid_row<B>(grid, (int)(e % IN)), v);
#pragma unroll
        for (int c = 0; c < S; c++) a[e * S + c] = T(v[c]);
    }
}

/* The weight gradient dWf [OUT, IN*S] split per (o, i) into d base, d spline
   (times the scaler) and d scaler (sum_c dWf_spline * spline), added to the
   gradients, as the fused kernel's epilogue does. */
template <class B, int BASE, int SCALER>
KD void kanc_kan_split_dw(float *dbase, float *dspline, float *dscaler, const float *dwf, const float *spline,
                          const float *scaler, int IN, int OUT)
{
    constexpr int S = B::NB + BASE;
    for (long long oi = kanc_gtid(); oi < (long long)OUT * IN; oi += kanc_gstride())
        kanc_kan_split_one<B, BASE, SCALER>(dbase, dspline, dscaler, dwf + oi * S, spline, scaler, (int)(oi / IN),
                                            (int)(oi % IN), IN, OUT);
}

/* dx[r, i] (+)= act'(x) Gb[r, i*S] (if BASE) + sum_c f'_c(x) Gb[r, i*S + BASE + c]
   for the rows of one block (dx, gb and x point at its first row) */
template <class B, int ACT, int BASE, int ACC>
KD void kanc_kan_dx_rows(float *dx, const float *gb, const float *x, const float *grid, long long rows, int IN)
{
    constexpr int NB = B::NB, S = NB + BASE;
    for (long long e = kanc_gtid(); e < rows * IN; e += kanc_gstride()) {
        float xv = x[e], bs[NB], dbs[NB];
        B::eval(xv, kanc_grid_row<B>(grid, (int)(e % IN)), bs, dbs);
        const float *g = gb + e * S;
        float s = BASE ? kanc_act_grad(ACT, xv) * g[0] : 0.0f;
        for (int c = 0; c < NB; c++) s += dbs[c] * g[BASE + c];
        dx[e] = ACC ? dx[e] + s : s;
    }
}

#endif
