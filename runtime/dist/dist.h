/* dist.h: data-parallel training across processes: MPI for start-up and CPU
 * collectives, NCCL for the gradients of CUDA ranks.
 *
 * kanrun is never linked with MPI. dist_init looks at the environment: under
 * `mpirun` (OMPI_COMM_WORLD_SIZE, or PMI_SIZE / PMIX_RANK from another
 * launcher) it dlopens Open MPI's libmpi.so.40 with RTLD_GLOBAL (its plugins
 * resolve symbols against it) and calls MPI_Init; otherwise the job is one
 * process and no MPI library is touched. The MPI declarations are Open MPI's
 * ABI (dist_mpi.c), checked at start-up through MPI_Get_library_version.
 *
 * Determinism. No reduction is left to the library: every sum is done here,
 * over the ranks in order 0..N-1, after the pieces have been moved with MPI
 * (all-to-all, all-gather: plain copies). So the same N, seed and flags give
 * the same bits, and every rank holds exactly the same result. NCCL's ring
 * all-reduce is deterministic for a fixed N and topology as well.
 *
 * Faults. Every collective is non-blocking and polled against a deadline
 * (`timeout_s`, kanrun's --dist-timeout); MPI errors are returned, not
 * fatal (MPI_ERRORS_RETURN). A failure or a timeout returns -1 with a message
 * naming the collective and the rank; the caller then stops the whole job
 * with dist_abort.
 */
#ifndef KANC_DIST_H
#define KANC_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

typedef struct DistMpi DistMpi;   /* dist_mpi.c */
typedef struct DistNccl DistNccl; /* dist_nccl.c */

typedef struct {
    int rank, size;       /* this process, and how many (1, 0: not under MPI) */
    int local_rank, local_size; /* on this machine (from the launcher) */
    int active;           /* launched under MPI (possibly a single rank) */
    double timeout_s;     /* the longest wait in one collective */
    int64_t step;         /* for messages: the step being run */
    DistMpi *mpi;
    DistNccl *nccl;       /* the gradient all-reduce of CUDA ranks, or NULL */
    char mpi_lib[256];    /* the library opened, for the start-up line */
    float *buf;           /* host staging of gradient slices (MPI path) */
    size_t buf_elems;
} Dist;

/* Detects the launcher and starts MPI when there is one. Returns 0 (d->active
   says whether MPI runs), or -1 with a message (no libmpi, an MPI that is not
   Open MPI, MPI_Init failing). */
int dist_init(Dist *d, double timeout_s, char *err, size_t errlen);
/* Ends MPI after a run that every rank finished the same way. */
void dist_finalize(Dist *d);
/* Stops every rank of the job with `status` (MPI_Abort), after a failure one
   rank alone saw or a collective that timed out. Never returns. */
_Noreturn void dist_abort(Dist *d, int status);

/* The gradients of the step (the device's AREA_GRADS) averaged across the
   ranks, left in place on every rank: NCCL on the device buffers when
   dist_use_nccl succeeded, else MPI through host memory. */
int dist_average_grads(Dist *d, Device *dev, char *err, size_t errlen);
/* NCCL for dev's gradients (a "cuda" device: libnccl.so.2; "emu": the mock
   below), its unique id made by rank 0 and broadcast over MPI. Returns 0, or
   -1 with a message. */
int dist_use_nccl(Dist *d, Device *dev, char *err, size_t errlen);

/* the NCCL library in use ("libnccl.so.2", "(mock: ...)"), or NULL: gradients go by MPI */
const char *dist_nccl_name(const Dist *d);

/* v[0..n) := the mean over the ranks (summed in rank order, in double) */
int dist_mean(Dist *d, double *v, int n, char *err, size_t errlen);
/* *v := the largest of the ranks' values */
int dist_max_int(Dist *d, int *v, char *err, size_t errlen);
/* bytes from rank `root` to every rank */
int dist_bcast(Dist *d, void *buf, size_t bytes, int root, char *err, size_t errlen);
/* Every rank's `bytes` bytes at `mine` into all[size * bytes], in rank order. */
int dist_allgather(Dist *d, const void *mine, void *all, size_t bytes, char *err, size_t errlen);
/* Variable-sized pieces: rank r contributes counts[r] bytes (mine), placed at
   offs[r] of all. Large pieces are moved in rounds (MPI counts are int). */
int dist_allgatherv(Dist *d, const void *mine, void *all, const size_t *counts, const size_t *offs,
                    char *err, size_t errlen);
/* Rank r's counts[r] bytes (mine) to offs[r] of rank 0's all (others: all may be NULL). */
int dist_gatherv(Dist *d, const void *mine, void *all, const size_t *counts, const size_t *offs, char *err,
                 size_t errlen);

/* Checks that every rank's 64-bit fingerprint equals rank 0's: -1 with the
   ranks that differ otherwise. */
int dist_check_same(Dist *d, uint64_t fingerprint, const char *what, char *err, size_t errlen);
/* A fingerprint of the bytes (FNV-1a over 64-bit words, cheap and exact). */
uint64_t dist_fingerprint(const void *p, size_t bytes);

/* The slice [lo, hi) of n elements that rank r of `size` owns (ZeRO-1,
   reduce-scatter): contiguous, in rank order, sizes differing by at most 1. */
void dist_slice(int64_t n, int r, int size, int64_t *lo, int64_t *hi);

/* ---- internal: the MPI layer (dist_mpi.c) for dist_nccl.c's bootstrap and mock */

/* The sum over ranks of x[0..n) (float, summed in double in rank order),
   times `scale`, in place on every rank. */
int dist_mpi_sum_floats(Dist *d, float *x, int64_t n, double scale, char *err, size_t errlen);
/* Releases the NCCL communicator (dist_finalize calls it). */
void dist_nccl_free(Dist *d);

#endif
