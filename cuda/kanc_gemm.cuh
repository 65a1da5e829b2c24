/* kanc_gemm.cuh: the generated GEMM (used when plain GEMMs are not handed to cuBLASLt). */
#ifndef KANC_GEMM_CUH
#define KANC_GEMM_CUH

#include "kanc_core.cuh"

/* ---- GEMM: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major, op =
   transpose when TA / TB (lda, ldb: the stored row strides). One block of
   256 threads (16 x 16) computes a TM x TN tile of C (TM, TN multiples of 16);
   thread (tx, ty) owns rows ty + 16i and columns tx + 16j; K advances TK at a
   time through shared memory. beta == 0: C is not read. ---- */
template <int TA, int TB, int TM, int TN, int TK>
__device__ __forceinline__ void kanc_gemm(const float *A, const float *B, float *C, long long M,
                                          long long N, long long K, long long lda, long long ldb,
                                          long long ldc, float alpha, float beta)
{
    constexpr int RM = TM / 16, RN = TN / 16;
    __shared__ float As[TK][TM + 1]; /* op(A) tile, k-major */
    __shared__ float Bs[TK][TN + 1]; /* op(B) tile */
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    long long m0 = (long long)blockIdx.y * TM, n0 = (long long)blockIdx.x * TN;
    float acc[RM][RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
    for (long long k0 = 0; k0 < K; k0 += TK) {
        for (int e = tid; e < TM * TK; e += 256) { /* consecutive threads: consecutive addresses */
            int mm = TA ? e % TM : e / TK, kk = TA ? e / TM : e % TK;
            long long m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? (TA ? A[k * lda + m] : A[m * lda + k]) : 0.0f;
        }
        for (int e = tid; e < TN * TK; e += 256) {
            int nn = TB ? e / TK : e % TN, kk = TB ? e % TK : e / TN;
            long long n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < K) ? (TB ? B[n * ldb + k] : B[k * ldb + n]) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < TK; kk++) {
            float a[RM], b[RN];
            for (int i = 0; i < RM; i++) a[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < RN; j++) b[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < RM; i++)
                for (int j = 0; j < RN; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) {
            long long m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m >= M || n >= N) continue;
            float v = alpha * acc[i][j];
            C[m * ldc + n] = beta == 0.0f ? v : v + beta * C[m * ldc + n];
        }
}

#endif
