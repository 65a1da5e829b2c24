/* lm.h: a language model's token inputs, and its loss over fixed validation batches.
 *
 * kanrun's text commands (train, eval, sample, forward, inspect, regrid) run
 * models that take `idx: tokens[batch, block_size]` and `targets` of the same
 * shape and return a scalar `loss`; this is the one place that finds those
 * nodes. The batches, masks and metrics of the objectives (next-token, masked
 * LM, tables) are objective.h's.
 */
#ifndef KANC_LM_H
#define KANC_LM_H

#include <stddef.h>
#include <stdint.h>

#include "corpus.h"
#include "kan_probe.h"
#include "model.h"

typedef struct {
    int idx, targets;              /* input nodes */
    int64_t batch, block, vocab;   /* vocab: read by the embedding (-1: unknown) */
} LmIo;

/* Finds idx, targets and loss. Returns 0, or -1 with a message naming the model. */
int lm_find_io(Model *m, LmIo *io, char *err, size_t errlen);

/* The next-token objective's evaluation (objective_evaluate with OBJ_LM; io is
   found again from m): the mean loss over validation batches 0..batches-1 (corpus_eval_batch with
   seed), without dropout. With `probe` (kan_probe_init'ed for m) non-NULL, also
   each KAN layer's fraction of inputs outside its grid over those batches, into
   out_of_grid[probe->n]. Returns 0, or -1 with a message (a token outside the
   vocabulary, a non-finite loss). */
int lm_evaluate(Model *m, const LmIo *io, const Corpus *c, uint64_t seed, int64_t batches,
                KanProbe *probe, double *out_of_grid, double *loss, char *err, size_t errlen);

#endif
