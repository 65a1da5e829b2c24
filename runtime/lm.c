/* lm.c: the token inputs of a language model; its validation loss through objective.c. */
#include "lm.h"

#include <stdio.h>

#include "objective.h"
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
    (void)io; /* the objective finds the same nodes */
    Objective o;
    if (objective_open_tokens(&o, m, OBJ_LM, c->vocab_size, OBJ_DEFAULT_MASK_PROB, NULL, err, errlen)) return -1;
    o.corpus = c;
    ObjMetrics mt;
    int rc = objective_evaluate(&o, seed, batches, probe, out_of_grid, &mt, err, errlen);
    *loss = mt.loss;
    objective_free(&o);
    return rc;
}
