/* match_params.h: kanc MODEL --match-params OTHER.kdl: the value of one of MODEL's
 * hyperparameters that brings its parameter count closest to OTHER's, for a
 * comparison at equal size (a KAN against an MLP). */
#ifndef KANC_MATCH_PARAMS_H
#define KANC_MATCH_PARAMS_H

#include <stdint.h>
#include <stdio.h>

#include "frontend.h"

/* Trainable parameters of path compiled with sets (forward graph); -1 when it
   does not compile (the diagnostics to diag). */
int64_t match_count_params(const char *path, const char *src, size_t len, const KdlSet *sets, int nsets,
                           FILE *diag);

/* Scans integer values 1, 2, ... of MODEL's hyperparameter `vary` (with the
   other overrides `sets`; values the model refuses, such as a width no head
   count divides, are skipped) up to the first whose count reaches OTHER's
   (compiled with the same overrides where it declares them): parameter
   counts grow with a width or depth, so the closest is that one or the
   valid value before it. Prints the result to out. Returns 0, or 1 with the
   error on diag. */
int match_params(const char *model, const char *other, const char *vary, const KdlSet *sets, int nsets,
                 FILE *out, FILE *diag);

#endif
