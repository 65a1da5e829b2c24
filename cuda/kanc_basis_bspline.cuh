/* kanc_basis_bspline.cuh: the B-spline basis of the fused KAN kernels (DESIGN.md 4;
 * ops/kan_basis_bspline.c): KancBSpline<G, K> evaluates the G+K functions of one
 * input. */
#ifndef KANC_BASIS_BSPLINE_CUH
#define KANC_BASIS_BSPLINE_CUH

#include "kanc_core.cuh"

/* ---- the KAN basis family: B-splines. The fused kernels (kanc_kan.cuh) take a
   basis type B with B::NB functions per input, B::NG values per grid row,
   B::SHARED (one grid row for every input), B::IN_MAJOR (weights [in, out, NB]
   rather than [out, in, NB]) and B::eval(x, grid row, values, derivatives or
   0); another family is another such type in its own kanc_basis_<name>.cuh
   (kanc_basis_chebyshev.cuh, kanc_basis_rbf.cuh). ---- */

/* Cox-de Boor on the knots t[0 .. G+2K] exactly as ops/kan_basis_bspline_cpu.inc:
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

template <int G, int K> struct KancBSpline {
    static constexpr int NB = G + K, NG = G + 2 * K + 1, SHARED = 0, IN_MAJOR = 0;
    static __device__ __forceinline__ void eval(float x, const float *t, float *out, float *dout)
    {
        kanc_basis<G, K>(x, t, out, dout);
    }
};

#endif
