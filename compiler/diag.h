/* diag.h: compiler diagnostics.
 *
 *   model.kdl:12:9: error: unknown layer 'kna'
 *      12 |     y = kna(x, 4 * n_embd)
 *         |         ^
 *   hint: did you mean 'kan'?
 *
 * Each message names its place (file:line:col, 1-based, columns in bytes),
 * echoes the source line with a caret under the column (tabs are kept so the
 * caret lines up, bytes that are not UTF-8 text are shown as '?'), and may be
 * followed by `note:` lines (with a place) and `hint:` lines (without). After
 * max_errors errors, one "too many errors" line is printed and everything
 * after it is only counted.
 */
#ifndef KANC_DIAG_H
#define KANC_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* A piece of source text: a file, or one --set override ("<command line>"). */
typedef struct DSrc {
    const char *name;
    const char *text; /* need not be NUL-terminated */
    size_t len;
} DSrc;

/* A place in a source (src NULL: no place). */
typedef struct Loc {
    const DSrc *src;
    int line, col;
} Loc;

typedef struct Diag {
    FILE *out;      /* NULL: count only, print nothing */
    int errors;     /* every error, printed or not */
    int max_errors; /* print at most this many */
    int muted;      /* the last error was not printed (or was a repeat): drop its notes */
} Diag;

#define DIAG_MAX_ERRORS 20

void diag_init(Diag *d, FILE *out);
void diag_error(Diag *d, Loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_hint(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 once more errors than max_errors were reported: callers may stop early */
int diag_full(const Diag *d);

/* Damerau-Levenshtein (optimal string alignment) distance. */
int diag_edit_distance(const char *a, const char *b);
/* The candidate nearest to name, if near enough to be a likely typo; else NULL. */
const char *diag_closest(const char *name, const char *const *cands, int n);

#endif
