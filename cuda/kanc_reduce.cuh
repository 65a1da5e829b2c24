/* kanc_reduce.cuh: fixed-order reductions: whole-tensor sums, column sums, the
 * softmax over rows and the axis sum (ops/reduce.c). */
#ifndef KANC_REDUCE_CUH
#define KANC_REDUCE_CUH

#include "kanc_core.cuh"

/* ---- whole-tensor sums: a fixed grid, fixed per-thread strides and a fixed
   tree, so the result is the same on every run ---- */

/* part[block] = sum of x (SQUARE: x^2) over this block's grid-stride share */
template <int SQUARE>
__device__ __forceinline__ void kanc_sum_partial(double *part, const float *x, long long n)
{
    double s = 0.0;
    for (long long i = kanc_gtid(); i < n; i += kanc_gstride())
        s += SQUARE ? (double)x[i] * x[i] : (double)x[i];
    s = kanc_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* sum of part[0 .. nparts) by one block: thread t adds parts t, t + blockDim.x,
   ... in order, then the block's fixed tree */
KD double kanc_sum_parts(const double *part, int nparts)
{
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    return kanc_block_sum(s);
}

/* ---- column reductions out[j] (+)= s * sum over rows of dy[r, j] (times
   other[(r*nout + j) % nother] for MUL), in two launches so that every SM has
   work however few the columns: blocks (column tile, chunk of rows) write
   part[chunk][j], their rows in order; then each column adds its chunks in
   order. Fixed orders: the same bits on every run. ---- */
template <int MUL>
__device__ __forceinline__ void kanc_col_partial(double *part, const float *dy, const float *other,
                                                 long long rows, long long nout, long long nother,
                                                 long long chunk)
{
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long r0 = (long long)blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    if (j >= nout) return;
    double sum = 0.0;
    for (long long r = r0; r < r1; r++) {
        long long i = r * nout + j;
        sum += MUL ? (double)dy[i] * other[i % nother] : (double)dy[i];
    }
    part[(long long)blockIdx.y * nout + j] = sum;
}

/* out[j] (+)= s * sum over the chunks of part[chunk][j] */
template <int ACC>
KD void kanc_col_finish(float *out, const double *part, long long nout, int nchunks, double s)
{
    for (long long j = kanc_gtid(); j < nout; j += kanc_gstride()) {
        double sum = 0.0;
        for (int c = 0; c < nchunks; c++) sum += part[(long long)c * nout + j];
        out[j] = (float)((ACC ? (double)out[j] : 0.0) + s * sum);
    }
}

/* ---- softmax over rows of C: one block per row, the max and the sum by the
   block's fixed tree ---- */

/* y[r, :] = exp(x - max) / sum exp(x - max) */
KD void kanc_softmax_fwd(float *y, const float *x, int C)
{
    long long r = blockIdx.x;
    const float *xr = x + r * C;
    float *yr = y + r * C;
    float mx = -KANC_BIG;
    for (int j = threadIdx.x; j < C; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = kanc_block_max(mx);
    double s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += expf(xr[j] - mx);
    s = kanc_block_sum(s);
    float inv = (float)(1.0 / s);
    for (int j = threadIdx.x; j < C; j += blockDim.x) yr[j] = expf(xr[j] - mx) * inv;
}

/* dx[r, :] (+)= y (dy - sum(dy y)) */
template <int ACC>
__device__ __forceinline__ void kanc_softmax_bwd(float *dx, const float *dy, const float *y, int C)
{
    long long r = blockIdx.x;
    const float *dyr = dy + r * C, *yr = y + r * C;
    float *dxr = dx + r * C;
    double s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += (double)dyr[j] * yr[j];
    float sf = (float)kanc_block_sum(s);
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dxr[j] = (ACC ? dxr[j] : 0.0f) + yr[j] * (dyr[j] - sf);
}

/* ---- the sum over the middle axis of x[A, K, B] ---- */

/* y[a, b] = s sum_k x[a, k, b]: a thread per output, k in order */
KD void kanc_sum_axis(float *y, const float *x, long long A, long long K, long long B, double s)
{
    for (long long e = kanc_gtid(); e < A * B; e += kanc_gstride()) {
        long long a = e / B, b = e % B;
        const float *xa = x + a * K * B + b;
        double sum = 0.0;
        for (long long k = 0; k < K; k++) sum += xa[k * B];
        y[e] = (float)(s * sum);
    }
}

/* the last axis (B = 1): y[a] = s sum_k x[a, k], one block per row (coalesced
   reads; the block's fixed tree) */
KD void kanc_sum_rows(float *y, const float *x, long long K, double s)
{
    long long a = blockIdx.x;
    const float *xa = x + a * K;
    double sum = 0.0;
    for (long long k = threadIdx.x; k < K; k += blockDim.x) sum += xa[k];
    sum = kanc_block_sum(sum);
    if (threadIdx.x == 0) y[a] = (float)(s * sum);
}

/* dx[a, k, b] (+)= s dy[a, b] */
template <int ACC>
__device__ __forceinline__ void kanc_sum_axis_bwd(float *dx, const float *dy, long long A, long long K,
                                                  long long B, double s)
{
    float sf = (float)s;
    for (long long e = kanc_gtid(); e < A * K * B; e += kanc_gstride()) {
        long long a = e / (K * B), b = e % B;
        dx[e] = (ACC ? dx[e] : 0.0f) + sf * dy[a * B + b];
    }
}

#endif
