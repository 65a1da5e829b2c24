/* kanc_loss.cuh: softmax cross-entropy forward and backward; the mean squared error. */
#ifndef KANC_LOSS_CUH
#define KANC_LOSS_CUH

#include "kanc_core.cuh"

/* ---- softmax cross-entropy ---- */

/* lse[r] = log sum exp logits[r, :]: one block per row */
KD void kanc_ce_lse(float *lse, const float *logits, int V)
{
    long long r = blockIdx.x;
    const float *row = logits + r * V;
    float mx = -KANC_BIG;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = kanc_block_max(mx);
    double s = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(row[j] - mx);
    s = kanc_block_sum(s);
    if (threadIdx.x == 0) lse[r] = (float)(mx + log(s));
}

/* loss = mean over rows with a target (!= -1) of lse - logit[target]: one block */
KD void kanc_ce_loss(float *loss, const float *lse, const float *logits, const int *targets,
                     long long N, int V)
{
    double total = 0.0, count = 0.0;
    for (long long r = threadIdx.x; r < N; r += blockDim.x)
        if (targets[r] != -1) {
            total += (double)lse[r] - logits[r * V + targets[r]];
            count += 1.0;
        }
    total = kanc_block_sum(total);
    count = kanc_block_sum(count);
    if (threadIdx.x == 0) loss[0] = (float)(count > 0.0 ? total / count : 0.0);
}

/* g = dloss / count (0 when nothing counts) into *g: one block */
KD void kanc_ce_scale(float *g, const float *dloss, const int *targets, long long N)
{
    double count = 0.0;
    for (long long r = threadIdx.x; r < N; r += blockDim.x) count += targets[r] != -1 ? 1.0 : 0.0;
    count = kanc_block_sum(count);
    if (threadIdx.x == 0) g[0] = (float)(count > 0.0 ? (double)dloss[0] / count : 0.0);
}

/* dlogits (+)= g (softmax - onehot) on counted rows; uncounted rows: 0 (kept when ACC) */
template <int ACC>
__device__ __forceinline__ void kanc_ce_bwd(float *dl, const float *gp, const float *logits,
                                            const int *targets, const float *lse, long long N, int V)
{
    float g = gp[0];
    for (long long e = kanc_gtid(); e < N * V; e += kanc_gstride()) {
        long long r = e / V;
        int j = (int)(e % V), t = targets[r];
        float prev = ACC ? dl[e] : 0.0f;
        dl[e] = t == -1 ? prev : prev + g * (expf(logits[e] - lse[r]) - (j == t ? 1.0f : 0.0f));
    }
}

/* ---- mean squared error ---- */

/* loss = mean (pred - target)^2: one block, thread t sums elements t, t + blockDim, ... */
KD void kanc_mse(float *loss, const float *pred, const float *target, long long N)
{
    double s = 0.0;
    for (long long i = threadIdx.x; i < N; i += blockDim.x) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
    }
    s = kanc_block_sum(s);
    if (threadIdx.x == 0) loss[0] = (float)(N > 0 ? s / (double)N : 0.0);
}

#endif
