/* train_dist.h: what kanrun train does differently as one rank of a data-parallel job
 * (mpirun -np N kanrun train ...; runtime/dist): the rank's settings, the
 * gradient path, the start and end lines, the weights' check. */
#ifndef KANC_TRAIN_DIST_H
#define KANC_TRAIN_DIST_H

#include "dist.h"
#include "dist_zero.h"
#include "model.h"
#include "train.h"

/* Before the model is built: ranks other than 0 print nothing on stdout (their
   errors still go to stderr); without --threads each rank takes its share of
   the machine's cores; a CUDA rank takes the GPU of its local rank
   ($KANC_CUDA_DEVICE, unless set); SIGTERM and SIGINT print which checkpoint
   stays before the rank ends. */
int train_dist_setup_rank(Dist *d, TrainArgs *a, char *err, size_t errlen);
/* What a rank says when the launcher stops it (SIGTERM, SIGINT): the
   checkpoint that stays, `kept` ("the last good checkpoint is ..."). */
void train_dist_note_checkpoint(const Dist *d, const char *kept);
/* Once the weights and moments are loaded: NCCL for a CUDA (or emu) device,
   ZeRO-1 with --zero 1. Without MPI, a note when --zero or --check-every is
   given (they need several ranks). */
int train_dist_setup_model(Dist *d, DistZero *z, const TrainArgs *a, Model *m, char *err, size_t errlen);
/* rank 0's lines: the ranks, the gradient path, the global batch, ZeRO's memory */
void train_dist_print_start(const Dist *d, const DistZero *z, const Model *m, int64_t batch, int64_t block);
/* rank 0's line: the time per step in the gradient collectives, and waiting
   for the slowest rank (the loss mean before them absorbs the wait) */
void train_dist_print_end(const Dist *d, int zero_active, double comm_s, double wait_s, int64_t steps);
/* Rank 0's outcome `code` (0: it went well; its value elsewhere is
   ignored) on every rank, once rank 0 has it: what the others wait for while
   rank 0 writes the token cache or a checkpoint, without --dist-timeout's
   bound. Returns the code, or -1 with a message. */
int train_dist_rank0_outcome(Dist *d, int code, char *err, size_t errlen);
/* every rank's weights have rank 0's fingerprint, or -1 with a message */
int train_dist_check_weights(Dist *d, Device *dev, char *err, size_t errlen);

#endif
