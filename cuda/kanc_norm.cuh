/* kanc_norm.cuh: layernorm and rmsnorm forward and backward. */
#ifndef KANC_NORM_CUH
#define KANC_NORM_CUH

#include "kanc_core.cuh"

/* ---- layernorm: one block per row ---- */

/* y = (x - mean) rstd w + b; stats[r] = (mean, rstd), rstd = 1/sqrt(var + eps) */
KD void kanc_layernorm_fwd(float *y, float *stats, const float *x, const float *w, const float *b,
                           int C, double eps)
{
    long long r = blockIdx.x;
    const float *xr = x + r * C;
    float *yr = y + r * C;
    double s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += xr[j];
    double mean = kanc_block_sum(s) / C;
    double v = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) v += (xr[j] - mean) * (xr[j] - mean);
    double rstd = 1.0 / sqrt(kanc_block_sum(v) / C + eps);
    if (threadIdx.x == 0) {
        stats[2 * r] = (float)mean;
        stats[2 * r + 1] = (float)rstd;
    }
    float m = (float)mean, rs = (float)rstd;
    for (int j = threadIdx.x; j < C; j += blockDim.x) yr[j] = (xr[j] - m) * rs * w[j] + b[j];
}

/* dx (+)= rstd (dy w - mean(dy w) - xhat mean(dy w xhat)) */
template <int ACC>
__device__ __forceinline__ void kanc_layernorm_bwd_x(float *dx, const float *dy, const float *x,
                                                     const float *stats, const float *w, int C)
{
    long long r = blockIdx.x;
    const float *xr = x + r * C, *g = dy + r * C;
    float *d = dx + r * C;
    double mean = stats[2 * r], rstd = stats[2 * r + 1], s1 = 0.0, s2 = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        double gw = (double)g[j] * w[j];
        s1 += gw;
        s2 += gw * (xr[j] - mean) * rstd;
    }
    s1 = kanc_block_sum(s1) / C;
    s2 = kanc_block_sum(s2) / C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        double v = rstd * ((double)g[j] * w[j] - s1 - (xr[j] - mean) * rstd * s2);
        d[j] = (float)((ACC ? (double)d[j] : 0.0) + v);
    }
}

/* dw[c] += sum_r dy xhat, db[c] += sum_r dy in two launches, as the column
   sums of kanc_reduce.cuh: blocks (column tile, chunk of rows) write
   part[0][chunk][c] (for dw) and part[1][chunk][c] (for db), rows in order;
   kanc_col_finish then adds the chunks of each half. */
KD void kanc_layernorm_bwd_wb_partial(double *part, const float *dy, const float *x, const float *stats,
                                      long long N, int C, long long chunk, int nchunks)
{
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long r0 = (long long)blockIdx.y * chunk, r1 = r0 + chunk < N ? r0 + chunk : N;
    if (c >= C) return;
    double sw = 0.0, sb = 0.0;
    for (long long r = r0; r < r1; r++) {
        double mean = stats[2 * r], rstd = stats[2 * r + 1], g = dy[r * C + c];
        sw += g * ((x[r * C + c] - mean) * rstd);
        sb += g;
    }
    part[(long long)blockIdx.y * C + c] = sw;
    part[((long long)nchunks + blockIdx.y) * C + c] = sb;
}

/* ---- rmsnorm: one block per row ---- */

/* y = x rstd w; rstd[r] = 1/sqrt(mean(x^2) + eps) */
KD void kanc_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int C, double eps)
{
    long long r = blockIdx.x;
    const float *xr = x + r * C;
    float *yr = y + r * C;
    double s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += (double)xr[j] * xr[j];
    double rs = 1.0 / sqrt(kanc_block_sum(s) / C + eps);
    if (threadIdx.x == 0) rstd[r] = (float)rs;
    for (int j = threadIdx.x; j < C; j += blockDim.x) yr[j] = (float)(xr[j] * rs * w[j]);
}

/* dx (+)= rstd (dy w - xhat mean(dy w xhat)), xhat = x rstd */
template <int ACC>
__device__ __forceinline__ void kanc_rmsnorm_bwd_x(float *dx, const float *dy, const float *x, const float *rstd,
                                                   const float *w, int C)
{
    long long r = blockIdx.x;
    const float *xr = x + r * C, *g = dy + r * C;
    float *d = dx + r * C;
    double rs = rstd[r], s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += (double)g[j] * w[j] * xr[j] * rs;
    s = kanc_block_sum(s) / C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        double v = rs * ((double)g[j] * w[j] - xr[j] * rs * s);
        d[j] = (float)((ACC ? (double)d[j] : 0.0) + v);
    }
}

/* dw[c] += sum_r dy xhat, first launch: blocks (column tile, chunk of rows)
   write part[chunk][c], rows in order; kanc_col_finish adds the chunks */
KD void kanc_rmsnorm_bwd_w_partial(double *part, const float *dy, const float *x, const float *rstd, long long N,
                                   int C, long long chunk)
{
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long r0 = (long long)blockIdx.y * chunk, r1 = r0 + chunk < N ? r0 + chunk : N;
    if (c >= C) return;
    double sw = 0.0;
    for (long long r = r0; r < r1; r++) sw += (double)dy[r * C + c] * ((double)x[r * C + c] * rstd[r]);
    part[(long long)blockIdx.y * C + c] = sw;
}

#endif
