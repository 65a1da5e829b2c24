/* train.h: kanrun train / eval / bench: the training loop and its measurements. */
#ifndef KANC_TRAIN_H
#define KANC_TRAIN_H

#include <stdint.h>

#include "config.h"

/* Flags of `kanrun train`. Unset values (NULL, -1, NAN) are taken from the
   checkpoint when resuming, else from the defaults in train.c. */
typedef struct {
    const char *model, *data, *val, *tokenizer, *out, *resume, *device;
    const char *init_from; /* --init-from: a state_dict file (state_dict.h) for a new run */
    const char *objective; /* --objective lm, mlm, table (objective.h); default from --data */
    double mask_prob;      /* --mask-prob: mlm's share of masked positions */
    const char *precision; /* --precision fp32|bf16 on a CUDA device (sets KANC_PRECISION; NULL: its default) */
    int64_t batch, steps, warmup, eval_every, eval_batches, save_every, log_every;
    double lr, min_lr, weight_decay, clip;
    /* grid update (kan_grid.h) every N steps before step `until` (0: the whole run) */
    int64_t grid_update_every, grid_update_until;
    double grid_margin, grid_eps;
    const char *grid_mode;
    int64_t seed;
    int64_t threads;
    /* data parallel (runtime/dist): the weights' fingerprint compared across the
       ranks every N steps (0: never), ZeRO stage (0, 1), the longest wait in a collective */
    int64_t check_every, zero;
    double dist_timeout;
    int quiet;         /* no per-step lines (tests) */
    int force;         /* --force: move a run already in --out aside */
    double peak_tflops; /* --peak-tflops: the MFU's peak (0: the GPU table, else none) */
    int measure_peak;  /* --measure-peak: the CPU's sgemm before the first step */
    ConfigSets sets;   /* --set */
} TrainArgs;

void train_args_init(TrainArgs *a);
/* Parses the command line (after "train") into a. Returns 0, 1 when --help
   was printed, or -1 after printing what is wrong (cli_opts.h). */
int train_parse_args(TrainArgs *a, int argc, char **argv);

/* Runs the training. Returns the process exit status: 0 done, 1 error,
   3 diverged (a non-finite loss, a gradient too large for AdamW,
   weights no checkpoint may hold). */
int train_run(TrainArgs *a);

/* kanrun train ARGS: parses, runs, returns the exit status */
int train_main(int argc, char **argv);

/* the learning rate of step t (0-based): linear warmup, then cosine to min_lr */
double train_lr(int64_t t, int64_t steps, int64_t warmup, double lr, double min_lr);

/* threads for OpenMP and OpenBLAS (0: leave as is) */
void set_threads(int threads);

#endif
