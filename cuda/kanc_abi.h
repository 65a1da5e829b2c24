/* kanc_abi.h: the kernel ABI, one definition for the C runtime and the CUDA kernels.
 *
 * Every generated kernel has the signature
 *     extern "C" __global__ void NAME(const KancArgs *args, const KancLaunchArgs la)
 * KancArgs (in device memory, the same for every launch) holds the base
 * addresses of the storage areas and of the per-step KancScalars; la (passed
 * by value, one per launch) holds what differs between launches of one
 * kernel: the device addresses of the launch's tensors (area base + planned
 * byte offset, resolved by the runtime) and small integers (dropout's node
 * stream). Shapes and attributes stay compiled into the kernel, so launches
 * of layers of one shape share one kernel. Field order and types are ABI:
 * the host writes these structs byte for byte into device memory or into
 * the launch's parameter buffer.
 */
#ifndef KANC_ABI_H
#define KANC_ABI_H

#ifndef __CUDACC_RTC__
#include <stdint.h>
#endif

/* The storage areas, in KancArgs order. */
typedef enum {
    AREA_ARENA,   /* activations and their gradients, planned offsets */
    AREA_PARAMS,  /* trainable parameters, flat */
    AREA_GRADS,   /* their gradients */
    AREA_M,       /* AdamW first moments */
    AREA_V,       /* AdamW second moments */
    AREA_BUFFERS, /* non-trainable tensors (KAN grids) */
    AREA_WS,      /* kernel workspace */
    KANC_N_AREAS
} KancArea;

/* Base addresses of the storage areas (device addresses) and of the scalars. */
typedef struct KancArgs {
    uint64_t arena, params, grads, m, v, buffers, ws;
    uint64_t scalars; /* KancScalars * */
} KancArgs;

/* A launch's own values: la.v[i] is argument i of the launch (CudaLaunch.arg). */
#define KANC_MAX_LAUNCH_ARGS 16
typedef struct KancLaunchArgs {
    uint64_t v[KANC_MAX_LAUNCH_ARGS];
} KancLaunchArgs;

/* Per-step values written by the host before a step, and the device-computed
   grad_norm / clip_scale, read back for the log. */
typedef struct KancScalars {
    float lr, beta1, beta2, eps, weight_decay, clip;
    float grad_norm, clip_scale; /* written by the device */
    uint64_t seed, step;         /* dropout randomness; AdamW's t = step + 1 */
    int32_t training;
    int32_t pad;
} KancScalars;

#if !defined(__CUDACC__) && !defined(KANC_EMU)
/* The area's name in KancArgs (and in a cubin's plan JSON), "?" out of range. */
static inline const char *kanc_area_name(int area)
{
    static const char *const names[KANC_N_AREAS] = {"arena", "params", "grads", "m", "v", "buffers", "ws"};
    return area >= 0 && area < KANC_N_AREAS ? names[area] : "?";
}
#endif

#endif
