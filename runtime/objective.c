/* objective.c: the objectives' inputs, batches and metrics (objective.h). */
#include "objective.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "checkpoint.h"
#include "rng.h"
#include "util.h"

static const char *const OBJ_NAMES[] = {"lm", "mlm", "table"};

/* the masks' own seed: not the windows' draw (seed, stream, row) */
#define OBJ_MLM_SALT 0x6D6C6D2D6D61736BULL

const char *objective_name(ObjKind k) { return OBJ_NAMES[k]; }

int objective_parse(const char *name, ObjKind *k, char *err, size_t errlen)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, OBJ_NAMES[i])) {
            *k = (ObjKind)i;
            return 0;
        }
    set_err(err, errlen, "--objective %s: must be lm, mlm or table", name);
    return -1;
}

ObjKind objective_default(const char *data_path)
{
    size_t n = data_path ? strlen(data_path) : 0;
    return n >= 4 && !strcasecmp(data_path + n - 4, ".csv") ? OBJ_TABLE : OBJ_LM;
}

void objective_free(Objective *o)
{
    free(o->x);
    free(o->y);
    free(o->real);
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------ lm, mlm */

int objective_open_tokens(Objective *o, Model *m, ObjKind kind, int tok_vocab, double mask_prob, FILE *warn,
                          char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->m = m;
    o->score = o->pred = o->target = -1;
    if (lm_find_io(m, &o->io, err, errlen)) return -1;
    o->batch = o->io.batch;
    o->tok_vocab = tok_vocab;
    o->mask_prob = mask_prob;
    o->mask_id = kind == OBJ_MLM ? tok_vocab : -1;
    if (kind == OBJ_MLM) {
        int64_t heads = graph_vocab(&m->g, o->io.targets); /* the classes cross_entropy scores */
        if (o->io.vocab >= 0 && o->io.vocab < (int64_t)tok_vocab + 1) {
            set_err(err, errlen, "%s: --objective mlm masks with id %d, one past the tokenizer's vocabulary: the "
                    "embedding must hold vocab + 1 = %d ids, it holds %lld (--set vocab_size=%d)", m->path,
                    tok_vocab, tok_vocab + 1, (long long)o->io.vocab, tok_vocab + 1);
            return -1;
        }
        if (heads >= 0 && heads < tok_vocab) {
            set_err(err, errlen, "%s: the loss scores %lld classes, fewer than the tokenizer's %d tokens", m->path,
                    (long long)heads, tok_vocab);
            return -1;
        }
    }
    int causal = -1; /* of the first attention: 1 causal, 0 not */
    for (int i = 0; i < m->g.n_forward && causal < 0; i++)
        if (m->g.nodes[i].op == OP_ATTENTION) causal = m->g.nodes[i].a.causal != 0;
    if (warn && kind == OBJ_LM && causal == 0)
        fprintf(warn, "kanrun: warning: %s: its attention is not causal (causal = false) and --objective lm "
                "predicts the next token: each position sees the token it must predict\n", m->path);
    if (warn && kind == OBJ_MLM && causal == 1)
        fprintf(warn, "kanrun: warning: %s: its attention is causal and --objective mlm predicts masked tokens "
                "from both sides: a position sees no right context (give attention(..., causal = false))\n",
                m->path);
    size_t n = (size_t)(o->io.batch * o->io.block);
    o->x = xmalloc(n * 4);
    o->y = xmalloc(n * 4);
    return 0;
}

int objective_set_corpus(Objective *o, const Corpus *c, char *err, size_t errlen)
{
    o->corpus = c;
    return corpus_check_batch(c, (int)o->io.block, (int)o->io.batch, err, errlen);
}

void objective_mlm_mask(int32_t *x, int32_t *y, int64_t rows, int64_t block, int64_t first_row, double p,
                        int32_t mask_id, int32_t vocab, uint64_t seed, uint64_t stream)
{
    uint64_t ms = kanc_mix64(seed ^ OBJ_MLM_SALT);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t t = 0; t < block; t++) {
            size_t k = (size_t)(r * block + t);
            uint64_t at = (uint64_t)((first_row + r) * block + t);
            uint64_t bits = kanc_rng_bits(ms, stream, at);
            double u = (double)(bits >> 40) * (1.0 / 16777216.0);      /* top 24 bits: chosen? */
            double v = (double)((bits >> 8) & 0xFFFFFFFFu) * (1.0 / 4294967296.0); /* the next 32: how */
            if (u >= p) {
                y[k] = -1;
                continue;
            }
            y[k] = x[k];
            if (v < 0.8) x[k] = mask_id;
            else if (v < 0.9) {
                uint64_t rb = kanc_rng_bits(ms, stream ^ (1ULL << 63), at);
                x[k] = (int32_t)(((unsigned __int128)rb * (uint64_t)vocab) >> 64);
            }
        }
}

/* the window batch of `stream` (training: the step, rows from first_row; validation), masked for mlm */
static int token_batch(Objective *o, uint64_t seed, uint64_t stream, int64_t first_row, int eval, char *err,
                       size_t errlen)
{
    const Corpus *c = o->corpus;
    const int32_t *tokens = eval ? c->val : c->train;
    size_t n = eval ? c->n_val : c->n_train;
    int block = (int)o->io.block, batch = (int)o->io.batch;
    if (eval) corpus_eval_batch(tokens, n, block, batch, seed, stream - CORPUS_EVAL_STREAM, o->x, o->y);
    else corpus_batch_rows(tokens, n, block, first_row, batch, seed, stream, o->x, o->y);
    if (o->kind == OBJ_MLM)
        objective_mlm_mask(o->x, o->y, batch, block, first_row, o->mask_prob, o->mask_id, o->tok_vocab, seed,
                           stream);
    if (model_set_tokens(o->m, o->io.idx, o->x, err, errlen) || model_set_tokens(o->m, o->io.targets, o->y, err, errlen))
        return -1;
    return 0;
}

/* ------------------------------------------------------------ table */

int objective_load_tables(const char *data_path, const char *val_path, Table *train, Table *val, char *err,
                          size_t errlen)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (val_path) {
        if (table_read(data_path, train, err, errlen)) return -1;
        if (table_read(val_path, val, err, errlen)) {
            table_free(train);
            return -1;
        }
        int same = val->ncols == train->ncols;
        for (int i = 0; same && i < val->ncols; i++) same = !strcmp(val->names[i], train->names[i]);
        if (!same) {
            set_err(err, errlen, "%s:1: its header differs from %s's: the validation table needs the same columns",
                    val_path, data_path);
            table_free(train);
            table_free(val);
            return -1;
        }
        return 0;
    }
    Table all;
    if (table_read(data_path, &all, err, errlen)) return -1;
    int rc = table_split(&all, train, val, err, errlen);
    table_free(&all);
    return rc;
}

/* the table column names an input reads: "x" for width 1, else "x0".."x{n-1}" */
static void column_name(const char *input, int64_t width, int64_t j, char *buf, size_t n)
{
    if (width == 1) snprintf(buf, n, "%s", input);
    else snprintf(buf, n, "%s%lld", input, (long long)j);
}

/* the forward node scoring a prediction against a table input: mse or cross_entropy */
static int find_score(const Model *m)
{
    for (int i = 0; i < m->g.n_forward; i++) {
        const GNode *e = &m->g.nodes[i];
        if ((e->op == OP_MSE || e->op == OP_CROSS_ENTROPY) && m->g.nodes[e->in[1]].op == OP_INPUT) return i;
    }
    return -1;
}

static int is_output(const Model *m, int node)
{
    for (int i = 0; i < m->g.n_outputs; i++)
        if (m->g.outputs[i] == node) return 1;
    return 0;
}

/* objective_open_table, or (predict) objective_open_rows: the target's columns
   may be absent (*has_target 0) and columns no input reads are allowed */
static int open_table(Objective *o, Model *m, const Table *train, const Table *val, int predict, int *has_target,
                      char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->kind = OBJ_TABLE;
    o->m = m;
    o->train = train;
    o->val = val;
    o->batch = -1;
    int *used = xcalloc((size_t)train->ncols + 1, sizeof *used);
    int rc = -1, score = find_score(m), target = score >= 0 ? m->g.nodes[score].in[1] : -1;
    if (has_target) *has_target = 1;
    for (int i = 0; i < m->g.n; i++) {
        const GNode *n = &m->g.nodes[i];
        if (n->op != OP_INPUT) continue;
        if (o->n_in == OBJ_MAX_INPUTS) {
            set_err(err, errlen, "%s: more than %d inputs", m->path, OBJ_MAX_INPUTS);
            goto out;
        }
        ObjColumns *c = &o->in[o->n_in++];
        c->node = i;
        c->tokens = n->dtype == DT_I32;
        int ok = c->tokens ? n->shape.nd == 1 : n->shape.nd == 2;
        if (!ok) {
            char s[96];
            set_err(err, errlen, "%s: input '%s' has shape %s: a table feeds %s", m->path, n->name,
                    shape_str(&n->shape, s, sizeof s),
                    c->tokens ? "tokens[batch] (one class id per row)" : "real[batch, n] (n columns per row)");
            goto out;
        }
        if (o->batch < 0) o->batch = n->shape.d[0];
        if (n->shape.d[0] != o->batch) {
            set_err(err, errlen, "%s: input '%s' has %lld rows, another input %lld: every input needs [batch, ...]",
                    m->path, n->name, (long long)n->shape.d[0], (long long)o->batch);
            goto out;
        }
        c->width = c->tokens ? 1 : n->shape.d[1];
        if (c->width > (int64_t)(sizeof c->cols / sizeof c->cols[0])) {
            set_err(err, errlen, "%s: input '%s' reads %lld columns, more than %d", m->path, n->name,
                    (long long)c->width, (int)(sizeof c->cols / sizeof c->cols[0]));
            goto out;
        }
        int absent = predict && i == target; /* predict: the target's columns, none of them in the table */
        for (int64_t j = 0; j < c->width; j++) {
            char name[256];
            column_name(n->name, c->width, j, name, sizeof name);
            if ((c->cols[j] = table_column(train, name)) >= 0) absent = 0;
        }
        for (int64_t j = 0; j < c->width && !absent; j++) {
            char name[256];
            column_name(n->name, c->width, j, name, sizeof name);
            if (c->cols[j] < 0) {
                char want[300];
                if (c->width == 1) snprintf(want, sizeof want, "a column '%s'", n->name);
                else snprintf(want, sizeof want, "columns %s0..%s%lld", n->name, n->name, (long long)c->width - 1);
                set_err(err, errlen, "%s:1: no column '%s': the model's input %s: %s[batch%s] reads %s", train->path,
                        name, n->name, c->tokens ? "tokens" : "real", c->tokens ? "" : ", n", want);
                goto out;
            }
            used[c->cols[j]] = 1;
        }
        if (absent) { /* the rows' targets are unknown: zeros feed the loss, which nobody reads */
            *has_target = 0;
            continue;
        }
        if (c->tokens) { /* class ids: integers in [0, classes) */
            c->classes = graph_vocab(&m->g, i);
            const Table *ts[2] = {train, val};
            for (int k = 0; k < 2; k++)
                for (size_t r = 0; r < ts[k]->nrows; r++) {
                    double v = ts[k]->v[r * (size_t)ts[k]->ncols + (size_t)c->cols[0]];
                    if (v != floor(v) || v < 0 || (c->classes >= 0 && v >= (double)c->classes) || v > INT32_MAX) {
                        char lim[64] = "";
                        if (c->classes >= 0) snprintf(lim, sizeof lim, " (0..%lld)", (long long)c->classes - 1);
                        set_err(err, errlen, "%s:%d: column '%s': %g is not a class id of the model%s", ts[k]->path,
                                ts[k]->line[r], n->name, v, lim);
                        goto out;
                    }
                }
        }
    }
    if (!o->n_in) {
        set_err(err, errlen, "%s: the model has no inputs for the table's columns", m->path);
        goto out;
    }
    for (int j = 0; j < train->ncols && !predict; j++)
        if (!used[j]) {
            set_err(err, errlen, "%s:1: column '%s' is no input of %s (a real[batch, n] input x reads x when n = 1, "
                    "else x0..x{n-1}; a tokens[batch] input y reads y)", train->path, train->names[j], m->path);
            goto out;
        }
    if (m->g.loss < 0) {
        set_err(err, errlen, "%s: the model returns no scalar 'loss' to train", m->path);
        goto out;
    }
    if ((o->score = score) < 0) {
        set_err(err, errlen, "%s: no mse(pred, target) or cross_entropy(logits, target) scores a table input",
                m->path);
        goto out;
    }
    o->pred = m->g.nodes[o->score].in[0];
    o->target = m->g.nodes[o->score].in[1];
    if (!is_output(m, o->pred)) {
        set_err(err, errlen, "%s: return the prediction %s scores (%s) besides the loss: validation scores it row "
                "by row", m->path, op_name(m->g.nodes[o->score].op),
                m->g.nodes[o->score].op == OP_MSE ? "return pred, loss" : "return logits, loss");
        goto out;
    }
    size_t most = 0;
    for (int k = 0; k < o->n_in; k++) {
        size_t e = (size_t)(o->batch * o->in[k].width);
        if (e > most) most = e;
    }
    o->x = xmalloc(most * 4 + 4);
    o->real = xmalloc(most * m->plan.real_size + 8);
    rc = 0;
out:
    free(used);
    return rc;
}

int objective_open_table(Objective *o, Model *m, const Table *train, const Table *val, char *err, size_t errlen)
{
    return open_table(o, m, train, val, 0, NULL, err, errlen);
}

int objective_open_rows(Objective *o, Model *m, const Table *rows, int *has_target, char *err, size_t errlen)
{
    return open_table(o, m, rows, rows, 1, has_target, err, errlen);
}

/* Sets every input from rows[0..batch) of t. */
static int table_batch(Objective *o, const Table *t, const size_t *rows, char *err, size_t errlen)
{
    Model *m = o->m;
    for (int k = 0; k < o->n_in; k++) {
        const ObjColumns *c = &o->in[k];
        for (int64_t b = 0; b < o->batch; b++) {
            const double *row = t->v + rows[b] * (size_t)t->ncols;
            for (int64_t j = 0; j < c->width; j++) {
                size_t e = (size_t)(b * c->width + j);
                double v = c->cols[j] >= 0 ? row[c->cols[j]] : 0; /* an absent target (predict) */
                if (c->tokens) o->x[e] = (int32_t)v;
                else if (m->plan.real_size == 8) ((double *)o->real)[e] = v;
                else ((float *)o->real)[e] = (float)v;
            }
        }
        if (c->tokens) {
            if (model_set_tokens(m, c->node, o->x, err, errlen)) return -1;
        } else {
            m->dev->ops->write_value(m->dev, c->node, o->real);
        }
    }
    return 0;
}

/* ------------------------------------------------------------ both */

int objective_train_batch(Objective *o, uint64_t seed, uint64_t step, int64_t first_row, char *err, size_t errlen)
{
    if (o->kind != OBJ_TABLE) return token_batch(o, seed, step, first_row, 0, err, errlen);
    size_t *rows = xmalloc((size_t)o->batch * sizeof *rows);
    for (int64_t b = 0; b < o->batch; b++) { /* uniform in [0, nrows), as corpus_batch draws a window */
        uint64_t r = kanc_rng_bits(seed, step, (uint64_t)(first_row + b));
        rows[b] = (size_t)(((unsigned __int128)r * o->train->nrows) >> 64);
    }
    int rc = table_batch(o, o->train, rows, err, errlen);
    free(rows);
    return rc;
}

int objective_eval_batch(Objective *o, uint64_t seed, int64_t j, char *err, size_t errlen)
{
    if (o->kind != OBJ_TABLE) return token_batch(o, seed, CORPUS_EVAL_STREAM + (uint64_t)j, 0, 1, err, errlen);
    size_t *rows = xmalloc((size_t)o->batch * sizeof *rows);
    for (int64_t b = 0; b < o->batch; b++) rows[b] = ((size_t)j * (size_t)o->batch + (size_t)b) % o->val->nrows;
    int rc = table_batch(o, o->val, rows, err, errlen);
    free(rows);
    return rc;
}

/* the probe's pieces of a forward pass, then the rest of it */
static void forward(Objective *o, KanProbe *probe, double *frac, double *out_of_grid, double weight)
{
    int from = 0;
    if (probe) {
        from = kan_probe_collect(probe, o->m);
        kan_probe_out_of_grid_all(probe, o->m, frac);
        for (int i = 0; i < probe->n; i++) out_of_grid[i] += frac[i] * weight;
    }
    o->m->dev->ops->run(o->m->dev, from, o->m->g.n_forward);
}

/* rows of table batch j (j * batch ..; past the end, row 0: padding) into
   rows[batch]; sets the inputs from them; *real the rows that are the table's */
static int table_rows_batch(Objective *o, const Table *t, size_t j, size_t *rows, int64_t *real, char *err,
                            size_t errlen)
{
    *real = 0;
    for (int64_t b = 0; b < o->batch; b++) {
        size_t r = j * (size_t)o->batch + (size_t)b;
        rows[b] = r < t->nrows ? r : 0;
        *real += r < t->nrows;
    }
    return table_batch(o, t, rows, err, errlen);
}

/* table: every validation row once, in batches (the last one padded with row 0, not scored) */
static int table_evaluate(Objective *o, KanProbe *probe, double *frac, double *out_of_grid, ObjMetrics *mt,
                          char *err, size_t errlen)
{
    Model *m = o->m;
    const Table *t = o->val;
    int mse = m->g.nodes[o->score].op == OP_MSE;
    const GShape *ps = &m->g.nodes[o->pred].shape;
    int64_t per_row = shape_numel(ps) / o->batch, V = mse ? 1 : shape_last(ps);
    double *pred = xmalloc((size_t)shape_numel(ps) * sizeof *pred);
    const ObjColumns *tc = NULL; /* the target's columns: its values are the table's */
    for (int k = 0; k < o->n_in; k++)
        if (o->in[k].node == o->target) tc = &o->in[k];
    if (!tc) die("objective: the scored target is no table input");
    size_t *rows = xmalloc((size_t)o->batch * sizeof *rows);
    size_t nb = (t->nrows + (size_t)o->batch - 1) / (size_t)o->batch;
    double sum = 0, correct = 0;
    int rc = 0;
    for (size_t j = 0; j < nb && !rc; j++) {
        int64_t real_rows;
        if (table_rows_batch(o, t, j, rows, &real_rows, err, errlen)) {
            rc = -1;
            break;
        }
        forward(o, probe, frac, out_of_grid, (double)real_rows / (double)t->nrows);
        model_read_value(m, o->pred, pred);
        for (int64_t b = 0; b < real_rows; b++) {
            const double *p = pred + b * per_row, *row = t->v + rows[b] * (size_t)t->ncols;
            if (mse) { /* pred and target have one shape: per_row elements per row */
                for (int64_t e = 0; e < per_row; e++) {
                    double d = p[e] - row[tc->cols[e]];
                    sum += d * d / (double)per_row;
                }
                continue;
            }
            int64_t y = (int64_t)row[tc->cols[0]], best = 0;
            double mx = p[0];
            for (int64_t v = 1; v < V; v++)
                if (p[v] > mx) mx = p[v], best = v;
            double s = 0;
            for (int64_t v = 0; v < V; v++) s += exp(p[v] - mx);
            sum += mx + log(s) - p[y];
            correct += best == y;
        }
    }
    if (!rc) {
        mt->rows = (int64_t)t->nrows;
        mt->loss = sum / (double)t->nrows;
        mt->rmse = mse ? sqrt(mt->loss) : NAN;
        mt->accuracy = mse ? NAN : correct / (double)t->nrows;
        if (!isfinite(mt->loss)) {
            set_err(err, errlen, "the validation %s is %s: the weights are broken", mse ? "MSE" : "loss",
                    isnan(mt->loss) ? "NaN" : "infinite");
            rc = -1;
        }
    }
    free(pred);
    free(rows);
    return rc;
}

int64_t objective_pred_width(const Objective *o)
{
    return shape_numel(&o->m->g.nodes[o->pred].shape) / o->batch;
}

int objective_predict(Objective *o, double *pred, char *err, size_t errlen)
{
    Model *m = o->m;
    const Table *t = o->val;
    int64_t w = objective_pred_width(o);
    double *p = xmalloc((size_t)(o->batch * w) * sizeof *p);
    size_t *rows = xmalloc((size_t)o->batch * sizeof *rows);
    int training = m->dev->training, rc = 0;
    m->dev->training = 0;
    for (size_t j = 0; j * (size_t)o->batch < t->nrows && !rc; j++) {
        int64_t real;
        if (table_rows_batch(o, t, j, rows, &real, err, errlen)) {
            rc = -1;
            break;
        }
        forward(o, NULL, NULL, NULL, 0);
        model_read_value(m, o->pred, p);
        memcpy(pred + j * (size_t)o->batch * (size_t)w, p, (size_t)(real * w) * sizeof *p);
    }
    m->dev->training = training;
    free(p);
    free(rows);
    return rc;
}

int objective_evaluate(Objective *o, uint64_t seed, int64_t batches, KanProbe *probe, double *out_of_grid,
                       ObjMetrics *mt, char *err, size_t errlen)
{
    Model *m = o->m;
    double *frac = probe ? xcalloc((size_t)probe->n + 1, sizeof *frac) : NULL;
    if (probe)
        for (int i = 0; i < probe->n; i++) out_of_grid[i] = 0;
    memset(mt, 0, sizeof *mt);
    mt->rmse = mt->accuracy = NAN;
    int training = m->dev->training, rc = 0;
    m->dev->training = 0;
    if (o->kind == OBJ_TABLE) {
        rc = table_evaluate(o, probe, frac, out_of_grid, mt, err, errlen);
    } else {
        double sum = 0;
        for (int64_t j = 0; j < batches && !rc; j++) {
            if (token_batch(o, seed, CORPUS_EVAL_STREAM + (uint64_t)j, 0, 1, err, errlen)) {
                rc = -1;
                break;
            }
            forward(o, probe, frac, out_of_grid, 1.0 / (double)batches);
            double l;
            model_read_value(m, m->g.loss, &l);
            if (!isfinite(l)) {
                set_err(err, errlen, "the validation loss of batch %lld is %s: the weights are broken",
                        (long long)j, isnan(l) ? "NaN" : "infinite");
                rc = -1;
            }
            sum += l;
        }
        mt->loss = sum / (double)(batches > 0 ? batches : 1);
    }
    m->dev->training = training;
    free(frac);
    return rc;
}

void objective_metrics_text(const Objective *o, const ObjMetrics *mt, char *log, size_t loglen, char *json,
                            size_t jsonlen)
{
    if (o->kind != OBJ_TABLE) {
        snprintf(log, loglen, " | val loss %.4f | perplexity %.2f", mt->loss, exp(mt->loss));
        snprintf(json, jsonlen, "\"val_loss\":%.6f", mt->loss);
    } else if (!isnan(mt->rmse)) {
        snprintf(log, loglen, " | val mse %.6f | rmse %.6f (%lld rows)", mt->loss, mt->rmse, (long long)mt->rows);
        snprintf(json, jsonlen, "\"val_loss\":%.6f,\"val_mse\":%.6f,\"val_rmse\":%.6f", mt->loss, mt->loss, mt->rmse);
    } else {
        snprintf(log, loglen, " | val loss %.4f | accuracy %.4f (%lld rows)", mt->loss, mt->accuracy,
                 (long long)mt->rows);
        snprintf(json, jsonlen, "\"val_loss\":%.6f,\"val_accuracy\":%.6f", mt->loss, mt->accuracy);
    }
}

int objective_recorded(const char *run_dir, int64_t step, ObjRecord *r, char *err, size_t errlen)
{
    r->kind = OBJ_LM;
    r->mask_prob = OBJ_DEFAULT_MASK_PROB;
    r->mask_id = -1;
    char *path = ckpt_optimizer_path(run_dir, step);
    StFile f;
    int rc = -1;
    if (access(path, F_OK) != 0) { /* a weights file with no training state beside it records nothing */
        rc = 0;
        goto out;
    }
    if (st_open(&f, path, err, errlen)) goto out;
    const char *text = st_meta(&f, "kanc_train");
    cJSON *state = text ? cJSON_Parse(text) : NULL;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(state, "objective");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(state, "mask_prob");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(state, "mask_id");
    rc = 0;
    if (k && (!cJSON_IsString(k) || objective_parse(k->valuestring, &r->kind, err, errlen))) {
        set_err(err, errlen, "%s: kanc_train's objective must be \"lm\", \"mlm\" or \"table\"", path);
        rc = -1;
    } else if (p && (!cJSON_IsNumber(p) || !(p->valuedouble > 0 && p->valuedouble <= 1))) {
        set_err(err, errlen, "%s: kanc_train's mask_prob must be a number in (0, 1]", path);
        rc = -1;
    } else if (id && (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX)) {
        set_err(err, errlen, "%s: kanc_train's mask_id must be a token id", path);
        rc = -1;
    } else {
        if (p) r->mask_prob = p->valuedouble;
        if (id) r->mask_id = (int64_t)id->valuedouble;
    }
    cJSON_Delete(state);
    st_close(&f);
out:
    free(path);
    return rc;
}
