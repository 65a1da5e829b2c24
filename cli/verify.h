/* verify.h: compare a model with a reference file from the PyTorch reference. */
#ifndef KANC_VERIFY_H
#define KANC_VERIFY_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "model.h"
#include "safetensors.h"

#define VERIFY_TOLERANCE 1e-4 /* relative error ||ours - ref|| / ||ref|| per tensor */
/* with bf16 GEMM operands: 8 unit roundoffs of bf16, 8 * 2^-8 (docs/cuda.md, "Precision") */
#define VERIFY_TOLERANCE_BF16 0.03125
#define VERIFY_TOLERANCE_AUTO (-1.0) /* verify_run: VERIFY_TOLERANCE or _BF16 by the device's precision */

/* Prints one line per compared tensor and a verdict to out. Returns 0 when
   every tensor is within tol, 1 when one is not, 2 on an error (message on
   stderr: unreadable file, missing tensor, shape mismatch, bad model).
   model_path NULL: the model the file's metadata names (verify_model_for).
   The precision is the device's (cuda_options_for_device: KANC_PRECISION, else
   bf16 on cuda, fp32 on emu; fp32 on cpu); tol VERIFY_TOLERANCE_AUTO takes
   its default. */
int verify_run(const char *model_path, const char *ref_path, const KdlSet *sets, int nsets,
               double tol, const char *device, FILE *out);

/* The model file (a malloc'd path) for a reference file's kind and config:
   kan_linear: models/kan-linear.kdl; kan_chebyshev, kan_rbf: kan-chebyshev.kdl,
   kan-rbf.kdl; gpt: kansformers.kdl, hybrid.kdl or mingpt.kdl by config.layout
   (or the parameter names), another basis than B-splines for kansformers only; from
   $KANC_ROOT/models or models/ next to the executable. NULL with "path: ..." in
   err for no metadata, a kind or basis kanc does not support, no models/. */
char *verify_model_for(const StFile *f, const char *kind, const cJSON *cfg, char *err,
                       size_t errlen);

#endif
