/* checkpoint.h: a training run's state on disk, crash-safe.
 *
 * A checkpoint directory holds
 *   model.safetensors            parameters and buffers under their state_dict
 *                                names (F32); __metadata__: format "pt", the
 *                                model source, the resolved hyperparameters,
 *                                the tokenizer, its fingerprint
 *                                (kanc_tokenizer_hash: tok_fingerprint_hex,
 *                                as in the token cache's tokens.json) and the
 *                                step;
 *   optimizer-<step>.safetensors AdamW moments "m.<name>", "v.<name>" (F32);
 *                                __metadata__: the step and the training state
 *                                (seed, schedule, flags) as JSON.
 * Each file is replaced atomically (temporary file, fsync, rename). The
 * optimizer file of the new step is written first and the previous one is
 * removed only after model.safetensors names the new step, so a crash at any
 * moment leaves a model file and the optimizer file of its own step.
 *
 * Reading checks every value: the metadata (kanc_step a plain integer >= 0,
 * the same in both files; kanc_config a JSON object of .kdl values; the
 * training state a JSON object), the tensors' exact shapes (and F32 for the
 * moments), and their values (model_check_values: finite, |x| <= 1.8e19,
 * increasing knot grids, second moments >= 0). Each error names the file and
 * the key or tensor.
 */
#ifndef KANC_CHECKPOINT_H
#define KANC_CHECKPOINT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "config.h"
#include "model.h"
#include "tokenizer.h"

/* What a checkpoint says about itself (read without building the model). */
typedef struct {
    char *source;     /* the .kdl text */
    char *model_path; /* where it came from (informational) */
    cJSON *config;    /* resolved hyperparameters */
    char *tokenizer;  /* tokenizer spec */
    char *tokenizer_hash; /* its fingerprint at training; NULL: an older checkpoint */
    char *file;       /* the model.safetensors read */
    int64_t step;
} CkptInfo;

/* Writes dir/model.safetensors and dir/optimizer-<step>.safetensors (the
   latter only with train_state != NULL); tok NULL: the bytes tokenizer.
   Returns 0, -1 with a message, or CKPT_REFUSED with a message and nothing
   written when a value is one ckpt_load would refuse (model_check_values: a
   diverged run). */
#define CKPT_REFUSED (-2)
int ckpt_save(const char *dir, Model *m, const Tokenizer *tok, const cJSON *train_state,
              char *err, size_t errlen);

/* Reads dir/model.safetensors's metadata (dir may also be the file itself). */
int ckpt_info(const char *dir, CkptInfo *info, char *err, size_t errlen);
void ckpt_info_free(CkptInfo *info);

/* Loads parameters and buffers into a compiled model; with train_state !=
   NULL also the moments and the step from the optimizer file of the model's
   step, and *train_state receives its JSON (caller frees). */
int ckpt_load(const char *dir, Model *m, cJSON **train_state, char *err, size_t errlen);

/* Compares the tokenizer opened for a checkpoint with the one it was trained
   with. The same fingerprint, or none stored (an older checkpoint): nothing to
   say. Another fingerprint (the files changed): when the tokenizer now has
   more ids than the model's vocabulary (model_vocab; -1: unknown), its ids
   could reach past the embedding, so it is an error naming the first such
   token and both fingerprints; else a warning on `warn` ("<prog>: warning:
   ..."), naming the spec and both fingerprints, as the ids may now stand for
   other text. Returns 0, or -1 with the message in err. */
int ckpt_check_tokenizer(const CkptInfo *info, const Tokenizer *tok, int64_t model_vocab,
                         const char *prog, FILE *warn, char *err, size_t errlen);

/* "dir/optimizer-<step>.safetensors" (caller frees) */
char *ckpt_optimizer_path(const char *dir, int64_t step);

/* The KdlSet overrides that rebuild the checkpoint's model (config, soft=0). */
void ckpt_sets(const CkptInfo *info, ConfigSets *cs);

#endif
