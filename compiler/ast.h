/* ast.h: the syntax tree of a .kdl file, and the parser that builds it.
 *
 * One fat node struct for everything (chibicc style); lists are chained
 * through `next`. All nodes and their strings live in an Arena that is freed
 * in one go, so the parser's error recovery never has to free anything.
 */
#ifndef KANC_AST_H
#define KANC_AST_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* ---- arena ---- */

typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, aligned for any type */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- nodes ---- */

typedef enum {
    /* expressions */
    ND_BAD,    /* a number literal that did not scan (already reported) */
    ND_INT,    /* ival */
    ND_FLOAT,  /* fval */
    ND_BOOL,   /* ival 0/1 */
    ND_STR,    /* sval */
    ND_LIST,   /* [list...] */
    ND_VAR,    /* name */
    ND_MEMBER, /* lhs.name: only meaningful inside a label */
    ND_INDEX,  /* lhs[rhs] */
    ND_CALL,   /* name(list of ND_ARG); label: the path before ':' or NULL */
    ND_ARG,    /* a call argument: name (NULL if positional) = lhs */
    ND_BINARY, /* lhs op rhs */
    ND_UNARY,  /* op lhs */
    /* statements */
    ND_ASSIGN, /* list (ND_VAR targets) = rhs */
    ND_RETURN, /* return list */
    ND_REPEAT, /* repeat name in lhs { body }  (name may be NULL) */
    ND_IF,     /* if lhs { body } else { els } */
    /* top level */
    ND_PARAM,  /* param name = rhs */
    ND_LAYER,  /* layer name = rhs (an ND_CALL without positional args) */
    ND_BLOCK,  /* block name(list of ND_ARG: name [= lhs default]) { body } */
    ND_MODEL,  /* model name(list of ND_INPUT) { body } */
    ND_INPUT,  /* name: sval[list of dims] */
} NodeKind;

typedef enum {
    BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_FLOORDIV, BIN_MOD,
    BIN_EQ, BIN_NE, BIN_LT, BIN_LE, BIN_GT, BIN_GE, BIN_AND, BIN_OR,
} BinOp;

typedef enum { UN_NEG, UN_PLUS, UN_NOT } UnOp;

typedef struct Node Node;
struct Node {
    NodeKind kind;
    Loc loc;
    Node *next;       /* the next node of the list this one is in */
    const char *name; /* variable, callee, argument, declaration, loop variable */
    int op;           /* BinOp / UnOp */
    int64_t ival;
    double fval;
    const char *sval; /* string literal; ND_INPUT: its type name */
    Node *lhs, *rhs;
    Node *list;       /* elements, arguments, targets, return values, dims */
    Node *body, *els; /* statement lists */
    Node *label;      /* ND_CALL: label path (ND_VAR / ND_MEMBER / ND_INDEX) */
};

const char *binop_str(BinOp op); /* "+", "//", "and", ... */
int node_count(const Node *list);

/* ---- parser (grammar/kdl.y, grammar/kdl.l) ---- */

/* Parses a whole file into its list of top-level items (*items). Errors go
   to d (several per run, thanks to error recovery). Returns the number of
   syntax errors: errors that leave the tree incomplete. A number literal out
   of range is reported but is not one of them (it becomes an ND_BAD node), so
   the caller may still elaborate the tree and find more errors. */
int kdl_parse_file(Arena *a, Diag *d, const DSrc *src, Node **items);
/* Parses src->text[off, len) as one expression (a --set value) whose first
   byte is at column col of line 1. NULL after a syntax error. */
Node *kdl_parse_expr(Arena *a, Diag *d, const DSrc *src, size_t off, int col);

/* State shared by the scanner and the parser (internal to grammar/). */
typedef struct KdlLex {
    Arena *arena;
    Diag *diag;
    const DSrc *src;
    int line, col;      /* where the next byte is */
    int paren;          /* ( and [ depth: newlines inside them are spaces */
    Loc paren_open;     /* where the outermost open ( or [ is */
    char paren_char;
    int start;          /* the mode token to return first, then 0 */
    int expr_mode;      /* parsing a --set value, not a file */
    int last;           /* the last token returned (0: none yet) */
    int at_eof;         /* the end-of-input NEWLINE was given */
    int syntax_errors;  /* errors that leave the tree incomplete */
    int eof_reported;   /* "unexpected end of file" said once is enough */
    char text[40];      /* start of the last token's text, for syntax errors */
    Loc braces[32];     /* where the open { are (the innermost 32), for "not closed" */
    int nbraces;
    Node *result;       /* what the parser built */
} KdlLex;

#endif
