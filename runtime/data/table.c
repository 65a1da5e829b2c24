/* table.c: reading a CSV table of numbers (table.h). */
#include "table.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* s without its leading and trailing blanks, in place */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* The fields of line (split at commas, in place) into f[max]; their count, or max + 1
   when there are more. A field may be quoted as RFC 4180 has it ("a, b", "say ""x"""):
   its quotes are removed, its commas kept, "" read as one quote; quoted, it is not
   trimmed. -1 with *why set for a quote left open on the line or text after a
   closing quote. */
static int split_fields(char *line, char **f, int max, const char **why)
{
    int n = 0;
    for (char *p = line;;) {
        while (*p == ' ' || *p == '\t') p++;
        char *field = p, *next;
        if (*p == '"') {
            char *w = field = ++p;
            for (;; p++) {
                if (!*p) {
                    *why = "a quoted field is not closed on its line (fields spanning lines are not read)";
                    return -1;
                }
                if (*p == '"' && p[1] != '"') break;
                *w++ = *p;
                if (*p == '"') p++; /* "" is one quote */
            }
            *w = 0;
            p++;
            while (*p == ' ' || *p == '\t' || *p == '\r') p++;
            if (*p && *p != ',') {
                *why = "text after a quoted field's closing quote";
                return -1;
            }
            next = *p ? p + 1 : NULL;
        } else {
            char *comma = strchr(p, ',');
            if (comma) *comma = 0;
            field = trim(p);
            next = comma ? comma + 1 : NULL;
        }
        if (n < max) f[n] = field;
        n++;
        if (!next) break;
        p = next;
    }
    return n > max ? max + 1 : n;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

void table_free(Table *t)
{
    if (t->names)
        for (int i = 0; i < t->ncols; i++) free(t->names[i]);
    free(t->names);
    free(t->v);
    free(t->line);
    free(t->path);
    memset(t, 0, sizeof *t);
}

int table_read(const char *path, Table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t len;
    char why[256];
    char *text = read_file_why(path, &len, why, sizeof why);
    if (!text) {
        set_err(err, errlen, "%s: cannot read: %s", path, why);
        return -1;
    }
    if (memchr(text, 0, len)) {
        set_err(err, errlen, "%s: holds a NUL byte: not a CSV text file", path);
        free(text);
        return -1;
    }
    t->path = xstrdup(path);
    int maxf = 4096, lineno = 0, header_line = 0, rc = -1;
    char **f = xmalloc(sizeof *f * (size_t)(maxf + 1));
    size_t cap = 0;
    char *save = NULL;
    /* a UTF-8 byte order mark (spreadsheets' "CSV UTF-8") is no part of the first name */
    char *start = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? text + 3 : text;
    for (char *p = start; p; p = save) { /* line by line, keeping the numbers of blank lines */
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        save = nl ? nl + 1 : NULL;
        lineno++;
        if (blank(p)) continue;
        const char *bad = NULL;
        int n = split_fields(p, f, maxf, &bad);
        if (n < 0) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, bad);
            goto out;
        }
        if (n > maxf) {
            set_err(err, errlen, "%s:%d: more than %d columns", path, lineno, maxf);
            goto out;
        }
        if (!t->names) { /* the header */
            header_line = lineno;
            t->ncols = n;
            t->names = xcalloc((size_t)n, sizeof *t->names);
            for (int i = 0; i < n; i++) {
                if (!*f[i]) {
                    set_err(err, errlen, "%s:%d: column %d of the header has no name", path, lineno, i + 1);
                    goto out;
                }
                for (int j = 0; j < i; j++)
                    if (!strcmp(t->names[j], f[i])) {
                        set_err(err, errlen, "%s:%d: column '%s' is named twice (columns %d and %d)", path, lineno,
                                f[i], j + 1, i + 1);
                        goto out;
                    }
                t->names[i] = xstrdup(f[i]);
            }
            continue;
        }
        if (n != t->ncols) {
            set_err(err, errlen, "%s:%d: %d values, the header names %d columns", path, lineno, n, t->ncols);
            goto out;
        }
        if (t->nrows == cap) {
            cap = cap ? 2 * cap : 256;
            t->v = xrealloc(t->v, cap * (size_t)t->ncols * sizeof *t->v);
            t->line = xrealloc(t->line, cap * sizeof *t->line);
        }
        double *row = t->v + t->nrows * (size_t)t->ncols;
        for (int i = 0; i < n; i++) {
            char *end;
            errno = 0;
            double x = strtod(f[i], &end);
            if (!*f[i] || *end || !isfinite(x)) {
                set_err(err, errlen, "%s:%d: column %d ('%s'): '%s' is not a finite number", path, lineno, i + 1,
                        t->names[i], f[i]);
                goto out;
            }
            row[i] = x;
        }
        t->line[t->nrows++] = lineno;
    }
    if (!t->names) set_err(err, errlen, "%s:1: the file is empty (a CSV needs a header row naming its columns)", path);
    else if (!t->nrows) set_err(err, errlen, "%s:%d: no data rows after the header", path, header_line);
    else rc = 0;
out:
    free(f);
    free(text);
    if (rc) table_free(t);
    return rc;
}

int table_column(const Table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name)) return i;
    return -1;
}

/* rows [from, from + n) of src into a new table */
static void copy_rows(const Table *src, size_t from, size_t n, Table *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->path = xstrdup(src->path);
    dst->ncols = src->ncols;
    dst->names = xcalloc((size_t)src->ncols, sizeof *dst->names);
    for (int i = 0; i < src->ncols; i++) dst->names[i] = xstrdup(src->names[i]);
    dst->nrows = n;
    dst->v = xmalloc((n * (size_t)src->ncols + 1) * sizeof *dst->v);
    dst->line = xmalloc((n + 1) * sizeof *dst->line);
    memcpy(dst->v, src->v + from * (size_t)src->ncols, n * (size_t)src->ncols * sizeof *dst->v);
    memcpy(dst->line, src->line + from, n * sizeof *dst->line);
}

int table_split(const Table *all, Table *train, Table *val, char *err, size_t errlen)
{
    size_t nv = all->nrows / 10;
    if (nv == 0) {
        set_err(err, errlen, "%s: %zu rows: the last 10%% validate, so it needs at least 10 rows (or give --val FILE.csv)",
                all->path, all->nrows);
        return -1;
    }
    copy_rows(all, 0, all->nrows - nv, train);
    copy_rows(all, all->nrows - nv, nv, val);
    return 0;
}
