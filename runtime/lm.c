/* lm.c: token inputs and the validation loss of a language model. */
#include "lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

int lm_find_io(Model *m, LmIo *io, char *err, size_t errlen)
{
    io->idx = model_input(m, "idx");
    io->targets = model_input(m, "targets");
    if (io->idx < 0 || io->targets < 0 || m->g.loss < 0) {
        set_err(err, errlen, "%s: a language model for kanrun takes inputs 'idx' and 'targets' "
                             "(tokens[batch, block_size]) and returns 'loss'", m->path);
        return -1;
    }
    const GShape *s = &m->g.nodes[io->idx].shape;
    if (s->nd != 2 || !shape_eq(s, &m->g.nodes[io->targets].shape)) {
        set_err(err, errlen, "%s: 'idx' and 'targets' must both be tokens[batch, block_size]", m->path);
        return -1;
    }
    io->batch = s->d[0];
    io->block = s->d[1];
    io->vocab = graph_vocab(&m->g, io->idx);
    return 0;
}

int lm_evaluate(Model *m, const LmIo *io, const Corpus *c, uint64_t seed, int64_t batches,
                KanProbe *probe, double *out_of_grid, double *loss, char *err, size_t errlen)
{
    double *frac = probe ? xcalloc((size_t)probe->n + 1, sizeof *frac) : NULL;
    if (probe)
        for (int i = 0; i < probe->n; i++) out_of_grid[i] = 0;
    size_t n = (size_t)(io->batch * io->block);
    int32_t *x = xmalloc(n * 4), *y = xmalloc(n * 4);
    double sum = 0;
    int training = m->dev->training, rc = 0;
    m->dev->training = 0;
    for (int64_t j = 0; j < batches && !rc; j++) {
        corpus_eval_batch(c->val, c->n_val, (int)io->block, (int)io->batch, seed, (uint64_t)j, x, y);
        if (model_set_tokens(m, io->idx, x, err, errlen) || model_set_tokens(m, io->targets, y, err, errlen)) {
            rc = -1;
            break;
        }
        int from = 0;
        if (probe) { /* the forward pass in pieces, reading each KAN layer's input */
            from = kan_probe_collect(probe, m);
            kan_probe_out_of_grid_all(probe, m, frac);
            for (int i = 0; i < probe->n; i++) out_of_grid[i] += frac[i] / (double)batches;
        }
        m->dev->ops->run(m->dev, from, m->g.n_forward);
        double l;
        model_read_value(m, m->g.loss, &l);
        if (!isfinite(l)) {
            set_err(err, errlen, "the validation loss of batch %lld is %s: the weights are broken",
                    (long long)j, isnan(l) ? "NaN" : "infinite");
            rc = -1;
        }
        sum += l;
    }
    m->dev->training = training;
    free(frac);
    free(x);
    free(y);
    *loss = sum / (double)(batches > 0 ? batches : 1);
    return rc;
}
