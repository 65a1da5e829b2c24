/* kanc_basis_rbf.cuh: FastKAN's Gaussian radial basis for the fused KAN kernels
 * (ops/kan_basis_rbf.c): KancRbf<G> evaluates exp(-((u - c_g) / h)^2) at the G
 * centres c of the one grid row (rbf.grid) that every input shares, h = the
 * centres' spacing (c_{G-1} - c_0) / (G - 1) (FastKAN's denominator). */
#ifndef KANC_BASIS_RBF_CUH
#define KANC_BASIS_RBF_CUH

#include "kanc_core.cuh"

template <int G> struct KancRbf {
    static constexpr int NB = G, NG = G, SHARED = 1, IN_MAJOR = 0;
    static __device__ __forceinline__ void eval(float x, const float *t, float *out, float *dout)
    {
        float inv_h = (float)(G - 1) / (t[G - 1] - t[0]);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float z = (x - t[g]) * inv_h, v = expf(-z * z);
            out[g] = v;
            if (dout) dout[g] = -2.0f * z * inv_h * v;
        }
    }
};

#endif
