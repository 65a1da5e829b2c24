/* diag.c: error messages with the source line and a caret under the column. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Lines longer than this are echoed as a window around the column. */
#define ECHO_WIDTH 160

void diag_init(Diag *d, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->out = out;
    d->max_errors = DIAG_MAX_ERRORS;
}

int diag_full(const Diag *d) { return d->errors > d->max_errors; }

/* Length of the valid UTF-8 sequence at p (1 for ASCII), or 0 if the bytes
   there are not UTF-8 (a stray continuation byte, an overlong form, a
   truncated sequence, a surrogate or a code point above U+10FFFF). */
static int utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80) return 1;
    int len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (!len || p[0] > 0xF4 || (size_t)len > n) return 0;
    for (int i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (p[0] == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
    if (p[0] == 0xED && p[1] > 0x9F) return 0; /* surrogate */
    if (p[0] == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (p[0] == 0xF4 && p[1] > 0x8F) return 0; /* > U+10FFFF */
    return len;
}

/* Writes s[0, n) with anything that is not printable UTF-8 text as '?'
   (tabs are kept when keep_tabs, since the caret line copies them). */
static void put_clean(FILE *f, const char *s, size_t n, int keep_tabs)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = utf8_len(p + i, n - i);
        if (len == 1 && (p[i] >= 0x20 && p[i] != 0x7F)) fputc(p[i], f);
        else if (len == 1 && p[i] == '\t' && keep_tabs) fputc('\t', f);
        else if (len > 1) fwrite(p + i, 1, (size_t)len, f);
        else fputc('?', f);
        i += len ? (size_t)len : 1;
    }
}

/* The bytes of line `line` (1-based) of src, without its newline (or CR LF). */
static const char *find_line(const DSrc *src, int line, size_t *len)
{
    const char *s = src->text, *end = src->text + src->len;
    for (int l = 1; l < line && s < end; l++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    *len = (size_t)((nl ? nl : end) - s);
    if (*len && s[*len - 1] == '\r') (*len)--;
    return s;
}

/* "   12 | <the line>" then "      | <spaces>^" with the caret under col. */
static void echo_line(FILE *f, Loc at)
{
    size_t len;
    const char *s = find_line(at.src, at.line, &len);
    const unsigned char *p = (const unsigned char *)s;
    size_t off = at.col > 0 ? (size_t)at.col - 1 : 0, start = 0, end = len;
    if (off > len) off = len;
    if (len > ECHO_WIDTH) { /* a window around the column */
        start = off > ECHO_WIDTH / 2 ? off - ECHO_WIDTH / 2 : 0;
        while (start < off && (p[start] & 0xC0) == 0x80) start++;
        end = start + ECHO_WIDTH < len ? start + ECHO_WIDTH : len;
    }
    fprintf(f, "%5d | %s", at.line, start ? "..." : "");
    put_clean(f, s + start, end - start, 1);
    fprintf(f, "%s\n      | %s", end < len ? "..." : "", start ? "   " : "");
    for (size_t i = start; i < off;) {
        int n = utf8_len(p + i, len - i);
        fputc(p[i] == '\t' ? '\t' : ' ', f);
        i += n ? (size_t)n : 1;
    }
    fputs("^\n", f);
}

static void vreport(Diag *d, Loc at, const char *kind, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    FILE *f = d->out;
    if (at.src) {
        put_clean(f, at.src->name, strlen(at.src->name), 0);
        fprintf(f, ":%d:%d: ", at.line, at.col);
    }
    fprintf(f, "%s: ", kind);
    put_clean(f, msg, strlen(msg), 0);
    fputc('\n', f);
    if (at.src) echo_line(f, at);
}

void diag_error(Diag *d, Loc at, const char *fmt, ...)
{
    d->errors++;
    d->muted = !d->out || d->errors > d->max_errors;
    if (d->out && d->errors == d->max_errors + 1)
        fprintf(d->out, "error: too many errors; stopping after %d\n", d->max_errors);
    if (d->muted) return;
    va_list ap;
    va_start(ap, fmt);
    vreport(d, at, "error", fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc at, const char *fmt, ...)
{
    if (d->muted) return;
    va_list ap;
    va_start(ap, fmt);
    vreport(d, at, "note", fmt, ap);
    va_end(ap);
}

void diag_hint(Diag *d, const char *fmt, ...)
{
    if (d->muted) return;
    va_list ap;
    va_start(ap, fmt);
    vreport(d, (Loc){0}, "hint", fmt, ap);
    va_end(ap);
}

int diag_edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return (int)(n > m ? n : m); /* not a typo of each other */
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1; /* transposition: "kna" -> "kan" */
            d[i][j] = best;
        }
    return d[n][m];
}

const char *diag_closest(const char *name, const char *const *cands, int n)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    size_t len = strlen(name); /* one-letter names have no likely typo */
    int limit = len < 2 ? 0 : len < 4 ? 1 : len < 8 ? 2 : 3;
    for (int i = 0; i < n; i++) {
        if (!cands[i] || !strcmp(cands[i], name)) continue;
        int dist = diag_edit_distance(name, cands[i]);
        if (dist < best_d) best_d = dist, best = cands[i];
    }
    return best_d <= limit ? best : NULL;
}
