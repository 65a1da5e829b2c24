/* kan_probe.h: the inputs each KAN layer of a model sees on a batch.
 *
 * Grid update (fitting knots to the data), the out-of-grid fraction in the
 * train log and `kanrun inspect --data` all need, for every KAN layer, the
 * values its basis functions are evaluated at. The probe runs the forward
 * graph in pieces, stopping before each kan op, and reads that op's basis
 * input while it is still live in the plan's arena (the planner may reuse its
 * storage later in the pass). Works on every device.
 */
#ifndef KANC_KAN_PROBE_H
#define KANC_KAN_PROBE_H

#include <stdint.h>

#include "model.h"

typedef struct {
    int node;       /* the kan op (forward graph) */
    int grid;       /* its grid buffer node */
    const char *name; /* the layer's state_dict prefix without the dot: "transformer.h.0.mlp.c_fc.layers.0" */
    int64_t rows;   /* samples per input on one batch: the product of x's leading dims */
    int64_t in;     /* inputs of the layer: x's last dim */
    double *x;      /* [rows, in] row-major after kan_probe_collect, else NULL */
} KanProbeLayer;

typedef struct {
    int n;
    KanProbeLayer *layers; /* in graph order */
    char *names;           /* storage for the layer names */
} KanProbe;

/* The model's KAN layers (no values yet). Returns n (0: none). */
int kan_probe_init(KanProbe *p, const Model *m);
/* Runs the forward graph on the inputs already set (training = 0: no dropout)
   up to the last KAN layer, storing every layer's input batch in layers[i].x.
   Returns the node where it stopped: running [that, n_forward) completes the
   forward pass (0 when there are no KAN layers). */
int kan_probe_collect(KanProbe *p, Model *m);
/* Fraction of layer i's collected samples outside their input's grid range
   (KanBasis.grid_range: for B-splines [grid[k], grid[k + G]]); `grid` is the
   layer's grid buffer as model_read_value gives it. */
double kan_probe_out_of_grid(const KanProbe *p, const Model *m, int i, const double *grid);
/* The same for every layer, reading each grid from the device: into frac[n]. */
void kan_probe_out_of_grid_all(const KanProbe *p, Model *m, double *frac);
/* For logs: "out of grid 25.3% mean, 32.0% max (NAME)" into line, and
   `"out_of_grid":{"NAME":0.253100,...},` (a metrics.jsonl member with its
   trailing comma) into json; both empty without layers. Truncated to n. */
void kan_probe_report(const KanProbe *p, const double *frac, char *line, char *json, size_t n);
void kan_probe_free(KanProbe *p);

#endif
