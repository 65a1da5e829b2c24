/* bf16.h: bfloat16 on the host, as the GPU rounds it.
 *
 * bf16 is the upper half of an IEEE float: 1 sign, 8 exponent and 7 stored
 * significand bits (8 with the implicit one: unit roundoff 2^-8). Conversion
 * from float rounds to nearest, ties to even (cvt.rn.bf16.f32, CUDA's
 * __float2bfloat16), keeps subnormals, overflows to infinity past the largest
 * finite value 0x7f7f (3.3895e38) plus half an ulp, and turns any NaN into
 * the canonical 0x7fff as cuda_bf16.h does. Conversion to float is exact.
 *
 * Header only (static inline), C and C++: the cuBLASLt mock
 * (runtime/device/cuda_api.c) and the tests use it; the emulated CUDA header
 * runtime/device/emu/include/cuda_bf16.h implements the same rounding on its
 * own, and tests/test_emu.c checks both against a reference computed another
 * way.
 */
#ifndef KANC_BF16_H
#define KANC_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t kanc_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff; /* NaN */
    /* add just under half an ulp, plus one when the kept part is odd: a tie
       rounds to even; the carry may reach the exponent (up to infinity) */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float kanc_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* The nearest bf16 to a float value (rounded to bf16 and back). */
static inline float kanc_bf16_round(float f) { return kanc_bf16_to_f32(kanc_f32_to_bf16(f)); }

static inline void kanc_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = kanc_f32_to_bf16(src[i]);
}

static inline void kanc_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = kanc_bf16_to_f32(src[i]);
}

#endif
