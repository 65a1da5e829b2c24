/* weights.h: the model a reading command runs (eval, sample, forward).
 *
 * Either a kanc checkpoint, RUN or RUN/model.safetensors, whose metadata
 * holds the model's source, hyperparameters and tokenizer; or MODEL.kdl
 * (with --set / --preset) and any safetensors file holding that model's
 * state_dict by name (state_dict.h: a PyTorch export, or another model's
 * checkpoint of the same architecture), whose tokenizer is --tokenizer.
 */
#ifndef KANC_WEIGHTS_H
#define KANC_WEIGHTS_H

#include <stddef.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "config.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    const char *weights;   /* the checkpoint, or (with model) the state_dict file */
    const char *model;     /* MODEL.kdl; NULL: weights is a kanc checkpoint */
    const char *tokenizer; /* with model: the tokenizer spec (NULL: bytes) */
    ConfigSets sets;       /* with model: --set and --preset, in order */
} WeightsArgs;

/* The flags WeightsArgs takes: --model, --tokenizer, --set, --preset (the
   last two are CLI_CALL handlers: the command's CliSpec.ctx must be
   &w->sets). Writes WEIGHTS_NOPTS entries to out. */
#define WEIGHTS_NOPTS 4
void weights_opts(WeightsArgs *w, CliOpt *out);

/* Compiles the model for MODEL_FORWARD on device, with `batch` (NULL: the
   model's) and loads its weights. A checkpoint: rebuilt from its metadata,
   ckpt_load; info is its ckpt_info. With w->model: built from MODEL.kdl with
   w->sets (the vocabulary follows the tokenizer unless --set, as in kanrun
   train), loaded by sd_load; info names the model, the file and the
   tokenizer, step 0, no fingerprint. With tok non-NULL the tokenizer is
   opened and checked against the model's vocabulary (ckpt_check_tokenizer).
   --set, --preset or --tokenizer without --model are an error: a checkpoint
   carries its own. Returns 0, or -1 with the message in err (the compiler's
   diagnostics already on stderr); info and *tok are then released. */
int weights_open(const WeightsArgs *w, const char *batch, const char *device, const char *prog,
                 Model *m, CkptInfo *info, Tokenizer **tok, char *err, size_t errlen);

#endif
