/* kanc_basis_chebyshev.cuh: ChebyKAN's basis for the fused KAN kernels
 * (ops/kan_basis_chebyshev.c): KancChebyshev<D> evaluates T_0 .. T_D (tanh x). */
#ifndef KANC_BASIS_CHEBYSHEV_CUH
#define KANC_BASIS_CHEBYSHEV_CUH

#include "kanc_core.cuh"

/* values cos(d acos(tanh x)) as upstream; derivatives d U_{d-1}(t) (1 - t^2) with
   U by its recurrence (0 at |t| = 1). The grid row (arange = 0 .. D, checked on
   load) is not read; one row serves every input; cheby_coeffs is [in, out, D+1]. */
template <int D> struct KancChebyshev {
    static constexpr int NB = D + 1, NG = D + 1, SHARED = 1, IN_MAJOR = 1;
    static __device__ __forceinline__ void eval(float x, const float *t, float *out, float *dout)
    {
        float u = tanhf(x), th = acosf(u);
#pragma unroll
        for (int d = 0; d <= D; d++) out[d] = cosf((float)d * th);
        if (!dout) return;
        float dt = 1.0f - u * u, um2 = 0.0f, um1 = 1.0f; /* U_{d-2}, U_{d-1} */
        dout[0] = 0.0f;
#pragma unroll
        for (int d = 1; d <= D; d++) {
            dout[d] = (float)d * um1 * dt;
            float next = 2.0f * u * um1 - um2;
            um2 = um1;
            um1 = next;
        }
    }
};

#endif
