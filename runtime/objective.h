/* objective.h: what a model is trained and scored on: its inputs, its batches, its metrics.
 *
 * Three objectives (kanrun train --objective, recorded in the run's training
 * state so that eval and resume use the same):
 *
 *   lm     next-token language modelling (the default for text data): inputs
 *          `idx`, `targets` tokens[batch, block_size]; targets are idx shifted
 *          by one (corpus_batch).
 *   mlm    masked language modelling, BERT-style: idx and targets are the same
 *          window; each position is chosen with probability mask_prob, a chosen
 *          one becomes the mask id (80%), a random token (10%) or stays (10%);
 *          targets hold the original token at chosen positions and -1 (ignored
 *          by cross_entropy) elsewhere. The mask id is the tokenizer's vocabulary
 *          size (one past its last id), so the embedding needs vocab + 1 rows.
 *   table  rows of a CSV file (table.h; the default for --data FILE.csv). Every
 *          input of the model reads columns: `x: real[batch, n]` reads column
 *          `x` when n = 1, else columns `x0` .. `x{n-1}`; `y: tokens[batch]`
 *          reads one column `y` of integer class ids. A column no input reads
 *          is an error. The model returns the prediction its loss scores
 *          (mse(pred, y): pred; cross_entropy(logits, y): logits) besides the
 *          loss, so each validation row is scored: MSE and RMSE, or the mean
 *          cross-entropy and the accuracy (argmax of the logits).
 *
 * Batches are pure functions of (seed, step): a resumed run draws the same
 * ones, and rank r of a data-parallel job reads rows r * batch .. of the global
 * batch (corpus_batch_rows). Validation batches are fixed: the token objectives'
 * come from corpus_eval_batch (and, for mlm, masks drawn from the same stream),
 * a table's are all of its validation rows in order.
 */
#ifndef KANC_OBJECTIVE_H
#define KANC_OBJECTIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "corpus.h"
#include "kan_probe.h"
#include "lm.h"
#include "model.h"
#include "table.h"

typedef enum { OBJ_LM, OBJ_MLM, OBJ_TABLE } ObjKind;

#define OBJ_DEFAULT_MASK_PROB 0.15
#define OBJ_MAX_INPUTS 16

/* "lm", "mlm", "table" */
const char *objective_name(ObjKind k);
/* Returns 0, or -1 with a message naming the choices. */
int objective_parse(const char *name, ObjKind *k, char *err, size_t errlen);
/* The default for a --data path: table for a name ending in .csv, else lm. */
ObjKind objective_default(const char *data_path);

/* One model input fed from table columns. */
typedef struct {
    int node;
    int tokens;          /* 1: tokens[batch] (class ids), 0: real[batch, width] */
    int64_t width;
    int cols[64];        /* the table column of each element of a row */
    int64_t classes;     /* tokens: ids are in [0, classes) (-1: the model does not say) */
} ObjColumns;

typedef struct {
    ObjKind kind;
    Model *m;
    int64_t batch;       /* rows (sequences) per step on this process */
    /* lm, mlm */
    LmIo io;
    const Corpus *corpus;
    double mask_prob;
    int32_t mask_id, tok_vocab;
    /* table */
    const Table *train, *val;
    int n_in;
    ObjColumns in[OBJ_MAX_INPUTS];
    int score;           /* the OP_MSE or OP_CROSS_ENTROPY node scoring the prediction */
    int pred, target;    /* its inputs: the prediction (a model output) and the target input */
    /* scratch */
    int32_t *x, *y;
    void *real;
} Objective;

typedef struct {
    double loss;         /* lm, mlm: the model's mean loss; table: the mean MSE or cross-entropy per row */
    double rmse;         /* table with mse */
    double accuracy;     /* table with cross_entropy */
    int64_t rows;        /* table: validation rows scored */
} ObjMetrics;

/* lm or mlm: finds idx and targets (lm_find_io). tok_vocab: the tokenizer's
   vocabulary; mlm checks that the embedding holds tok_vocab + 1 ids (the
   mask id tok_vocab). Warns on `warn` (if non-NULL) when the attention does
   not fit the objective: causal = false for lm (each position sees the token
   it predicts), causal = true for mlm (a position sees no right context).
   Returns 0, or -1 with a message. */
int objective_open_tokens(Objective *o, Model *m, ObjKind kind, int tok_vocab, double mask_prob, FILE *warn,
                          char *err, size_t errlen);
/* lm or mlm: the corpus batches come from (kept by pointer); checks that it
   holds a window. */
int objective_set_corpus(Objective *o, const Corpus *c, char *err, size_t errlen);

/* table: maps the model's inputs onto columns of train (val has the same
   header), checks class ids. Both tables are kept by pointer. */
int objective_open_table(Objective *o, Model *m, const Table *train, const Table *val, char *err, size_t errlen);

/* table, for prediction (kanrun predict): maps the model's inputs onto the
   columns of rows (kept by pointer), where the scored target's columns may be
   absent (*has_target = 0; zeros stand in) and other columns are passed over. */
int objective_open_rows(Objective *o, Model *m, const Table *rows, int *has_target, char *err, size_t errlen);
/* The scored prediction's values per row (1 for a one-column mse, the number
   of classes for cross_entropy's logits). */
int64_t objective_pred_width(const Objective *o);
/* Every row of objective_open_rows's table through the model without dropout:
   pred[nrows * objective_pred_width] (the logits for cross_entropy). Returns
   0, or -1 with a message. */
int objective_predict(Objective *o, double *pred, char *err, size_t errlen);

/* Reads a table objective's data: data_path, and val_path or else the last
   10% of data's rows. Returns 0, or -1 with "file:line: ..." in err. */
int objective_load_tables(const char *data_path, const char *val_path, Table *train, Table *val, char *err,
                          size_t errlen);

void objective_free(Objective *o);

/* Sets the model's inputs to the training batch of `step`, rows first_row ..
   first_row + batch - 1 of the global batch. Returns 0, or -1 with a message. */
int objective_train_batch(Objective *o, uint64_t seed, uint64_t step, int64_t first_row, char *err, size_t errlen);

/* Sets the model's inputs to fixed validation batch j (what objective_evaluate
   scores; a table's batch j is its validation rows j * batch .., taken cyclically),
   for readers of a model's activations (kanrun inspect). Returns 0, or -1. */
int objective_eval_batch(Objective *o, uint64_t seed, int64_t j, char *err, size_t errlen);

/* Scores the fixed validation batches 0..batches-1 (tables: every validation
   row; `batches` is unused) without dropout. With `probe` (kan_probe_init'ed)
   non-NULL, also each KAN layer's fraction of inputs outside its grid, into
   out_of_grid[probe->n]. Returns 0, or -1 with a message (a non-finite loss). */
int objective_evaluate(Objective *o, uint64_t seed, int64_t batches, KanProbe *probe, double *out_of_grid,
                       ObjMetrics *mt, char *err, size_t errlen);

/* The metrics as train's eval line and eval print them (" | val loss 1.2345 |
   perplexity 3.44" for lm) and as metrics.jsonl fields ("\"val_loss\":1.234500"
   first, then the others, comma-separated, no comma after the last). */
void objective_metrics_text(const Objective *o, const ObjMetrics *mt, char *log, size_t loglen, char *json,
                            size_t jsonlen);

/* The BERT masking of mlm on rows [rows, block] of windows x (in place: x
   becomes the model's input) into targets y: position t of row r (global row
   first_row + r) is drawn from kanc_rng_bits of (seed mixed with a constant
   of its own, stream, (first_row + r) * block + t): chosen with probability p;
   of the chosen 80% become mask_id, 10% a token uniform in [0, vocab), 10% stay;
   y = the original token when chosen, else -1. stream: the step (training) or
   CORPUS_EVAL_STREAM + j (validation batch j). */
void objective_mlm_mask(int32_t *x, int32_t *y, int64_t rows, int64_t block, int64_t first_row, double p,
                        int32_t mask_id, int32_t vocab, uint64_t seed, uint64_t stream);

/* What a run recorded (its optimizer file's training state, "kanc_train"):
   the objective (lm when absent: runs from before objectives), mask_prob and
   mask_id (mlm). A folder without the optimizer file of `step` (weights
   alone) records nothing: lm, as before objectives. Returns 0, or -1 with a
   message naming the file (unreadable, or a recorded value out of range). */
typedef struct {
    ObjKind kind;
    double mask_prob;
    int64_t mask_id; /* -1 when not recorded */
} ObjRecord;
int objective_recorded(const char *run_dir, int64_t step, ObjRecord *r, char *err, size_t errlen);

#endif
