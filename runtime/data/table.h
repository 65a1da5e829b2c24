/* table.h: a CSV table of numbers, for the `table` objective (kanrun train --data FILE.csv).
 *
 * Format. The first line is a header of column names (comma-separated,
 * surrounding spaces trimmed, each non-empty and unique). Every other
 * non-empty line is a row of as many comma-separated numbers (strtod:
 * decimal or exponent form, inf and nan are refused). Lines may end in
 * "\r\n"; blank lines are skipped; a leading UTF-8 byte order mark is
 * skipped. A field may be quoted as RFC 4180 has it ("a, b", "" for a quote
 * inside), as spreadsheets write names; a quoted field must close on its
 * line.
 *
 * Errors name the file and the line (and the column for a bad number):
 * an empty file, no data rows, a ragged row, a value that is not a finite
 * number, a duplicate or empty column name, a quote left open.
 */
#ifndef KANC_TABLE_H
#define KANC_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path;
    int ncols;
    char **names;   /* [ncols] */
    size_t nrows;
    double *v;      /* [nrows][ncols], row-major */
    int *line;      /* [nrows]: the file line of each row (1-based), for messages */
} Table;

/* Reads path. Returns 0 (release with table_free), or -1 with "path:line: ..." in err. */
int table_read(const char *path, Table *t, char *err, size_t errlen);

/* The column named `name`, or -1. */
int table_column(const Table *t, const char *name);

/* Splits all into train (its first nrows - floor(nrows / 10) rows) and val
   (the last floor(nrows / 10)); both must have a row. Copies; all is kept. */
int table_split(const Table *all, Table *train, Table *val, char *err, size_t errlen);

void table_free(Table *t);

#endif
