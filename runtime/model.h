/* model.h: a compiled model ready to run on the CPU: source, graph, plan, state.
 *
 * The one place that strings the stages together (frontend -> autodiff ->
 * plan -> executor), and moves state in and out of safetensors by name.
 */
#ifndef KANC_MODEL_H
#define KANC_MODEL_H

#include <stdio.h>

#include "device.h"
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
    Device *dev;
    ModelMode mode;
    int seed_input; /* MODEL_GRAD_OUTPUT: the seed input node */
} Model;

/* Compiles path (its source read from disk, or src when non-NULL) with the
   overrides, for mode, with float (real_size 4) or double (8) storage, and
   opens the device: "cpu", "cuda", "emu" (the CUDA path, emulated), "auto"
   (cuda when a GPU is present, else cpu), or "none" (no device: the caller
   opens one). A path naming a cubin made by `kanc -o` (and src NULL) runs
   that prebuilt step (artifact.h). Buffers get their derived values.
   Diagnostics go to diag. Returns 0, or -1 (errors already printed). */
int model_compile(Model *m, const char *path, const char *src, const KdlSet *sets, int nsets,
                  ModelMode mode, size_t real_size, const char *device, FILE *diag);

/* Fresh parameters from the init rules (seeded), zero AdamW moments. */
int model_init_params(Model *m, uint64_t seed, char *err, size_t errlen);
void model_free(Model *m);

/* Loads every parameter and buffer from f by name, checking shapes. Buffers
   marked optional may be absent (they keep their derived values). With
   `defaults` non-NULL, a parameter whose initial value the model fixes
   (zeros, ones) may be absent too: it takes that value and a note naming it
   goes to `defaults`. The values are checked as model_check_values does
   (MODEL_VALUES_STATE). Returns 0, or -1 with a message naming the tensor. */
int model_load_state(Model *m, const StFile *f, FILE *defaults, char *err, size_t errlen);

/* What a tensor of loaded state may hold. Every value must be finite. Besides:
     MODEL_VALUES_STATE  a parameter or buffer: |x| <= model_value_bound(), and
                         a KAN knot grid (the `grid` input of a kan op) strictly
                         increasing along its last axis in every row;
     MODEL_VALUES_M      AdamW's first moment: nothing more;
     MODEL_VALUES_V      AdamW's second moment: x >= 0. */
typedef enum { MODEL_VALUES_STATE, MODEL_VALUES_M, MODEL_VALUES_V } ModelValues;
/* The largest magnitude a parameter or buffer may have: sqrt of the largest
   finite value of the model's storage (1.8e19 for float32). Past it the value
   cannot be squared (LayerNorm's variance, the gradient norm, AdamW's second
   moment) nor multiplied by another such value without overflowing, so no
   step or forward pass with it means anything. */
double model_value_bound(const Model *m);
/* Checks node i's values `v` (shape_numel of the node, in the model's real
   type) for `kind`. Returns 0, or -1 with "file: 'name' holds NaN at index 7
   ([0, 7]) ..." in err. */
int model_check_values(const Model *m, int i, const void *v, ModelValues kind, const char *file,
                       const char *name, char *err, size_t errlen);

/* Copies a tensor from f into input node `node` (token ids or floats),
   checking the shape and, for tokens, the range [-1, vocab). */
int model_set_input(Model *m, int node, const StTensor *t, char *err, size_t errlen);
/* Token ids (numel of the node) into an int32 input node, range-checked. */
int model_set_tokens(Model *m, int node, const int32_t *ids, char *err, size_t errlen);

/* Input node by name, -1 if none. */
int model_input(const Model *m, const char *name);

/* Reads node i's value (any node with a value, a parameter or a buffer) into
   dst as doubles; returns its element count. */
int64_t model_read_value(Model *m, int i, double *dst);
/* Reads the gradient of parameter i as doubles. */
int64_t model_read_grad(Model *m, int i, double *dst);
/* Writes node i's value (a parameter or buffer) from doubles, rounded to the
   model's real type; unchecked (the caller checks what it computed). */
void model_write_value(Model *m, int i, const double *src);

#endif
