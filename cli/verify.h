/* verify.h: compare a model with a reference file from the PyTorch reference. */
#ifndef KANC_VERIFY_H
#define KANC_VERIFY_H

#include <stdio.h>

#include "model.h"

#define VERIFY_TOLERANCE 1e-4 /* relative error ||ours - ref|| / ||ref|| per tensor */

/* Prints one line per compared tensor and a verdict to out. Returns 0 when
   every tensor is within tol, 1 when one is not, 2 on an error (message on
   stderr: unreadable file, missing tensor, shape mismatch, bad model). */
int verify_run(const char *model_path, const char *ref_path, const KdlSet *sets, int nsets,
               double tol, const char *device, FILE *out);

#endif
