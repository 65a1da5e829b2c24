/* kan_grid.h: moving a B-spline KAN layer's knots, keeping (or, as efficient-kan
 * does, rescaling) what its splines compute.
 *
 * Grid update (efficient-kan's KANLinear.update_grid(x, margin)): from a batch
 * of the layer's own inputs, per input a knot vector that blends the sorted
 * samples with a uniform grid over [min - margin, max + margin] (grid_eps the
 * uniform share), extended by k knots of the uniform step at both ends; then
 * the spline coefficients refitted on the batch by least squares (LAPACK
 * dgelsd from OpenBLAS: the minimum-norm solution, so a rank-deficient batch,
 * e.g. every sample equal or fewer distinct values than coefficients, gives
 * finite coefficients, never NaN). Two modes:
 *   keep          (the default) the refitted spline_weight reproduces the
 *                 layer's spline output spline_weight * spline_scaler on the
 *                 batch: what a user means by a grid update;
 *   efficient-kan upstream exactly: the fit targets the output with the
 *                 scaler applied and the scaler is applied again afterwards,
 *                 so the output changes by the factor spline_scaler (what
 *                 `kanrun verify` checks against the kan_update_grid fixture).
 * Grid extension (pykan's): the same layer on a finer grid, G_old -> G_new,
 * every spline refitted onto it over its old grid range.
 */
#ifndef KANC_KAN_GRID_H
#define KANC_KAN_GRID_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kan_probe.h"
#include "model.h"
#include "safetensors.h"

typedef enum { KAN_GRID_KEEP, KAN_GRID_EFFICIENT_KAN } KanGridMode;

typedef struct {
    double margin;    /* >= 0, efficient-kan's default 0.01 */
    double eps;       /* grid_eps in [0, 1], default 0.02: the uniform grid's share */
    KanGridMode mode;
} KanGridOpts;

#define KAN_GRID_DEFAULTS ((KanGridOpts){.margin = 0.01, .eps = 0.02, .mode = KAN_GRID_KEEP})

/* "keep" / "efficient-kan" into *mode; -1 for anything else. */
int kan_grid_mode_parse(const char *s, KanGridMode *mode);
const char *kan_grid_mode_name(KanGridMode mode);

/* The rows of the sorted batch (n samples) taken as the G+1 adaptive knots, as
   torch.linspace(0, n-1, G+1, dtype=int64) computes them. */
void kan_grid_sample_index(int64_t n, int G, int64_t *idx);

/* One layer's grid update on the host, in double. x [N, in] row-major; grid
   [in, G+2k+1], spline [out, in, G+k] updated in place; scaler [out, in] or
   NULL (a layer without spline_scaler). real_size (4 or 8): the model's
   storage, in which the new knots must stay strictly increasing. Returns 0,
   or -1 with the input and why in err (then grid and spline are unchanged). */
int kan_grid_update_layer(const double *x, int64_t N, int64_t in, int64_t out, int G, int k, double *grid,
                          double *spline, const double *scaler, const KanGridOpts *o, size_t real_size,
                          char *err, size_t errlen);

/* What a model-wide update did, for the log. */
typedef struct {
    int layers;          /* B-spline KAN layers updated */
    double oog_before;   /* mean over layers of the batch's out-of-grid fraction, before */
    double oog_after;    /* ... and after */
    double change;       /* the spline part's change on the batch: rms(after - before) / rms(before),
                            worst layer */
    const char *worst;   /* that layer's name (the probe's) */
} KanGridReport;

/* Sets the inputs of batch b (0 <= b < nbatches) on the model. */
typedef int (*KanGridLoad)(void *ctx, int b, char *err, size_t errlen);

/* Updates every B-spline KAN layer of m in graph order, each from its inputs
   on nbatches batches as the layers before it, already updated, produce them
   (efficient-kan's KAN.update_grid). load NULL: one batch, already set.
   Writes the new grids and spline weights to the device; the AdamW moments
   are kept (see docs/kan-workflow.md). Returns 0, or -1 with the layer named
   in err (layers before it are updated, it and those after are not). */
int kan_grid_update_model(Model *m, KanProbe *p, const KanGridOpts *o, int nbatches, KanGridLoad load,
                          void *ctx, KanGridReport *r, char *err, size_t errlen);

/* Grid extension of one layer: old grid [in, G_old+2k+1] and spline
   [out, in, G_old+k] onto G_new >= G_old intervals over the same range
   (knots placed by interpolating the old ones, so a non-uniform grid keeps
   its shape), the splines refitted by least squares on dense samples of that
   range. new_grid [in, G_new+2k+1], new_spline [out, in, G_new+k]. When G_new
   is a multiple of G_old on a uniform grid the old splines lie in the new
   space and the fit is exact to rounding. Returns the largest absolute
   difference between old and new splines on the samples. */
double kan_grid_extend(const double *old_grid, const double *old_spline, int64_t in, int64_t out, int k,
                       int G_old, int G_new, double *new_grid, double *new_spline);

/* ---- grid extension on load ----
   A state file (a checkpoint, a state_dict) whose B-spline KAN layers have
   fewer grid intervals than the model's (the same k and widths: kanrun train
   --resume RUN --set grid_size=10, or --init-from) is made the model's in
   memory before it is loaded: each such layer's grid and spline_weight
   tensors in f are replaced by kan_grid_extend's. Coarser than the file is an
   error (a spline cannot be kept on fewer knots). The replacements live in
   *hold until kan_grid_hold_free, after the load. */
typedef struct {
    int n;
    void **bufs;
} KanGridHold;

/* The weights file. Returns the number of layers extended (a line each on
   notes when non-NULL), or -1 with the tensor named in err. */
int kan_grid_extend_weights(const Model *m, StFile *f, KanGridHold *hold, FILE *notes, char *err, size_t errlen);
/* Its optimizer file: AdamW's moments of each extended spline_weight
   ("m.<name>", "v.<name>"), which no refit can carry over: m zeros (the next
   updates start from the gradient), v each edge's mean over its old
   coefficients (the updates keep their scale, where zeros would make the
   first ones sign-like, 0.45 learning rates, at a late step: docs/kan-workflow.md).
   Returns the number of tensors replaced. */
int kan_grid_extend_moments(const Model *m, StFile *f, KanGridHold *hold);
void kan_grid_hold_free(KanGridHold *hold);

#endif
