/* strbuf.c: the growing string of strbuf.h. */
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static void sb_reserve(StrBuf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return;
    b->cap = 2 * (b->n + extra + 1);
    b->s = xrealloc(b->s, b->cap);
}

void sb_append(StrBuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_puts(StrBuf *b, const char *s) { sb_append(b, s, strlen(s)); }

void sb_vprintf(StrBuf *b, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int need = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (need < 0) return;
    sb_reserve(b, (size_t)need);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    b->n += (size_t)need;
}

void sb_printf(StrBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}
