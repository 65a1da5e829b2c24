/* kanc_attention.cuh: causal self-attention (minGPT layout) forward and backward. */
#ifndef KANC_ATTENTION_CUH
#define KANC_ATTENTION_CUH

#include "kanc_core.cuh"

/* ---- attention (minGPT): qkv[B,T,3C], head h uses columns h*D .. of q, k, v.
   One warp per row u = (b*H + h)*T + i of P[B,H,T,T]; P is the softmax before
   dropout, as the CPU saves it. ---- */
template <int CAUSAL>
__device__ __forceinline__ void kanc_attention_fwd(float *y, float *P, const float *qkv, int B,
                                                   int T, int C, int H, float sc, double p,
                                                   float keep, uint64_t seed, uint64_t stream)
{
    int lane = threadIdx.x & 31;
    long long u = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (u >= (long long)B * H * T) return; /* whole warps leave together */
    int D = C / H, C3 = 3 * C, h = (int)(u / T % H), i = (int)(u % T), jn = CAUSAL ? i + 1 : T;
    long long b = u / ((long long)H * T);
    const float *q = qkv + (b * T + i) * C3 + h * D, *kv = qkv + b * T * C3 + h * D;
    float *pr = P + u * T, *yr = y + (b * T + i) * C + h * D;
    float mx = -KANC_BIG;
    for (int j = lane; j < jn; j += 32) {
        const float *kj = kv + (long long)j * C3 + C;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += q[d] * kj[d];
        pr[j] = s * sc;
        mx = fmaxf(mx, pr[j]);
    }
    mx = kanc_warp_max(mx);
    double sum = 0.0;
    for (int j = lane; j < jn; j += 32) {
        pr[j] = expf(pr[j] - mx);
        sum += pr[j];
    }
    float inv = (float)(1.0 / kanc_warp_sum(sum));
    for (int j = lane; j < jn; j += 32) pr[j] *= inv;
    for (int j = jn + lane; j < T; j += 32) pr[j] = 0.0f;
    kanc_warp_sync(); /* the row of P, written by all lanes, is read by all */
    for (int d = lane; d < D; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j < jn; j++) {
            float a = p > 0.0 ? pr[j] * kanc_drop(p, keep, seed, stream, (uint64_t)(u * T + j)) : pr[j];
            acc += a * kv[(long long)j * C3 + 2 * C + d];
        }
        yr[d] = acc;
    }
}

/* Backward in three passes. P is dead after the backward, so pass 2 writes
   dS over it instead of taking a workspace as large as P; pass 1 reads P first.
   Dropout masks come from the counter RNG, as in the forward. */

/* pass 1: dv_j = sum_i mask_ij P_ij dy_i; one thread per element of the v part */
template <int CAUSAL, int ACC>
__device__ __forceinline__ void kanc_attention_bwd_dv(float *dqkv, const float *dy, const float *P,
                                                      int B, int T, int C, int H, double p,
                                                      float keep, uint64_t seed, uint64_t stream)
{
    int D = C / H, C3 = 3 * C;
    for (long long e = kanc_gtid(); e < (long long)B * T * C; e += kanc_gstride()) {
        int c = (int)(e % C), t = (int)(e / C % T), h = c / D;
        long long b = e / ((long long)T * C), bh = b * H + h;
        float s = 0.0f;
        for (int i = CAUSAL ? t : 0; i < T; i++) {
            long long q = (bh * T + i) * T + t; /* P[b, h, i, t] */
            float a = p > 0.0 ? P[q] * kanc_drop(p, keep, seed, stream, (uint64_t)q) : P[q];
            s += a * dy[(b * T + i) * C + c];
        }
        long long o = (b * T + t) * C3 + 2 * C + c;
        dqkv[o] = ACC ? dqkv[o] + s : s;
    }
}

/* pass 2, one warp per row u = (b*H + h)*T + i: dP_ij = mask_ij (dy_i . v_j),
   rowdot = sum_j P_ij dP_ij, then dS_ij = P_ij (dP_ij - rowdot) / sqrt(D) over
   P's row (dP is computed twice rather than stored) */
template <int CAUSAL>
__device__ __forceinline__ void kanc_attention_bwd_ds(float *PdS, const float *dy, const float *qkv,
                                                      int B, int T, int C, int H, float sc,
                                                      double p, float keep, uint64_t seed,
                                                      uint64_t stream)
{
    int lane = threadIdx.x & 31;
    long long u = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (u >= (long long)B * H * T) return; /* whole warps leave together */
    int D = C / H, C3 = 3 * C, h = (int)(u / T % H), i = (int)(u % T), jn = CAUSAL ? i + 1 : T;
    long long b = u / ((long long)H * T);
    const float *g = dy + (b * T + i) * C + h * D, *kv = qkv + b * T * C3 + h * D;
    float *row = PdS + u * T;
    double rowdot = 0.0;
    for (int j = lane; j < jn; j += 32) {
        const float *vj = kv + (long long)j * C3 + 2 * C;
        float da = 0.0f;
        for (int d = 0; d < D; d++) da += g[d] * vj[d];
        float m = p > 0.0 ? kanc_drop(p, keep, seed, stream, (uint64_t)(u * T + j)) : 1.0f;
        rowdot += (double)row[j] * (da * m);
    }
    rowdot = kanc_warp_sum(rowdot);
    for (int j = lane; j < jn; j += 32) { /* each lane rewrites only its own entries */
        const float *vj = kv + (long long)j * C3 + 2 * C;
        float da = 0.0f;
        for (int d = 0; d < D; d++) da += g[d] * vj[d];
        float m = p > 0.0 ? kanc_drop(p, keep, seed, stream, (uint64_t)(u * T + j)) : 1.0f;
        row[j] = (float)(row[j] * ((double)(da * m) - rowdot)) * sc;
    }
}

/* pass 3: dq_i = sum_j dS_ij k_j, dk_j = sum_i dS_ij q_i; one thread per
   element of the q and k parts */
template <int CAUSAL, int ACC>
__device__ __forceinline__ void kanc_attention_bwd_dqk(float *dqkv, const float *dS, const float *qkv,
                                                       int B, int T, int C, int H)
{
    int D = C / H, C3 = 3 * C;
    for (long long e = kanc_gtid(); e < (long long)B * T * 2 * C; e += kanc_gstride()) {
        int col = (int)(e % (2 * C)), t = (int)(e / (2 * C) % T), c = col % C, h = c / D;
        long long b = e / ((long long)T * 2 * C), bh = b * H + h;
        const float *qb = qkv + b * T * C3 + c; /* q[b, 0, c]; k is C further */
        float s = 0.0f;
        if (col < C) { /* dq */
            const float *dsr = dS + (bh * T + t) * T;
            for (int j = 0; j < (CAUSAL ? t + 1 : T); j++) s += dsr[j] * qb[(long long)j * C3 + C];
        } else { /* dk */
            for (int i = CAUSAL ? t : 0; i < T; i++) s += dS[(bh * T + i) * T + t] * qb[(long long)i * C3];
        }
        long long o = (b * T + t) * C3 + col;
        dqkv[o] = ACC ? dqkv[o] + s : s;
    }
}

/* ---- attention on GEMMs: QK^T, PV and the backward's four products are
   cuBLASLt strided-batched GEMMs (one per head, batched over B); these are the
   kernels between them. The scores S = q k^T / sqrt(D) come as whole rows (the
   causal mask's half too). ---- */

/* P = softmax(S), causal rows over j <= i and 0 after (as P is saved). Rows
   u = (b*NH + hh)*T + i for b < B, hh < NH heads, i < T, one warp each; S's row
   at S + b sB + hh sH + i T (fp32; it holds the exponentials after), P's at
   P + b pB + hh pH + i ldp. TP is float (S may be P: in place over P[B,H,T,T],
   all heads at once) or __nv_bfloat16 (precision bf16: one head's scores in
   the workspace, its P in bf16 rows padded to ldp). Each lane touches only
   its own entries. */
template <int CAUSAL, class TP>
__device__ __forceinline__ void kanc_attention_softmax(TP *P, float *S, int B, int NH, int T, long long sB,
                                                       long long sH, long long pB, long long pH, int ldp)
{
    int lane = threadIdx.x & 31;
    long long u = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (u >= (long long)B * NH * T) return; /* whole warps leave together */
    long long b = u / ((long long)NH * T);
    int hh = (int)(u / T % NH), i = (int)(u % T), jn = CAUSAL ? i + 1 : T;
    float *sr = S + b * sB + hh * sH + (long long)i * T;
    TP *pr = P + b * pB + hh * pH + (long long)i * ldp;
    float mx = -KANC_BIG;
    for (int j = lane; j < jn; j += 32) mx = fmaxf(mx, sr[j]);
    mx = kanc_warp_max(mx);
    double sum = 0.0;
    for (int j = lane; j < jn; j += 32) {
        sr[j] = expf(sr[j] - mx);
        sum += sr[j];
    }
    float inv = (float)(1.0 / kanc_warp_sum(sum));
    for (int j = lane; j < jn; j += 32) pr[j] = TP(sr[j] * inv);
    for (int j = jn + lane; j < T; j += 32) pr[j] = TP(0.0f);
}

/* dS = P (dP - rowsum(P dP)) / sqrt(D), written over head h's rows of P
   (P[B,H,T,ld], TP float with ld = T, or bf16 rows padded to ld); dP[B,T,T]
   is the head's dy v^T (a GEMM into the workspace). One warp per row
   u = b*T + i. */
template <int CAUSAL, class TP>
__device__ __forceinline__ void kanc_attention_softmax_bwd(TP *PdS, const float *dP, int B, int T, int H, int h,
                                                           int ld, float sc)
{
    int lane = threadIdx.x & 31;
    long long u = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (u >= (long long)B * T) return; /* whole warps leave together */
    long long b = u / T;
    int i = (int)(u % T), jn = CAUSAL ? i + 1 : T;
    TP *row = PdS + ((b * H + h) * T + i) * ld;
    const float *dr = dP + u * T;
    double rowdot = 0.0;
    for (int j = lane; j < jn; j += 32) rowdot += (double)(float)row[j] * dr[j];
    rowdot = kanc_warp_sum(rowdot);
    for (int j = lane; j < jn; j += 32) row[j] = TP((float)((float)row[j] * ((double)dr[j] - rowdot)) * sc);
    for (int j = jn + lane; j < T; j += 32) row[j] = TP(0.0f);
}

/* ---- rotary position embedding (rope): one thread per element ---- */

/* y (+)= x rotated (INV: rotated back) as ops/attention_cpu.inc's rope: row
   r = e / W at position t = r % T; in the first R columns, heads of D with
   pairs (i, i + D/2) turned by t base^(-2i/D); the other columns copied */
template <int INV, int ACC>
__device__ __forceinline__ void kanc_rope(float *y, const float *x, long long n, int T, int W, int R, int D,
                                          double base)
{
    int half = D / 2;
    for (long long e = kanc_gtid(); e < n; e += kanc_gstride()) {
        long long r = e / W;
        int col = (int)(e - r * W);
        double v;
        if (col < R) {
            int j = col % D, i = j < half ? j : j - half;
            double ang = (double)(r % T) * pow(base, -2.0 * i / D), c = cos(ang), sn = INV ? -sin(ang) : sin(ang);
            v = j < half ? (double)x[e] * c - (double)x[e + half] * sn : (double)x[e] * c + (double)x[e - half] * sn;
        } else {
            v = x[e];
        }
        y[e] = (float)((ACC ? (double)y[e] : 0.0) + v);
    }
}

#endif
