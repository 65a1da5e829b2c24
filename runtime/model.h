/* model.h: a compiled model ready to run on the CPU: source, graph, plan, state.
 *
 * The one place that strings the stages together (frontend -> autodiff ->
 * plan -> executor), and moves state in and out of safetensors by name.
 */
#ifndef KANC_MODEL_H
#define KANC_MODEL_H

#include <stdio.h>

#include "exec_cpu.h"
#include "frontend.h"
#include "safetensors.h"

typedef enum {
    MODEL_FORWARD,     /* forward graph only */
    MODEL_TRAIN,       /* + gradient of the scalar `loss`, clipping, AdamW */
    MODEL_GRAD_OUTPUT, /* + gradient of the first output for a seed input
                          "d<output>", gradients of float inputs too */
} ModelMode;

typedef struct {
    char *path;
    char *src;
    size_t src_len;
    Graph g;
    KdlParams params;
    Plan plan;
    CpuExec ex;
    ModelMode mode;
    int seed_input; /* MODEL_GRAD_OUTPUT: the seed input node */
} Model;

/* Compiles path (its source read from disk, or src when non-NULL) with the
   overrides, for mode, with float (real_size 4) or double (8) storage.
   Diagnostics go to diag. Returns 0, or -1 (errors already printed). */
int model_compile(Model *m, const char *path, const char *src, const KdlSet *sets, int nsets,
                  ModelMode mode, double clip, size_t real_size, FILE *diag);
void model_free(Model *m);

/* Loads every parameter and buffer from f by name, checking shapes. Buffers
   marked optional may be absent (they keep their derived values). With
   params_only, buffers are not required either. Returns 0, or -1 with a
   message naming the tensor. */
int model_load_state(Model *m, const StFile *f, char *err, size_t errlen);

/* Copies a tensor from f into input node `node` (token ids or floats),
   checking the shape and, for tokens, the range [-1, vocab). */
int model_set_input(Model *m, int node, const StTensor *t, char *err, size_t errlen);

/* Input node by name, -1 if none. */
int model_input(const Model *m, const char *name);

/* Reads node i's value (any node with a value, a parameter or a buffer) into
   dst as doubles; returns its element count. */
int64_t model_read_value(Model *m, int i, double *dst);
/* Reads the gradient of parameter i as doubles. */
int64_t model_read_grad(Model *m, int i, double *dst);

#endif
