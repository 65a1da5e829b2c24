/* kanc_embedding.cuh: the embedding's backward (its forward is a one-line gather). */
#ifndef KANC_EMBEDDING_CUH
#define KANC_EMBEDDING_CUH

#include "kanc_core.cuh"

/* ---- embedding ---- */

/* dw[idx[n], c] += dy[n, c]: thread (column c, vocabulary chunk blockIdx.y)
   scans every id in order and adds the rows that fall in its chunk, so each
   element of dw is owned by one thread and summed in the CPU's order. */
KD void kanc_embedding_bwd(float *dw, const int *idx, const float *dy, long long N, int C, int V,
                           int chunk)
{
    long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int v0 = blockIdx.y * chunk, v1 = v0 + chunk < V ? v0 + chunk : V;
    if (c >= C) return;
    for (long long n = 0; n < N; n++) {
        int id = idx[n];
        if (id >= v0 && id < v1) dw[(long long)id * C + c] += dy[n * C + c];
    }
}

#endif
