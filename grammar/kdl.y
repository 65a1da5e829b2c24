/* kdl.y: the grammar of the model-description language (reentrant bison).
 *
 * A file is a list of items: `param` lines, `layer` presets, `block` and
 * `model` definitions. Statements end at a newline or ';' (the scanner drops
 * newlines inside ( ) and [ ]). Error recovery resynchronises at the end of a
 * line, at a block's '{' or at its '}', so one run reports several errors.
 *
 * The same parser reads a --set value: the scanner's first token (START_EXPR
 * or START_FILE) selects what to parse.
 */
%code requires {
#include <stdint.h>

#include "ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

typedef struct NList {
    Node *head, *tail;
} NList;
}

%code {
#include <string.h>

#include "kdl.yy.h"

static void yyerror(YYLTYPE *l, KdlLex *X, yyscan_t scanner, const char *msg);

static Loc loc_of(KdlLex *X, const YYLTYPE *l)
{
    return (Loc){X->src, l->first_line, l->first_column};
}

static Node *mk(KdlLex *X, NodeKind kind, const YYLTYPE *l)
{
    Node *n = arena_alloc(X->arena, sizeof *n);
    n->kind = kind;
    n->loc = loc_of(X, l);
    return n;
}

static Node *mk_name(KdlLex *X, NodeKind kind, const YYLTYPE *l, const char *name)
{
    Node *n = mk(X, kind, l);
    n->name = name;
    return n;
}

static Node *mk_binary(KdlLex *X, BinOp op, const YYLTYPE *l, Node *lhs, Node *rhs)
{
    Node *n = mk(X, ND_BINARY, l);
    n->op = op;
    n->lhs = lhs;
    n->rhs = rhs;
    return n;
}

static Node *mk_unary(KdlLex *X, UnOp op, const YYLTYPE *l, Node *lhs)
{
    Node *n = mk(X, ND_UNARY, l);
    n->op = op;
    n->lhs = lhs;
    return n;
}

static NList list_add(NList l, Node *n)
{
    if (!n) return l;
    if (!l.head) return (NList){n, n};
    l.tail->next = n;
    l.tail = n;
    return l;
}

static NList list_cat(NList a, NList b)
{
    if (!a.head) return b;
    if (!b.head) return a;
    a.tail->next = b.head;
    a.tail = b.tail;
    return a;
}
}

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%parse-param {KdlLex *X} {yyscan_t scanner}
%lex-param {yyscan_t scanner}

%union {
    Node *node;
    NList list;
    char *str;
}

%token START_FILE "start of file" START_EXPR "start of expression"
%token <str> IDENT "identifier" STRING "string"
%token <node> INT "integer" FLOAT "number"
%token NEWLINE "end of line"
%token PARAM "'param'" LAYER "'layer'" BLOCK "'block'" MODEL "'model'" RETURN "'return'"
%token REPEAT "'repeat'" IN "'in'" IF "'if'" ELSE "'else'" TRUE "'true'" FALSE "'false'"
%token AND "'and'" OR "'or'" NOT "'not'"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='" DSLASH "'//'"
%token END 0 "end of file"

%type <list> items item param_list block_params bparam_list inputs input_list
%type <list> stmts body targets exprs args arg_list list_items
%type <node> param_item bparam input simple compound if_stmt expr postfix primary call arg

%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' '>' LE GE
%left '+' '-'
%left '*' '/' DSLASH '%'
%precedence UNARY

%%

start
    : START_FILE items              { X->result = $2.head; }
    | START_EXPR expr NEWLINE       { X->result = $2; }
    ;

items
    : %empty                        { $$ = (NList){0}; }
    | items item                    { $$ = list_cat($1, $2); }
    ;

item
    : NEWLINE                       { $$ = (NList){0}; }
    | PARAM param_list NEWLINE      { $$ = $2; }
    | LAYER IDENT '=' call NEWLINE  {
                                        Node *n = mk_name(X, ND_LAYER, &@2, $2);
                                        n->rhs = $4;
                                        $$ = list_add((NList){0}, n);
                                    }
    | BLOCK IDENT '(' block_params ')' body {
                                        Node *n = mk_name(X, ND_BLOCK, &@2, $2);
                                        n->list = $4.head;
                                        n->body = $6.head;
                                        $$ = list_add((NList){0}, n);
                                    }
    | MODEL IDENT '(' inputs ')' body {
                                        Node *n = mk_name(X, ND_MODEL, &@2, $2);
                                        n->list = $4.head;
                                        n->body = $6.head;
                                        $$ = list_add((NList){0}, n);
                                    }
    | error NEWLINE                 { yyerrok; $$ = (NList){0}; }
    | error body                    { yyerrok; $$ = (NList){0}; }
    ;

param_list
    : param_item                    { $$ = list_add((NList){0}, $1); }
    | param_list ',' param_item     { $$ = list_add($1, $3); }
    | param_list ',' NEWLINE param_item { $$ = list_add($1, $4); }
    ;

param_item
    : IDENT '=' expr                { $$ = mk_name(X, ND_PARAM, &@1, $1); $$->rhs = $3; }
    ;

block_params
    : %empty                        { $$ = (NList){0}; }
    | bparam_list
    | bparam_list ','
    ;

bparam_list
    : bparam                        { $$ = list_add((NList){0}, $1); }
    | bparam_list ',' bparam        { $$ = list_add($1, $3); }
    ;

bparam
    : IDENT                         { $$ = mk_name(X, ND_ARG, &@1, $1); }
    | IDENT '=' expr                { $$ = mk_name(X, ND_ARG, &@1, $1); $$->lhs = $3; }
    ;

inputs
    : %empty                        { $$ = (NList){0}; }
    | input_list
    | input_list ','
    ;

input_list
    : input                         { $$ = list_add((NList){0}, $1); }
    | input_list ',' input          { $$ = list_add($1, $3); }
    ;

input
    : IDENT ':' IDENT '[' list_items ']' {
                                        $$ = mk_name(X, ND_INPUT, &@1, $1);
                                        $$->sval = $3;
                                        $$->list = $5.head;
                                        $$->lhs = mk_name(X, ND_VAR, &@3, $3);
                                    }
    ;

body
    : '{' stmts '}'                 { $$ = $2; }
    | '{' stmts simple '}'          { $$ = list_add($2, $3); }
    | '{' stmts error '}'           { yyerrok; $$ = $2; }
    ;

stmts
    : %empty                        { $$ = (NList){0}; }
    | stmts sep                     { $$ = $1; }
    | stmts simple sep              { $$ = list_add($1, $2); }
    | stmts compound                { $$ = list_add($1, $2); }
    | stmts error sep               { yyerrok; $$ = $1; }
    ;

sep
    : NEWLINE
    | ';'
    ;

simple
    : targets '=' expr              {
                                        $$ = mk(X, ND_ASSIGN, &@2);
                                        $$->list = $1.head;
                                        $$->rhs = $3;
                                    }
    | RETURN exprs                  { $$ = mk(X, ND_RETURN, &@1); $$->list = $2.head; }
    ;

targets
    : IDENT                         { $$ = list_add((NList){0}, mk_name(X, ND_VAR, &@1, $1)); }
    | targets ',' IDENT             { $$ = list_add($1, mk_name(X, ND_VAR, &@3, $3)); }
    ;

compound
    : REPEAT IDENT IN expr body     {
                                        $$ = mk_name(X, ND_REPEAT, &@1, $2);
                                        $$->lhs = $4;
                                        $$->body = $5.head;
                                    }
    | REPEAT expr body              { $$ = mk(X, ND_REPEAT, &@1); $$->lhs = $2; $$->body = $3.head; }
    | if_stmt
    ;

if_stmt
    : IF expr body                  { $$ = mk(X, ND_IF, &@1); $$->lhs = $2; $$->body = $3.head; }
    | IF expr body ELSE body        {
                                        $$ = mk(X, ND_IF, &@1);
                                        $$->lhs = $2;
                                        $$->body = $3.head;
                                        $$->els = $5.head;
                                    }
    | IF expr body ELSE if_stmt     {
                                        $$ = mk(X, ND_IF, &@1);
                                        $$->lhs = $2;
                                        $$->body = $3.head;
                                        $$->els = $5;
                                    }
    ;

exprs
    : expr                          { $$ = list_add((NList){0}, $1); }
    | exprs ',' expr                { $$ = list_add($1, $3); }
    ;

expr
    : expr OR expr                  { $$ = mk_binary(X, BIN_OR, &@2, $1, $3); }
    | expr AND expr                 { $$ = mk_binary(X, BIN_AND, &@2, $1, $3); }
    | NOT expr                      { $$ = mk_unary(X, UN_NOT, &@1, $2); }
    | expr EQ expr                  { $$ = mk_binary(X, BIN_EQ, &@2, $1, $3); }
    | expr NE expr                  { $$ = mk_binary(X, BIN_NE, &@2, $1, $3); }
    | expr '<' expr                 { $$ = mk_binary(X, BIN_LT, &@2, $1, $3); }
    | expr LE expr                  { $$ = mk_binary(X, BIN_LE, &@2, $1, $3); }
    | expr '>' expr                 { $$ = mk_binary(X, BIN_GT, &@2, $1, $3); }
    | expr GE expr                  { $$ = mk_binary(X, BIN_GE, &@2, $1, $3); }
    | expr '+' expr                 { $$ = mk_binary(X, BIN_ADD, &@2, $1, $3); }
    | expr '-' expr                 { $$ = mk_binary(X, BIN_SUB, &@2, $1, $3); }
    | expr '*' expr                 { $$ = mk_binary(X, BIN_MUL, &@2, $1, $3); }
    | expr '/' expr                 { $$ = mk_binary(X, BIN_DIV, &@2, $1, $3); }
    | expr DSLASH expr              { $$ = mk_binary(X, BIN_FLOORDIV, &@2, $1, $3); }
    | expr '%' expr                 { $$ = mk_binary(X, BIN_MOD, &@2, $1, $3); }
    | '-' expr %prec UNARY          { $$ = mk_unary(X, UN_NEG, &@1, $2); }
    | '+' expr %prec UNARY          { $$ = mk_unary(X, UN_PLUS, &@1, $2); }
    | postfix
    | postfix ':' call              { $$ = $3; $$->label = $1; }
    ;

postfix
    : primary
    | postfix '[' expr ']'          { $$ = mk(X, ND_INDEX, &@2); $$->lhs = $1; $$->rhs = $3; }
    | postfix '.' IDENT             { $$ = mk_name(X, ND_MEMBER, &@3, $3); $$->lhs = $1; }
    /* 'layer' and 'model' start an item at the top level and are plain
       names in expressions, so labels can use Hugging Face's names
       ('encoder.layer[i]', 'model.layers[i]') */
    | postfix '.' LAYER             { $$ = mk_name(X, ND_MEMBER, &@3, "layer"); $$->lhs = $1; }
    | postfix '.' MODEL             { $$ = mk_name(X, ND_MEMBER, &@3, "model"); $$->lhs = $1; }
    ;

primary
    : INT
    | FLOAT
    | STRING                        { $$ = mk(X, ND_STR, &@1); $$->sval = $1; }
    | TRUE                          { $$ = mk(X, ND_BOOL, &@1); $$->ival = 1; }
    | FALSE                         { $$ = mk(X, ND_BOOL, &@1); $$->ival = 0; }
    | IDENT                         { $$ = mk_name(X, ND_VAR, &@1, $1); }
    | LAYER                         { $$ = mk_name(X, ND_VAR, &@1, "layer"); }
    | MODEL                         { $$ = mk_name(X, ND_VAR, &@1, "model"); }
    | call
    | '(' expr ')'                  { $$ = $2; }
    | '[' list_items ']'            { $$ = mk(X, ND_LIST, &@1); $$->list = $2.head; }
    ;

list_items
    : %empty                        { $$ = (NList){0}; }
    | exprs
    | exprs ','
    ;

call
    : IDENT '(' args ')'            { $$ = mk_name(X, ND_CALL, &@1, $1); $$->list = $3.head; }
    ;

args
    : %empty                        { $$ = (NList){0}; }
    | arg_list
    | arg_list ','
    ;

arg_list
    : arg                           { $$ = list_add((NList){0}, $1); }
    | arg_list ',' arg              { $$ = list_add($1, $3); }
    ;

arg
    : expr                          { $$ = mk(X, ND_ARG, &@1); $$->lhs = $1; }
    | IDENT '=' expr                { $$ = mk_name(X, ND_ARG, &@1, $1); $$->lhs = $3; }
    ;

%%

static void yyerror(YYLTYPE *l, KdlLex *X, yyscan_t scanner, const char *msg)
{
    (void)scanner;
    if (!strcmp(msg, "memory exhausted"))
        msg = "expression nested too deeply";
    X->syntax_errors++;
    diag_error(X->diag, loc_of(X, l), "%s", msg);
}

/* Tokens that can start an expression, summarised as "an expression". */
static int starts_expr(yysymbol_kind_t s)
{
    static const char *const names[] = {"'('", "'['", "'-'", "'+'"};
    switch (s) {
    case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_STRING: case YYSYMBOL_TRUE:
    case YYSYMBOL_FALSE: case YYSYMBOL_IDENT: case YYSYMBOL_NOT: case YYSYMBOL_LAYER: case YYSYMBOL_MODEL:
        return 1;
    default:
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(yysymbol_name(s), names[i])) return 1;
        return 0;
    }
}

/* Tokens that would continue a finished expression: not worth listing. */
static int continues_expr(yysymbol_kind_t s)
{
    static const char *const names[] = {"'<'", "'>'", "'+'", "'-'", "'*'", "'/'", "'%'",
                                        "'['", "'.'", "':'", "'('"};
    switch (s) {
    case YYSYMBOL_OR: case YYSYMBOL_AND: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE:
    case YYSYMBOL_GE: case YYSYMBOL_DSLASH:
        return 1;
    default:
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(yysymbol_name(s), names[i])) return 1;
        return 0;
    }
}

/* "identifier 'foo'", "end of line", "')'" */
static void describe(char *buf, size_t n, KdlLex *X, yysymbol_kind_t t)
{
    switch (t) {
    case YYSYMBOL_IDENT: snprintf(buf, n, "identifier '%s'", X->text); break;
    case YYSYMBOL_INT:
    case YYSYMBOL_FLOAT: snprintf(buf, n, "number %s", X->text); break;
    case YYSYMBOL_YYEOF:
    case YYSYMBOL_NEWLINE:
        snprintf(buf, n, "%s", X->expr_mode ? "end of the value" : X->at_eof ? "end of file"
                                                                             : "end of line");
        break;
    default: snprintf(buf, n, "%s", yysymbol_name(t)); break;
    }
}

/* "unexpected X, expected A, B or C": the expected list only when short. */
static int yyreport_syntax_error(const yypcontext_t *ctx, KdlLex *X, yyscan_t scanner)
{
    (void)scanner;
    yysymbol_kind_t all[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, all, YYNTOKENS);
    if (n < 0) return n;
    int expr = 0, ident = 0, m = 0;
    const char *names[YYNTOKENS];
    for (int i = 0; i < n; i++) {
        if (all[i] == YYSYMBOL_INT) expr = 1;
        if (all[i] == YYSYMBOL_IDENT) ident = 1;
    }
    for (int i = 0; i < n; i++) {
        if (expr && starts_expr(all[i])) continue;
        if (continues_expr(all[i])) continue;
        if (ident && (all[i] == YYSYMBOL_LAYER || all[i] == YYSYMBOL_MODEL)) continue; /* names where a name goes */
        names[m++] = yysymbol_name(all[i]);
    }
    int eof = yypcontext_token(ctx) == YYSYMBOL_YYEOF ||
              (yypcontext_token(ctx) == YYSYMBOL_NEWLINE && X->at_eof);
    if (eof && X->eof_reported++) return 0;
    char what[96], expected[256] = "";
    describe(what, sizeof what, X, yypcontext_token(ctx));
    if (expr || (m > 0 && m <= 4)) {
        size_t at = (size_t)snprintf(expected, sizeof expected, ", expected %s",
                                     expr ? "an expression" : "");
        for (int i = 0; i < m && m + expr <= 4 && at < sizeof expected; i++) {
            const char *sep = i + expr == 0 ? "" : i + 1 == m ? " or " : ", ";
            at += (size_t)snprintf(expected + at, sizeof expected - at, "%s%s", sep, names[i]);
        }
    }
    X->syntax_errors++;
    diag_error(X->diag, loc_of(X, yypcontext_location(ctx)), "syntax error: unexpected %s%s", what,
               expected);
    if (X->paren > 0 && X->paren_open.line < yypcontext_location(ctx)->first_line)
        diag_note(X->diag, X->paren_open, "this '%c' is not closed", X->paren_char);
    else if (eof && X->nbraces > 0) {
        int cap = (int)(sizeof X->braces / sizeof X->braces[0]);
        Loc open = X->braces[(X->nbraces < cap ? X->nbraces : cap) - 1];
        diag_note(X->diag, open, "this '{' is not closed");
    }
    return 0;
}

/* Returns the number of syntax errors; *out gets what was built. */
static int parse(Arena *a, Diag *d, const DSrc *src, size_t off, int col, int start, Node **out)
{
    *out = NULL;
    KdlLex x = {0};
    x.arena = a;
    x.diag = d;
    x.src = src;
    x.line = 1;
    x.col = col;
    x.start = start;
    x.expr_mode = start == START_EXPR;
    if (src->len - off > (size_t)INT32_MAX) {
        diag_error(d, (Loc){src, 1, 1}, "file too large");
        return 1;
    }
    yyscan_t sc;
    if (yylex_init_extra(&x, &sc)) {
        diag_error(d, (Loc){src, 1, 1}, "cannot start the scanner");
        return 1;
    }
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text + off, (int)(src->len - off), sc);
    int rc = yyparse(&x, sc);
    yy_delete_buffer(buf, sc);
    yylex_destroy(sc);
    if (rc != 0 && !x.syntax_errors) x.syntax_errors = 1; /* cannot happen: be safe */
    *out = x.result;
    return x.syntax_errors;
}

int kdl_parse_file(Arena *a, Diag *d, const DSrc *src, Node **items)
{
    return parse(a, d, src, 0, 1, START_FILE, items);
}

Node *kdl_parse_expr(Arena *a, Diag *d, const DSrc *src, size_t off, int col)
{
    Node *e;
    return parse(a, d, src, off, col, START_EXPR, &e) ? NULL : e;
}
