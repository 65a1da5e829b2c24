/* dist_zero.h: ZeRO stage 1 on CPU ranks: each rank keeps and updates the AdamW
 * moments of its slice of the parameters (dist_slice of the flat parameter
 * area), then the updated slices are all-gathered.
 *
 * Every rank still computes (and all-reduces) the whole gradient and its norm,
 * so the clip scale is the shared one and each element's update is the very
 * kernel of the unsharded step (adamw_f32): the weights, and the losses, are
 * the same bits as without --zero. The device's own moment areas are given
 * back to the OS (madvise) once the slice is taken; rank 0 fills them again
 * only to write a checkpoint, which then holds the whole optimizer state as an
 * unsharded run writes it: it resumes with any number of ranks, with or
 * without --zero, and reads in a single process.
 */
#ifndef KANC_DIST_ZERO_H
#define KANC_DIST_ZERO_H

#include "dist.h"

typedef struct DistZero {
    int active;
    int64_t n;      /* parameter elements */
    int64_t lo, hi; /* this rank's slice */
    float *m, *v;   /* its AdamW moments */
} DistZero;

/* Takes this rank's slice of the device's moments (zeros, or a checkpoint's)
   and releases the device's copies. Returns 0, or -1 with a message (not a
   float32 CPU device). */
int dist_zero_init(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen);
/* clip + AdamW on the slice, the slices all-gathered; counts the step
   (dev->step, dev->clip_scale), as run(adam, adam + 1) does. */
int dist_zero_step(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen);
/* Every rank's moments into rank 0's device areas (before a checkpoint). */
int dist_zero_gather(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen);
/* The device's moment areas back to the OS (after the checkpoint). */
void dist_zero_release(DistZero *z, Device *dev);
void dist_zero_free(DistZero *z);

#endif
