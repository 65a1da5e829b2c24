/* hash.h: FNV-1a, 64-bit: the fingerprints of plans, generated sources and tokenizer files. */
#ifndef KANC_HASH_H
#define KANC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_INIT 0xcbf29ce484222325ull

/* Folds n bytes at p into the running hash h (start from FNV1A64_INIT). */
static inline uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif
