/* state_dict.h: a model's weights from any safetensors file holding its
 * PyTorch state_dict by name.
 *
 * The file may come from PyTorch (`safetensors.torch.save_file(
 * model.state_dict(), path)` on the reference kanref.GPT, minGPT or the
 * Kansformers code) or be a kanc checkpoint's model.safetensors. Every
 * parameter and buffer of the model (KAN knot grids included) must be in the
 * file under its state_dict name with its exact shape, and the file must hold
 * nothing else, except minGPT's causal-mask buffers (names ending in
 * `attn.bias`), which are ignored: the model derives its masks from
 * block_size. F32, F64, F16 and BF16 tensors are converted to the model's
 * storage; integer dtypes are refused, except for integer KAN grids
 * (ChebyKAN's arange, kan_grid_is_i64), which must be I64: what PyTorch and
 * kanc's checkpoints write. The values are checked as a
 * checkpoint's are (model_check_values: finite, bounded, increasing grids).
 *
 * A mismatch is reported whole: the error lists every missing name, every
 * extra name, every shape and every dtype the model cannot take, one per
 * line, after a line with their counts.
 */
#ifndef KANC_STATE_DICT_H
#define KANC_STATE_DICT_H

#include <stddef.h>

#include "model.h"

/* Loads path's tensors into m's parameters and buffers (the masks keep their
   derived values). Returns 0, or -1 with the message in err (truncated to
   errlen, with "..." at the end when it did not fit); m is unchanged then. */
int sd_load(Model *m, const char *path, char *err, size_t errlen);

/* 1 when name is a causal-mask buffer of minGPT's attention (ends in
   "attn.bias"), which sd_load ignores */
int sd_is_mask_name(const char *name);

#endif
