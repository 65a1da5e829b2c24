/* strbuf.h: a growing, always NUL-terminated string (generated source, canonical
 * value text, JSON headers). A zeroed StrBuf is empty; the caller frees s. */
#ifndef KANC_STRBUF_H
#define KANC_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *s; /* NULL until the first append */
    size_t n, cap;
} StrBuf;

void sb_append(StrBuf *b, const char *s, size_t n);
void sb_puts(StrBuf *b, const char *s);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);

#endif
