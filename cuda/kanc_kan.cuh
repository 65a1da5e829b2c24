/* kanc_kan.cuh: the fused KAN layer: forward, weight gradient and input gradient,
 * the basis evaluated in shared memory inside the matrix product. */
#ifndef KANC_KAN_CUH
#define KANC_KAN_CUH

#include "kanc_core.cuh"

/* ---- the fused KAN layer (DESIGN.md 4), for a basis type B (B::NB functions
   per input on a grid row of B::NG values; cuda/kanc_basis_*.cuh). S = NB+BASE
   columns of A per input: [act(x) (if BASE), f_0(x) .. f_{NB-1}(x)]; Wf[o] =
   [base[o,i], spline(o,i,:) * scaler[o,i]] in the same interleaving. A is
   built tile by tile in shared memory from X and Wf from the parameters;
   neither ever exists in device memory. ---- */

/* input i's grid row: its own, or the one row every input shares */
template <class B> __device__ __forceinline__ const float *kanc_grid_row(const float *grid, int i)
{
    return B::SHARED ? grid : grid + (long long)i * B::NG;
}

/* where the NB weights of (o, i) start: [out, in, NB] or [in, out, NB] */
template <class B> __device__ __forceinline__ long long kanc_weight_at(int o, int i, int IN, int OUT)
{
    return (B::IN_MAJOR ? (long long)i * OUT + o : (long long)o * IN + i) * B::NB;
}

/* One row of A(X) for input value xv: [act(x) (if BASE), f_0(x) .. f_{NB-1}(x)] */
template <class B, int ACT, int BASE>
__device__ __forceinline__ void kanc_kan_a(float xv, const float *t, float *a)
{
    if (BASE) a[0] = kanc_act(ACT, xv);
    B::eval(xv, t, a + BASE, (float *)0);
}

/* Fused weight entry Wf[o, i*S + c]: base[o,i] (c = 0 with BASE), else the
   spline weight c - BASE of (o, i), times scaler[o,i] */
template <class B, int BASE, int SCALER>
__device__ __forceinline__ float kanc_kan_w(const float *base, const float *spline, const float *scaler, int o,
                                            int i, int IN, int OUT, int c)
{
    long long oi = (long long)o * IN + i;
    if (BASE && c == 0) return base[oi];
    float w = spline[kanc_weight_at<B>(o, i, IN, OUT) + c - BASE];
    return SCALER ? w * scaler[oi] : w;
}

/* One (o, i) group of S columns of dWf, g, added to the gradients: d base
   (g[0] with BASE), d spline (times the scaler) and d scaler (sum_c g_spline *
   spline) */
template <class B, int BASE, int SCALER>
__device__ __forceinline__ void kanc_kan_split_one(float *dbase, float *dspline, float *dscaler, const float *g,
                                                   const float *spline, const float *scaler, int o, int i, int IN,
                                                   int OUT)
{
    long long oi = (long long)o * IN + i, w = kanc_weight_at<B>(o, i, IN, OUT);
    if (BASE) dbase[oi] += g[0];
    float s = SCALER ? scaler[oi] : 1.0f, ds = 0.0f;
    for (int c = 0; c < B::NB; c++) {
        dspline[w + c] += g[BASE + c] * s;
        ds += g[BASE + c] * spline[w + c];
    }
    if (SCALER) dscaler[oi] += ds;
}

/* The register tile of the fused kernels' products (256 threads as 16 x 16, RM
   x RN values each): acc += a b^T over one shared-memory step, a[ty + 16 i]
   from arow and b[tx + 16 j] from brow (columns W and beyond read as 0) */
template <int RM, int RN, int W>
__device__ __forceinline__ void kanc_tile_step(float (&acc)[RM][RN], const float *arow, const float *brow, int tx,
                                               int ty)
{
    float a[RM], b[RN];
    for (int i = 0; i < RM; i++) a[i] = arow[ty + 16 * i];
    for (int j = 0; j < RN; j++) b[j] = tx + 16 * j < W ? brow[tx + 16 * j] : 0.0f;
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] += a[i] * b[j];
}

/* the finished register tile into a shared [16 RM][ld] tile, columns below W */
template <int RM, int RN, int W, int LD>
__device__ __forceinline__ void kanc_tile_store(float (*g)[LD], const float (&acc)[RM][RN], int tx, int ty)
{
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++)
            if (tx + 16 * j < W) g[ty + 16 * i][tx + 16 * j] = acc[i][j];
}

/* forward Y[N,OUT] = A(X) Wf^T. Block: TM rows x TN outputs, 256 threads;
   the reduction advances TI inputs (TI*S columns of A) per stage. */
template <class B, int ACT, int BASE, int SCALER, int TM, int TN, int TI>
__device__ __forceinline__ void kanc_kan_fwd(float *y, const float *x, const float *grid,
                                             const float *base, const float *spline,
                                             const float *scaler, long long N, int IN, int OUT)
{
    constexpr int NB = B::NB, S = NB + BASE, TKW = TI * S;
    constexpr int RM = TM / 16, RN = TN / 16;
    __shared__ float As[TKW][TM + 1]; /* A(X) tile, k-major: As[ii*S + c][row] */
    __shared__ float Ws[TKW][TN + 1]; /* Wf^T tile: Ws[ii*S + c][out] */
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    long long r0 = (long long)blockIdx.y * TM;
    int o0 = blockIdx.x * TN;
    float acc[RM][RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
    for (int i0 = 0; i0 < IN; i0 += TI) {
        /* prologue fusion: act and bases of TM rows x TI inputs */
        for (int e = tid; e < TM * TI; e += 256) {
            int r = e % TM, ii = e / TM, i = i0 + ii;
            long long n = r0 + r;
            float a[S];
            if (n < N && i < IN)
                kanc_kan_a<B, ACT, BASE>(x[n * IN + i], kanc_grid_row<B>(grid, i), a);
            else
                for (int c = 0; c < S; c++) a[c] = 0.0f;
            for (int c = 0; c < S; c++) As[ii * S + c][r] = a[c];
        }
        for (int e = tid; e < TN * TKW; e += 256) {
            int kk = e % TKW, oo = e / TKW, o = o0 + oo, i = i0 + kk / S;
            Ws[kk][oo] = (o < OUT && i < IN)
                             ? kanc_kan_w<B, BASE, SCALER>(base, spline, scaler, o, i, IN, OUT, kk % S)
                             : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < TKW; kk++) kanc_tile_step<RM, RN, TN>(acc, As[kk], Ws[kk], tx, ty);
        __syncthreads();
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) {
            long long n = r0 + ty + 16 * i;
            int o = o0 + tx + 16 * j;
            if (n < N && o < OUT) y[n * OUT + o] = acc[i][j];
        }
}

/* weights: dWf[OUT, IN*S] = dY^T A(X), A rebuilt the same way; the epilogue
   splits each (o, i) group of S columns into d base, d spline (times the
   scaler) and d scaler (sum_c dWf_spline * spline), adding into the gradient
   area. Block: TM outputs x TI inputs (TI*S columns); TR rows per stage. */
template <class B, int ACT, int BASE, int SCALER, int TM, int TI, int TR>
__device__ __forceinline__ void kanc_kan_bwd_w(float *dbase, float *dspline, float *dscaler,
                                               const float *dy, const float *x, const float *grid,
                                               const float *spline, const float *scaler,
                                               long long N, int IN, int OUT)
{
    constexpr int NB = B::NB, S = NB + BASE, TNW = TI * S;
    constexpr int RM = TM / 16, RN = (TNW + 15) / 16;
    __shared__ float Ds[TR][TM + 1];  /* dY rows x outputs */
    __shared__ float As[TR][TNW + 1]; /* A(X) rows x columns */
    __shared__ float Gs[TM][TNW + 1]; /* the finished dWf tile */
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int o0 = blockIdx.y * TM, i0 = blockIdx.x * TI;
    float acc[RM][RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
    for (long long n0 = 0; n0 < N; n0 += TR) {
        for (int e = tid; e < TR * TM; e += 256) {
            int oo = e % TM, r = e / TM, o = o0 + oo;
            long long n = n0 + r;
            Ds[r][oo] = (n < N && o < OUT) ? dy[n * OUT + o] : 0.0f;
        }
        for (int e = tid; e < TR * TI; e += 256) {
            int r = e % TR, ii = e / TR, i = i0 + ii;
            long long n = n0 + r;
            float a[S];
            if (n < N && i < IN)
                kanc_kan_a<B, ACT, BASE>(x[n * IN + i], kanc_grid_row<B>(grid, i), a);
            else
                for (int c = 0; c < S; c++) a[c] = 0.0f;
            for (int c = 0; c < S; c++) As[r][ii * S + c] = a[c];
        }
        __syncthreads();
        for (int r = 0; r < TR; r++) kanc_tile_step<RM, RN, TNW>(acc, Ds[r], As[r], tx, ty);
        __syncthreads();
    }
    kanc_tile_store<RM, RN, TNW, TNW + 1>(Gs, acc, tx, ty);
    __syncthreads();
    for (int e = tid; e < TM * TI; e += 256) {
        int oo = e / TI, ii = e % TI, o = o0 + oo, i = i0 + ii;
        if (o < OUT && i < IN)
            kanc_kan_split_one<B, BASE, SCALER>(dbase, dspline, dscaler, &Gs[oo][ii * S], spline, scaler, o, i, IN,
                                                OUT);
    }
}

/* input: Gb = dY Wf (TM rows x TI*S columns per block, the reduction over
   outputs TO at a time with Wf built on the fly); epilogue fusion:
   dx[n,i] (+)= act'(x) Gb[n,i,0] (if BASE) + sum_c B'_c(x) Gb[n,i,BASE+c]. */
template <class B, int ACT, int BASE, int SCALER, int ACC, int TM, int TI, int TO>
__device__ __forceinline__ void kanc_kan_bwd_x(float *dx, const float *dy, const float *x,
                                               const float *grid, const float *base,
                                               const float *spline, const float *scaler,
                                               long long N, int IN, int OUT)
{
    constexpr int NB = B::NB, S = NB + BASE, TNW = TI * S;
    constexpr int RM = TM / 16, RN = (TNW + 15) / 16;
    __shared__ float Ds[TO][TM + 1];  /* dY^T: outputs x rows */
    __shared__ float Ws[TO][TNW + 1]; /* Wf: outputs x columns */
    __shared__ float Gs[TM][TNW + 1]; /* the finished Gb tile */
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    long long r0 = (long long)blockIdx.y * TM;
    int i0 = blockIdx.x * TI;
    float acc[RM][RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
    for (int o0 = 0; o0 < OUT; o0 += TO) {
        for (int e = tid; e < TO * TM; e += 256) {
            int oo = e % TO, r = e / TO, o = o0 + oo;
            long long n = r0 + r;
            Ds[oo][r] = (n < N && o < OUT) ? dy[n * OUT + o] : 0.0f;
        }
        for (int e = tid; e < TO * TNW; e += 256) {
            int kk = e % TNW, oo = e / TNW, o = o0 + oo, i = i0 + kk / S;
            Ws[oo][kk] = (o < OUT && i < IN)
                             ? kanc_kan_w<B, BASE, SCALER>(base, spline, scaler, o, i, IN, OUT, kk % S)
                             : 0.0f;
        }
        __syncthreads();
        for (int oo = 0; oo < TO; oo++) kanc_tile_step<RM, RN, TNW>(acc, Ds[oo], Ws[oo], tx, ty);
        __syncthreads();
    }
    kanc_tile_store<RM, RN, TNW, TNW + 1>(Gs, acc, tx, ty);
    __syncthreads();
    for (int e = tid; e < TM * TI; e += 256) {
        int r = e / TI, ii = e % TI, i = i0 + ii;
        long long n = r0 + r;
        if (n >= N || i >= IN) continue;
        long long q = n * IN + i;
        float xv = x[q], bs[NB], dbs[NB];
        B::eval(xv, kanc_grid_row<B>(grid, i), bs, dbs);
        const float *g = &Gs[r][ii * S];
        float s = BASE ? kanc_act_grad(ACT, xv) * g[0] : 0.0f;
        for (int c = 0; c < NB; c++) s += dbs[c] * g[BASE + c];
        dx[q] = ACC ? dx[q] + s : s;
    }
}

/* ---- efficient-kan's regularization loss of one layer, W [M, NF] its spline weights:
   l[m] = mean_c |W[m, c]|, S = sum l, H = sum p log p (p = l / S); as ops/kan_cpu.inc ---- */

/* y = a S - e H, stats = (S, H); one block, fixed-order sums in double */
KD void kanc_kan_reg_fwd(float *y, float *stats, const float *w, long long M, int nf, float a, float e)
{
    double S = 0, H = 0;
    for (long long m = threadIdx.x; m < M; m += blockDim.x) {
        double l = 0;
        for (int c = 0; c < nf; c++) l += fabs((double)w[m * nf + c]);
        S += l / nf;
    }
    S = kanc_block_sum(S);
    for (long long m = threadIdx.x; m < M; m += blockDim.x) {
        double l = 0;
        for (int c = 0; c < nf; c++) l += fabs((double)w[m * nf + c]);
        double p = l / nf / S;
        if (p > 0) H += p * log(p);
    }
    H = kanc_block_sum(H);
    if (threadIdx.x == 0) {
        stats[0] = (float)S;
        stats[1] = (float)H;
        y[0] = (float)(a * S - e * H);
    }
}

/* dW[m, c] += dy (a - e (log p_m - H) / S) sign(W[m, c]) / nf */
KD void kanc_kan_reg_bwd(float *dw, const float *dy, const float *w, const float *stats, long long M, int nf,
                         float a, float e)
{
    double S = stats[0], H = stats[1], g = dy[0];
    for (long long i = kanc_gtid(); i < M * nf; i += kanc_gstride()) {
        long long m = i / nf;
        double l = 0;
        for (int c = 0; c < nf; c++) l += fabs((double)w[m * nf + c]);
        double p = l / nf / S, dl = a - (p > 0 ? e * (log(p) - H) / S : 0.0);
        double sgn = w[i] > 0 ? 1.0 : w[i] < 0 ? -1.0 : 0.0;
        dw[i] = (float)(dw[i] + g * dl * sgn / nf);
    }
}

#endif
