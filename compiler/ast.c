/* ast.c: the arena that holds a parse, and small helpers on nodes. */
#include "ast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A chain of chunks; allocation bumps a pointer, freeing drops them all. */
typedef struct Chunk {
    struct Chunk *prev;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
};

#define CHUNK_SIZE (64 * 1024)

Arena *arena_new(void) { return xcalloc(1, sizeof(Arena)); }

void arena_free(Arena *a)
{
    if (!a) return;
    for (Chunk *c = a->head, *prev; c; c = prev) {
        prev = c->prev;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    Chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = xmalloc(sizeof(Chunk) + cap);
        c->prev = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return memset(p, 0, n);
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *binop_str(BinOp op)
{
    static const char *const s[] = {
        [BIN_ADD] = "+", [BIN_SUB] = "-", [BIN_MUL] = "*", [BIN_DIV] = "/",
        [BIN_FLOORDIV] = "//", [BIN_MOD] = "%", [BIN_EQ] = "==", [BIN_NE] = "!=",
        [BIN_LT] = "<", [BIN_LE] = "<=", [BIN_GT] = ">", [BIN_GE] = ">=",
        [BIN_AND] = "and", [BIN_OR] = "or",
    };
    return op >= 0 && op <= BIN_OR ? s[op] : "?";
}

int node_count(const Node *list)
{
    int n = 0;
    for (; list; list = list->next) n++;
    return n;
}
