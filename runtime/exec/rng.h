/* rng.h: the counter-based random numbers behind dropout (and sampling).
 *
 * A draw is a pure function of (seed, stream, index): no state, so the CPU
 * kernels, the generated CUDA kernels and a resumed run all draw the same
 * numbers for the same element, in any order, on any number of threads.
 * cuda/kanc_core.cuh includes this header as it is (KANC_RNG_FN set to a
 * device inline), so it stays plain C99 with no includes beyond stdint.
 */
#ifndef KANC_RNG_H
#define KANC_RNG_H

#ifndef __CUDACC_RTC__ /* NVRTC: cuda/kanc_core.cuh defines the types */
#include <stdint.h>
#endif

#ifndef KANC_RNG_FN
#define KANC_RNG_FN static inline
#endif

/* splitmix64's finaliser: a bijective 64-bit mix */
KANC_RNG_FN uint64_t kanc_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 64 random bits for element `index` of stream `stream` under `seed` */
KANC_RNG_FN uint64_t kanc_rng_bits(uint64_t seed, uint64_t stream, uint64_t index)
{
    return kanc_mix64(kanc_mix64(seed ^ kanc_mix64(stream)) ^ index);
}

/* uniform in [0, 1) with 24 bits, exact in float and double */
KANC_RNG_FN float kanc_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    return (float)(kanc_rng_bits(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

/* The dropout stream of graph node `node` at optimizer step `step`. */
KANC_RNG_FN uint64_t kanc_dropout_stream(uint64_t step, uint32_t node)
{
    return (step << 20) ^ (uint64_t)node;
}

#endif
