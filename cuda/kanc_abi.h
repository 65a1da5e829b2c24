/* kanc_abi.h: the kernel ABI, one definition for the C runtime and the CUDA kernels.
 *
 * Every generated kernel has the signature
 *     extern "C" __global__ void NAME(const KancArgs *args)
 * and finds its tensors at constant byte offsets of the storage areas whose
 * base addresses KancArgs holds; the per-step values sit in KancScalars.
 * Field order and types are ABI: the host writes these structs byte for byte
 * into device memory.
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
