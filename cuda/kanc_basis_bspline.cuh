/* kanc_basis_bspline.cuh: the B-spline basis of the KAN kernels (DESIGN.md 4;
 * ops/kan_basis_bspline.c): KancBSpline<G, K> evaluates the G+K functions of one
 * input: the k+1 that can be non-zero by de Boor's triangle (the uniform cubic in
 * closed form), the exact Cox-de Boor recursion where that does not apply. */
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

/* the cubic cardinal B-spline in closed form at f in [0, 1) of its span: n[0..3]
   and, with dn, the derivatives (from the quadratic ones) */
KD void kanc_bspline_cubic(float f, float inv_h, float *n, float *dn)
{
    const float sixth = 1.0f / 6.0f; /* multiplications: an IEEE division is ~10 instructions */
    float g = 1.0f - f, f2 = f * f, f3 = f2 * f;
    n[0] = g * g * g * sixth;
    n[1] = (3.0f * f3 - 6.0f * f2 + 4.0f) * sixth;
    n[2] = (-3.0f * f3 + 3.0f * f2 + 3.0f * f + 1.0f) * sixth;
    n[3] = f3 * sixth;
    if (dn) {
        float p0 = g * g * 0.5f, p1 = (-2.0f * f2 + 2.0f * f + 1.0f) * 0.5f, p2 = f2 * 0.5f;
        dn[0] = -p0 * inv_h;
        dn[1] = (p0 - p1) * inv_h;
        dn[2] = (p1 - p2) * inv_h;
        dn[3] = p2 * inv_h;
    }
}

/* The k+1 bases that can be non-zero at x, B_{j0} .. B_{j0+K} (with dn, their
   derivatives), by de Boor's triangle as ops/kan_basis_bspline_cpu.inc's
   bspline_local: on equally spaced knots every denominator is a multiple of
   the spacing h (the cubic in closed form), else a binary search for the span
   and K(K+1)/2 divisions. Returns 1, 0 when x is outside the support (every
   basis 0), or -1 on unequal knots with x outside the grid range [t_K, t_{G+K})
   (the caller then runs the full recursion). */
template <int G, int K>
__device__ __forceinline__ int kanc_bspline_local(float x, const float *t, float *n, float *dn, int *j0)
{
    constexpr int NK = G + 2 * K + 1;
    const float t0 = t[0], tend = t[NK - 1], h = (t[G + K] - t[K]) * (1.0f / G);
    bool uniform = h > 0.0f;
#pragma unroll
    for (int j = 0; j + 1 < NK; j++) uniform = uniform && fabsf(t[j + 1] - t[j] - h) <= 1e-5f * h;
    float prev[K + 1];
    n[0] = 1.0f;
    if (uniform) {
        if (!(x >= t0 && x < tend)) return 0;
        const float inv_h = 1.0f / h, u = (x - t0) * inv_h;
        const int s = (int)u < G + 2 * K ? (int)u : G + 2 * K - 1; /* the span, from t_0 */
        const float f = u - s;
        *j0 = s - K;
        if (K == 3) { /* the default order */
            kanc_bspline_cubic(f, inv_h, n, dn);
        } else {
#pragma unroll
            for (int j = 1; j <= K; j++) {
                if (j == K)
                    for (int r = 0; r < K; r++) prev[r] = n[r];
                float saved = 0.0f, inv_j = 1.0f / j;
#pragma unroll
                for (int r = 0; r < j; r++) {
                    float tmp = n[r] * inv_j;
                    n[r] = saved + (r + 1 - f) * tmp;
                    saved = (f + (j - r - 1)) * tmp;
                }
                n[j] = saved;
            }
            if (dn) /* B'_{j,K} = (B_{j,K-1} - B_{j+1,K-1}) / h */
#pragma unroll
                for (int r = 0; r <= K; r++)
                    dn[r] = K ? ((r > 0 ? prev[r - 1] : 0.0f) - (r < K ? prev[r] : 0.0f)) * inv_h : 0.0f;
        }
        return 1;
    }
    if (!(x >= t[K] && x < t[G + K])) return -1;
    int lo = K, hi = G + K; /* the span s: t[s] <= x < t[s+1] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (x < t[mid])
            hi = mid;
        else
            lo = mid;
    }
    const int s = lo;
    float left[K + 1], right[K + 1];
#pragma unroll
    for (int j = 1; j <= K; j++) {
        if (j == K)
            for (int r = 0; r < K; r++) prev[r] = n[r]; /* order K-1 */
        left[j] = x - t[s + 1 - j];
        right[j] = t[s + j] - x;
        float saved = 0.0f;
#pragma unroll
        for (int r = 0; r < j; r++) {
            float tmp = n[r] / (right[r + 1] + left[j - r]);
            n[r] = saved + right[r + 1] * tmp;
            saved = left[j - r] * tmp;
        }
        n[j] = saved;
    }
    *j0 = s - K;
    if (dn) /* B'_{j,K} = K B_{j,K-1} / (t_{j+K} - t_j) - K B_{j+1,K-1} / (t_{j+K+1} - t_{j+1}) */
#pragma unroll
        for (int r = 0; r <= K; r++) {
            int j = *j0 + r;
            float a = r > 0 ? prev[r - 1] / (t[j + K] - t[j]) : 0.0f;
            float b = r < K ? prev[r] / (t[j + K + 1] - t[j + 1]) : 0.0f;
            dn[r] = K ? K * (a - b) : 0.0f;
        }
    return 1;
}

/* out[0 .. G+K-1] (and dout) by the local path where it applies, else the full
   recursion; the k+1 local values land in their slots by selects, so that out
   stays in registers (no dynamically indexed local array) */
template <int G, int K>
__device__ __forceinline__ void kanc_basis_fast(float x, const float *t, float *out, float *dout)
{
    float n[K + 1], dn[K + 1];
    int j0 = 0;
    int got = kanc_bspline_local<G, K>(x, t, n, dout ? dn : (float *)0, &j0);
    if (got < 0) {
        kanc_basis<G, K>(x, t, out, dout);
        return;
    }
#pragma unroll
    for (int j = 0; j < G + K; j++) {
        float v = 0.0f, d = 0.0f;
#pragma unroll
        for (int c = 0; c <= K; c++)
            if (got && j0 + c == j) {
                v = n[c];
                if (dout) d = dn[c];
            }
        out[j] = v;
        if (dout) dout[j] = d;
    }
}

template <int G, int K> struct KancBSpline {
    static constexpr int NB = G + K, NG = G + 2 * K + 1, SHARED = 0, IN_MAJOR = 0;
    static __device__ __forceinline__ void eval(float x, const float *t, float *out, float *dout)
    {
        kanc_basis_fast<G, K>(x, t, out, dout);
    }
};

#endif
