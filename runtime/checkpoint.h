/* checkpoint.h: a training run's state on disk, crash-safe.
 *
 * A checkpoint directory holds
 *   model.safetensors            parameters and buffers under their state_dict
 *                                names (F32); __metadata__: format "pt", the
 *                                model source, the resolved hyperparameters,
 *                                the tokenizer and the step;
 *   optimizer-<step>.safetensors AdamW moments "m.<name>", "v.<name>" (F32);
 *                                __metadata__: the step and the training state
 *                                (seed, schedule, flags) as JSON.
 * Each file is replaced atomically (temporary file, fsync, rename). The
 * optimizer file of the new step is written first and the previous one is
 * removed only after model.safetensors names the new step, so a crash at any
 * moment leaves a model file and the optimizer file of its own step.
 */
#ifndef KANC_CHECKPOINT_H
#define KANC_CHECKPOINT_H

#include <cjson/cJSON.h>

#include "config.h"
#include "model.h"

/* What a checkpoint says about itself (read without building the model). */
typedef struct {
    char *source;     /* the .kdl text */
    char *model_path; /* where it came from (informational) */
    cJSON *config;    /* resolved hyperparameters */
    char *tokenizer;  /* tokenizer spec */
    int64_t step;
} CkptInfo;

/* Writes dir/model.safetensors and dir/optimizer-<step>.safetensors (the
   latter only with train_state != NULL). Returns 0, or -1 with a message. */
int ckpt_save(const char *dir, Model *m, const char *tokenizer, const cJSON *train_state,
              char *err, size_t errlen);

/* Reads dir/model.safetensors's metadata (dir may also be the file itself). */
int ckpt_info(const char *dir, CkptInfo *info, char *err, size_t errlen);
void ckpt_info_free(CkptInfo *info);

/* Loads parameters and buffers into a compiled model; with train_state !=
   NULL also the moments and the step from the optimizer file of the model's
   step, and *train_state receives its JSON (caller frees). */
int ckpt_load(const char *dir, Model *m, cJSON **train_state, char *err, size_t errlen);

/* "dir/optimizer-<step>.safetensors" (caller frees) */
char *ckpt_optimizer_path(const char *dir, int64_t step);

/* The KdlSet overrides that rebuild the checkpoint's model (config, soft=0). */
void ckpt_sets(const CkptInfo *info, ConfigSets *cs);

#endif
