/* frontend.h: .kdl source -> forward graph (parse, then elaborate).
 *
 * The one entry point the rest of the project uses for the language. Errors go
 * to `diag` as `file:line:col: error: message`, the source line and a caret;
 * several per run. Nothing here exits or crashes on bad input.
 */
#ifndef KANC_FRONTEND_H
#define KANC_FRONTEND_H

#include <stdio.h>

#include "graph.h"

/* A hyperparameter override, `name=value`; value is .kdl expression text
   ("6", "0.1", "[-2, 2]", "true"). soft = 1: silently ignored when the model
   declares no such hyperparameter (used for a fixture's config keys);
   soft = 0: an error naming it, with a near-name hint. */
typedef struct {
    const char *name;
    const char *value;
    int soft;
} KdlSet;

/* The resolved hyperparameters of a compiled model, in declaration order;
   values as canonical .kdl text (ints "48", floats "0.1", lists "[-1, 1]",
   bools "true"), so they round-trip through KdlSet. */
typedef struct {
    int n;
    char **names;
    char **values;
} KdlParams;

/* Parses and elaborates `src` (len bytes, need not be NUL-terminated; `path`
   names it in messages) with the overrides applied, appending the forward
   graph to g (g->n_forward, g->loss, g->output, g->outputs set). Returns the
   number of errors (0 on success). `params` (may be NULL) receives the
   resolved hyperparameters on success. */
int kdl_compile(const char *path, const char *src, size_t len, const KdlSet *sets, int nsets,
                Graph *g, KdlParams *params, FILE *diag);

const char *kdl_param_get(const KdlParams *p, const char *name); /* NULL if absent */
void kdl_params_free(KdlParams *p);

/* Reads a preset file (models/presets/NAME.set): one `name=value` per line,
   blank lines and lines starting with '#' skipped. Appends the overrides to
   *sets / *nsets (grown with realloc; start from NULL / 0), each with the
   given soft flag. Returns the number of errors (a missing file, a line with
   no '='), reported to diag as file:line:col. Free with kdl_sets_free, which
   frees the name and value strings too: use it only on arrays filled here. */
int kdl_sets_load(const char *path, int soft, KdlSet **sets, int *nsets, FILE *diag);
void kdl_sets_free(KdlSet *sets, int nsets);

#endif
