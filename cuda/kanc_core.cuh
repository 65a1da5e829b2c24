/* kanc_core.cuh: what every kernel uses: the ABI, tensor pointers, the counter
 * RNG (runtime/exec/rng.h, included as it is), grid-stride loops, the warp and block
 * primitives, the activations and dropout.
 *
 * Compiled three ways: by NVRTC (the generated step), by nvcc as a standalone
 * translation unit (tests/cuda/lib_instantiate.cu), and by the host C++
 * compiler under the emulation prelude (runtime/device/emu/cuda_emu.h, KANC_EMU).
 */
#ifndef KANC_CORE_CUH
#define KANC_CORE_CUH

#ifdef __CUDACC_RTC__
/* NVRTC has no <stdint.h> */
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned int uint32_t;
typedef int int32_t;
#endif

#include "kanc_abi.h"

/* a tensor: launch argument i, its device address (the runtime adds the planned
   offset to its area's base, so that launches of one shape share a kernel) */
#define KANC_LA_PTR(T, la, i) ((T *)(la).v[i])
#define KANC_SCALARS(args) ((KancScalars *)(args)->scalars)
#define KANC_BIG 3.402823466e+38f /* FLT_MAX: start of a max reduction */
#define KD __device__ __forceinline__ /* not static: NVRTC warns of unused statics */

/* Dynamic shared memory (the launch's smem bytes) as a T array. */
#ifdef KANC_EMU
#define KANC_DYN_SMEM(T, name) T *name = (T *)kanc_emu_dyn_smem()
#else
#define KANC_DYN_SMEM(T, name)                                        \
    extern __shared__ __align__(16) unsigned char kanc_dyn_smem_[]; \
    T *name = (T *)kanc_dyn_smem_
#endif

/* the CPU's random numbers as device functions: dropout masks equal the CPU's bit for bit */
#define KANC_RNG_FN KD
#include "rng.h"

/* grid-stride loops over n elements */
KD long long kanc_gtid() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
KD long long kanc_gstride() { return (long long)gridDim.x * blockDim.x; }

/* ---- warp and block primitives: every cross-thread operation goes through
   these; under the emulation prelude (KANC_EMU) they have a CPU meaning that
   gives the same bits (the same butterfly order). ---- */
#ifdef KANC_EMU
KD float kanc_warp_sum(float v) { return kanc_emu_warp_sum(v); }
KD double kanc_warp_sum(double v) { return kanc_emu_warp_sum(v); }
KD float kanc_warp_max(float v) { return kanc_emu_warp_max(v); }
KD void kanc_warp_sync() { kanc_emu_warp_sync(); }
#else
KD float kanc_warp_sum(float v)
{
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}
KD double kanc_warp_sum(double v)
{
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}
KD float kanc_warp_max(float v)
{
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
    return v;
}
KD void kanc_warp_sync() { __syncwarp(); }
#endif

/* Sum over the block (blockDim.x a multiple of 32, every thread calls it):
   warp butterflies, then every thread adds the per-warp partials in warp
   order, so the result is the same in all threads and on every run. */
template <typename T> __device__ __forceinline__ T kanc_block_sum(T v)
{
    __shared__ T part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kanc_warp_sum(v);
    __syncthreads(); /* an earlier call's readers are done with part */
    if (lane == 0) part[w] = v;
    __syncthreads();
    T s = part[0];
    for (int j = 1; j < nw; j++) s += part[j];
    return s;
}

KD float kanc_block_max(float v)
{
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kanc_warp_max(v);
    __syncthreads();
    if (lane == 0) part[w] = v;
    __syncthreads();
    float s = part[0];
    for (int j = 1; j < nw; j++) s = fmaxf(s, part[j]);
    return s;
}

/* ---- activations and the unary ops (GAct numbering), as runtime/exec/cpu_common.inc ---- */
#define KANC_ACT_NONE 0
#define KANC_ACT_SILU 1
#define KANC_ACT_GELU 2
#define KANC_ACT_RELU 3
#define KANC_ACT_TANH 4
#define KANC_ACT_SIGMOID 5
#define KANC_ACT_EXP 6
#define KANC_ACT_LOG 7
#define KANC_ACT_ABS 8
#define KANC_ACT_RECIP 9
#define KANC_GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define KANC_GELU_A 0.044715f

KD float kanc_act(int act, float x)
{
    switch (act) {
    case KANC_ACT_SILU: return x / (1.0f + expf(-x));
    case KANC_ACT_GELU:
        return 0.5f * x * (1.0f + tanhf(KANC_GELU_C * (x + KANC_GELU_A * x * x * x)));
    case KANC_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case KANC_ACT_TANH: return tanhf(x);
    case KANC_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case KANC_ACT_EXP: return expf(x);
    case KANC_ACT_LOG: return logf(x);
    case KANC_ACT_ABS: return fabsf(x);
    case KANC_ACT_RECIP: return 1.0f / x;
    default: return x;
    }
}

KD float kanc_act_grad(int act, float x)
{
    switch (act) {
    case KANC_ACT_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case KANC_ACT_GELU: {
        float t = tanhf(KANC_GELU_C * (x + KANC_GELU_A * x * x * x));
        return 0.5f * (1.0f + t) +
               0.5f * x * (1.0f - t * t) * KANC_GELU_C * (1.0f + 3.0f * KANC_GELU_A * x * x);
    }
    case KANC_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case KANC_ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case KANC_ACT_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f - s);
    }
    case KANC_ACT_EXP: return expf(x);
    case KANC_ACT_LOG: return 1.0f / x;
    case KANC_ACT_ABS: return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f;
    case KANC_ACT_RECIP: return -1.0f / (x * x);
    default: return 1.0f;
    }
}

/* keep scale or 0 for element idx of a dropout stream (p > 0): the CPU compares
   the float draw with the double p */
KD float kanc_drop(double p, float keep, uint64_t seed, uint64_t stream, uint64_t idx)
{
    return (double)kanc_rng_uniform(seed, stream, idx) >= p ? keep : 0.0f;
}

/* ---- bf16 operands of the GEMMs (the generator defines KANC_BF16 and includes
   <cuda_bf16.h> in a step of precision bf16) ---- */
#ifdef KANC_BF16
/* dst[r, c] (row stride ld_dst) = bf16(src[r, c]) (row stride ld_src), round to nearest even */
KD void kanc_cast_bf16_rows(__nv_bfloat16 *dst, const float *src, long long rows, long long cols, long long ld_src,
                            long long ld_dst)
{
    for (long long e = kanc_gtid(); e < rows * cols; e += kanc_gstride()) {
        long long r = e / cols, c = e - r * cols;
        dst[r * ld_dst + c] = __float2bfloat16_rn(src[r * ld_src + c]);
    }
}
#endif

#endif
