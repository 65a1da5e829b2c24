/* kanc_reduce.cuh: fixed-order reductions: whole-tensor sums and column sums. */
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

/* sum of part[0 .. nparts) by one block (nparts <= blockDim.x) */
KD double kanc_sum_parts(const double *part, int nparts)
{
    return kanc_block_sum(threadIdx.x < nparts ? part[threadIdx.x] : 0.0);
}
/* ---- column reductions: out[j] (+)= s * sum over rows of dy[r, j] (times
   other[(r*nout + j) % nother] for MUL); one thread per column, rows in order ---- */
template <int ACC, int MUL>
__device__ __forceinline__ void kanc_col_reduce(float *out, const float *dy, const float *other,
                                                long long rows, long long nout, long long nother,
                                                double s)
{
    for (long long j = kanc_gtid(); j < nout; j += kanc_gstride()) {
        double sum = 0.0;
        for (long long r = 0; r < rows; r++) {
            long long i = r * nout + j;
            sum += MUL ? (double)dy[i] * other[i % nother] : (double)dy[i];
        }
        out[j] = (float)((ACC ? (double)out[j] : 0.0) + s * sum);
    }
}

#endif
