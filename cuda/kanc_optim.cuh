/* kanc_optim.cuh: AdamW, as torch.optim.AdamW. */
#ifndef KANC_OPTIM_CUH
#define KANC_OPTIM_CUH

#include "kanc_core.cuh"

/* ---- AdamW (torch.optim.AdamW) on n elements with gradient gscale * g ---- */
KD void kanc_adamw(float *p, const float *g, float *m, float *v, long long n, float gscale,
                   float decay, float step, float bc2, float b1, float b2, float eps)
{
    for (long long i = kanc_gtid(); i < n; i += kanc_gstride()) {
        float gi = g[i] * gscale;
        float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) / bc2 + eps);
        m[i] = mi;
        v[i] = vi;
    }
}

#endif
