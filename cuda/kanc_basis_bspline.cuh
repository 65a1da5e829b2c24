/* kanc_basis_bspline.cuh: the B-spline basis of the fused KAN kernels
 * (DESIGN.md 4): kanc_basis<G, K> evaluates the G+K+1 columns of one input. */
#ifndef KANC_BASIS_BSPLINE_CUH
#define KANC_BASIS_BSPLINE_CUH

#include "kanc_core.cuh"

/* ---- the KAN basis family: B-splines (DESIGN.md 4). The fused kernels only
   call kanc_basis<G, K>(x, knots, values, derivatives or 0); another family
   (RBF, Chebyshev, rational) plugs in here with the same signature. ---- */

/* Cox-de Boor on the knots t[0 .. G+2K] exactly as runtime/cpu_kan.inc:
   out[0 .. G+K-1] = B_j,K(x); with dout, their derivatives. */
template <int G, int K>
__device__ __forceinline__ void kanc_basis(float x, const float *t, float *out, float *dout)
{
    float tk[G + 2 * K + 1], b[G + 2 * K];
#pragma unroll
    for (int j = 0; j < G + 2 * K + 1; j++) tk[j] = t[j];
#pragma unroll
    for (int j = 0; j < G + 2 * K; j++) b[j] = (tk[j] <= x && x < tk[j + 1]) ? 1.0f : 0.0f;
#pragma unroll
    for (int p = 1; p <= K; p++) {
        if (p == K && dout) /* B'_j,K from the order K-1 bases */
            for (int j = 0; j < G + K; j++)
                dout[j] = (float)p / (tk[j + p] - tk[j]) * b[j] -
                          (float)p / (tk[j + p + 1] - tk[j + 1]) * b[j + 1];
        for (int j = 0; j < G + 2 * K - p; j++)
            b[j] = (x - tk[j]) / (tk[j + p] - tk[j]) * b[j] +
                   (tk[j + p + 1] - x) / (tk[j + p + 1] - tk[j + 1]) * b[j + 1];
    }
    if (K == 0 && dout)
        for (int j = 0; j < G; j++) dout[j] = 0.0f;
#pragma unroll
    for (int j = 0; j < G + K; j++) out[j] = b[j];
}

/* One row of A(X) for input value xv: [act(x), B_0(x) .. B_{G+K-1}(x)] */
template <int G, int K, int ACT>
__device__ __forceinline__ void kanc_kan_a(float xv, const float *t, float *a)
{
    a[0] = kanc_act(ACT, xv);
    kanc_basis<G, K>(xv, t, a + 1, (float *)0);
}

/* Fused weight entry Wf[o, i*S + c]: base[o,i] (c = 0), spline[o,i,c-1] * scaler[o,i] */
template <int NB, int SCALER>
__device__ __forceinline__ float kanc_kan_w(const float *base, const float *spline,
                                            const float *scaler, long long oi, int c)
{
    if (c == 0) return base[oi];
    float w = spline[oi * NB + c - 1];
    return SCALER ? w * scaler[oi] : w;
}

#endif
