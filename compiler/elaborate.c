/* elaborate.c: .kdl syntax tree -> forward graph (implements frontend.h).
 *
 * The elaborator is a small interpreter over the syntax tree. It evaluates
 * the hyperparameters in order (with --set overrides substituted), records
 * layer presets and blocks, then runs the model's body statement by statement:
 * a call of a builtin layer appends nodes to the graph, its parameters named
 * scope + "." + local name; a block call runs the block's body in a new frame
 * whose scope grows by the call's label. Everything is static, so loops and
 * conditions simply unroll.
 *
 * The builtin layers live with their ops (ops/<family>.c, listed as LAYER in
 * ops/ops.def) and see the elaborator through compiler/layer.h: argument
 * checks, parameters, buffers and op nodes (the el_* functions here).
 *
 * Values are ints, floats, bools, strings, lists, tensors (graph node ids)
 * and tuples (what a block returning several values gives). An error yields
 * V_ERR, which every operation passes on silently: one mistake, one message.
 * Limits on nesting, calls and work keep any input from hanging or crashing.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "frontend.h"
#include "graph.h"
#include "hash.h"
#include "layer.h"
#include "strbuf.h"
#include "util.h"

#define MAX_CALL_DEPTH 64        /* block calls in flight */
#define MAX_NEST 1000            /* nested expressions and statements */
#define MAX_STEPS 5000000L       /* evaluations + statements, all told */
#define MAX_NODES 200000         /* graph nodes one model may make */
#define MAX_NUMEL ((int64_t)1 << 40)
#define MAX_SLOTS LAYER_MAX_SLOTS
#define MAX_LABEL_PARTS 64
#define MAX_SEEN 256

/* ======================================================================
 * values
 * ====================================================================== */

static Value vfloat(double f) { Value v = {V_FLOAT, 0, {0}}; v.f = f; return v; }
static Value vbool(int b) { Value v = {V_BOOL, 0, {0}}; v.b = !!b; return v; }
static Value vstr(const char *s) { Value v = {V_STR, 0, {0}}; v.s = s; return v; }

const char *el_kind_name(VKind k)
{
    static const char *const s[] = {"an error", "an int", "a float", "a bool", "a string",
                                    "a list", "a tensor", "several values"};
    return s[k];
}

/* The shortest text that reads back as the same double, and reads as a
   float: "0.1", "2000.0", "1e-05", "0.30000000000000004" (as Python's repr). */
static void fmt_float(char *buf, size_t n, double f)
{
    int p = 1;
    for (; p < 17; p++) { /* fewest significant digits that round-trip */
        snprintf(buf, n, "%.*e", p - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    snprintf(buf, n, "%.*e", p - 1, f);
    int exp = atoi(strchr(buf, 'e') + 1);
    if (f != 0 && (exp < -4 || exp >= 16)) return;
    snprintf(buf, n, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, f);
    if (!strchr(buf, '.')) strncat(buf, ".0", n - strlen(buf) - 1);
}

/* Canonical .kdl text of a value: "48", "0.1", "[-1, 1]", "true", "\"silu\"". */
static void fmt_value(StrBuf *b, const Graph *g, Value v)
{
    char buf[64];
    switch (v.k) {
    case V_INT:
        if (v.i == INT64_MIN) sb_printf(b, "(-9223372036854775807 - 1)");
        else sb_printf(b, "%lld", (long long)v.i);
        break;
    case V_FLOAT: fmt_float(buf, sizeof buf, v.f); sb_printf(b, "%s", buf); break;
    case V_BOOL: sb_printf(b, "%s", v.b ? "true" : "false"); break;
    case V_STR: sb_printf(b, "\"%s\"", v.s); break;
    case V_TENSOR: sb_printf(b, "a tensor %s", shape_str(&g->nodes[v.t].shape, buf, sizeof buf)); break;
    case V_LIST:
    case V_TUPLE:
        sb_printf(b, v.k == V_LIST ? "[" : "(");
        for (int i = 0; i < v.n; i++) {
            if (i) sb_printf(b, ", ");
            fmt_value(b, g, v.items[i]);
        }
        sb_printf(b, v.k == V_LIST ? "]" : ")");
        break;
    default: sb_printf(b, "<error>"); break;
    }
}

/* ======================================================================
 * environments, frames, the elaborator's state
 * ====================================================================== */

typedef struct {
    const char *name;
    Value v;
    Loc loc;
} Var;

typedef struct {
    Var *v;
    int n, cap;
} Env;

static Var *env_find(const Env *e, const char *name)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (!strcmp(e->v[i].name, name)) return &e->v[i];
    return NULL;
}

static void env_set(Env *e, const char *name, Value v, Loc loc)
{
    Var *x = env_find(e, name);
    if (x) {
        x->v = v;
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 16;
        e->v = xrealloc(e->v, (size_t)e->cap * sizeof *e->v);
    }
    e->v[e->n++] = (Var){name, v, loc};
}

static void env_free(Env *e)
{
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* One block (or the model) being run. */
typedef struct Frame {
    struct Frame *up;
    const Node *def;     /* ND_BLOCK or ND_MODEL */
    const char *scope;   /* parameter name prefix: "" at the root */
    Env vars;
    int returned;
    Value ret;
    const Node *ret_stmt;
} Frame;


/* `layer NAME = base(named args)`: a builtin with other defaults. */
typedef struct {
    const char *name;
    const Builtin *base;
    Value v[MAX_SLOTS];
    Loc at[MAX_SLOTS];
    int given[MAX_SLOTS];
    Loc loc;
} Preset;

/* Parameter/buffer/input names made so far -> node id (open addressing). */
typedef struct {
    int *slot; /* node id + 1; 0 = empty */
    size_t cap, n;
} NameMap;

typedef struct Elab {
    Diag *d;
    Arena *ar;
    Graph *g;
    const DSrc *src;
    int n0;              /* g->n when we started */
    const Node *items;   /* the file's top-level items */
    Env params;          /* hyperparameters, in declaration order */
    const Node **blocks;
    int nblocks;
    Preset *presets;
    int npresets;
    const Node *model;
    Frame *fr;           /* NULL while evaluating hyperparameters */
    int in_set;          /* evaluating a --set value */
    int depth, nest;
    long steps;
    int stop;            /* a limit was hit: unwind without more messages */
    int listed_layers;   /* an unknown callee's hint has listed the layers */
    NameMap names;
    uint64_t seen[MAX_SEEN]; /* errors already reported (loops repeat them) */
    int nseen;
} Elab;

Graph *el_graph(Elab *E) { return E->g; }
Arena *el_arena(Elab *E) { return E->ar; }

static uint64_t hash_str(const char *s) { return fnv1a64(FNV1A64_INIT, s, strlen(s)); }

/* Reports an error once per place and message (a loop body runs many times). */
Value el_err(Elab *E, Loc at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint64_t key = hash_str(msg) ^ ((uint64_t)at.line << 32) ^ (uint64_t)at.col ^
                   (uint64_t)(uintptr_t)at.src;
    for (int i = 0; i < E->nseen; i++)
        if (E->seen[i] == key) {
            E->d->muted = 1;
            return VERR;
        }
    if (E->nseen < MAX_SEEN) E->seen[E->nseen++] = key;
    diag_error(E->d, at, "%s", msg);
    if (diag_full(E->d)) E->stop = 1;
    return VERR;
}

static Loc node_loc(const Elab *E, int id)
{
    const GNode *n = &E->g->nodes[id];
    return (Loc){E->src, n->src_line, n->src_col};
}

static int names_find(const Elab *E, const char *name)
{
    if (!E->names.cap) return -1;
    for (size_t i = hash_str(name) & (E->names.cap - 1);; i = (i + 1) & (E->names.cap - 1)) {
        int id = E->names.slot[i] - 1;
        if (id < 0) return -1;
        if (!strcmp(E->g->nodes[id].name, name)) return id;
    }
}

static void names_add(Elab *E, int id)
{
    NameMap *m = &E->names;
    if (2 * (m->n + 1) > m->cap) { /* grow and rehash */
        NameMap old = *m;
        m->cap = old.cap ? 2 * old.cap : 256;
        m->slot = xcalloc(m->cap, sizeof *m->slot);
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slot[i]) names_add(E, old.slot[i] - 1);
        free(old.slot);
    }
    size_t i = hash_str(E->g->nodes[id].name) & (m->cap - 1);
    while (m->slot[i]) i = (i + 1) & (m->cap - 1);
    m->slot[i] = id + 1;
    m->n++;
}

static const char *scope_join(Elab *E, const char *scope, const char *name)
{
    return *scope ? arena_printf(E->ar, "%s.%s", scope, name) : name;
}

static const char *cur_scope(const Elab *E) { return E->fr ? E->fr->scope : ""; }

static const char *value_text(Elab *E, Value v)
{
    StrBuf b = {0};
    fmt_value(&b, E->g, v);
    const char *s = arena_strndup(E->ar, b.s, b.n);
    free(b.s);
    return s;
}

const char *el_shape_text(Elab *E, const GShape *s)
{
    char buf[128];
    shape_str(s, buf, sizeof buf);
    return arena_strndup(E->ar, buf, strlen(buf));
}

/* ======================================================================
 * graph building
 * ====================================================================== */

GShape el_tshape(const Elab *E, int id) { return E->g->nodes[id].shape; }

int el_shape_ok(Elab *E, Loc at, const GShape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++) {
        if (s->d[i] < 1)
            return el_err(E, at, "a tensor of shape %s: dimensions must be positive", el_shape_text(E, s)),
                   0;
        if (__builtin_mul_overflow(n, s->d[i], &n) || n > MAX_NUMEL)
            return el_err(E, at, "a tensor of shape %s is too large (more than 2^40 elements)",
                       el_shape_text(E, s)),
                   0;
    }
    return 1;
}

/* s + [d] */
int el_shape_push(Elab *E, Loc at, GShape *s, int64_t d)
{
    if (s->nd >= G_MAXDIM)
        return el_err(E, at, "a tensor of rank %d: at most %d dimensions are supported", s->nd + 1,
                   G_MAXDIM),
               0;
    s->d[s->nd++] = d;
    return 1;
}

static int budget_ok(Elab *E, Loc at)
{
    if (E->g->n - E->n0 < MAX_NODES) return 1;
    el_err(E, at, "the model is too large: more than %d graph nodes", MAX_NODES);
    E->stop = 1;
    return 0;
}

/* An operation node; its name is the scope it was made in (for reports). */
int el_emit(Elab *E, Loc at, const char *scope, GOp op, const int *in, int nin, GShape sh,
                const GAttr *attr)
{
    if (!el_shape_ok(E, at, &sh) || !budget_ok(E, at)) return -1;
    int id = graph_op(E->g, op, in, nin, sh, attr);
    GNode *n = &E->g->nodes[id];
    n->src_line = at.line;
    n->src_col = at.col;
    if (*scope) n->name = xstrdup(scope);
    return id;
}

/* A leaf with a unique name: parameter, buffer or input (made by callee). */
static int leaf(Elab *E, Loc at, Loc site, const char *callee, GOp op, const char *name,
                GShape sh, GDtype dt)
{
    if (!el_shape_ok(E, at, &sh) || !budget_ok(E, at)) return -1;
    int prev = names_find(E, name);
    if (prev >= 0) {
        el_err(E, site, "duplicate parameter name '%s'", name);
        diag_note(E->d, node_loc(E, prev), "'%s' was first made here", name);
        if (callee)
            diag_hint(E->d, "give each call its own label, e.g. 'a: %s(...)' and 'b: %s(...)'",
                      callee, callee);
        return -1;
    }
    GNode nd = {0};
    nd.op = op;
    nd.name = (char *)name;
    nd.shape = sh;
    nd.dtype = dt;
    nd.trainable = op == OP_PARAM;
    nd.init = INIT_NONE;
    nd.init_ref = -1;
    nd.fwd = -1;
    nd.grad = -1;
    nd.src_line = at.line;
    nd.src_col = at.col;
    int id = graph_add(E->g, &nd);
    names_add(E, id);
    return id;
}

/* ======================================================================
 * builtins: argument binding and checking
 * ====================================================================== */

Loc el_arg_loc(const Args *A, int i) { return A->given[i] ? A->at[i] : A->call; }

/* "argument 'p' of 'dropout' must be in [0, 1), got 1.5" */
int el_bad_arg(Elab *E, const Args *A, int i, const char *why)
{
    el_err(E, el_arg_loc(A, i), "argument '%s' of '%s' %s, got %s", A->b->slots[i], A->callee, why,
        value_text(E, A->v[i]));
    return 0;
}

int el_arg_tensor(Elab *E, const Args *A, int i, int dtype, int *id)
{
    *id = -1;
    Value v = A->v[i];
    if (v.k != V_TENSOR)
        return el_err(E, el_arg_loc(A, i), "argument '%s' of '%s' must be a tensor, got %s",
                   A->b->slots[i], A->callee, el_kind_name(v.k)),
               0;
    GDtype dt = E->g->nodes[v.t].dtype;
    if (dtype >= 0 && (int)dt != dtype)
        return el_err(E, el_arg_loc(A, i), "argument '%s' of '%s' must be %s, got %s", A->b->slots[i],
                   A->callee, dtype == DT_I32 ? "token ids (a tokens tensor)" : "a real tensor",
                   dt == DT_I32 ? "token ids" : "a real tensor"),
               0;
    *id = v.t;
    return 1;
}

/* A real tensor with at least min_rank dimensions. */
int el_arg_real(Elab *E, const Args *A, int i, int min_rank, int *id)
{
    if (!el_arg_tensor(E, A, i, DT_REAL, id)) return 0;
    GShape s = el_tshape(E, *id);
    if (s.nd < min_rank)
        return el_err(E, el_arg_loc(A, i), "argument '%s' of '%s' must have at least %d dimension%s, "
                   "got shape %s", A->b->slots[i], A->callee, min_rank, min_rank > 1 ? "s" : "",
                   el_shape_text(E, &s)),
               0;
    return 1;
}

int el_arg_int(Elab *E, Args *A, int i, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    *out = def; /* also on errors: callers stop, but the compiler cannot tell */
    if (!A->given[i]) {
        *out = def;
        return 1;
    }
    Value v = A->v[i];
    if (v.k != V_INT)
        return el_err(E, A->at[i], "argument '%s' of '%s' must be an int, got %s", A->b->slots[i],
                   A->callee, el_kind_name(v.k)),
               0;
    if (v.i < lo || v.i > hi) {
        char why[96];
        if (hi == INT64_MAX) snprintf(why, sizeof why, "must be at least %lld", (long long)lo);
        else snprintf(why, sizeof why, "must be between %lld and %lld", (long long)lo,
                      (long long)hi);
        return el_bad_arg(E, A, i, why);
    }
    *out = v.i;
    return 1;
}

int el_arg_num(Elab *E, Args *A, int i, double def, double *out)
{
    *out = def;
    if (!A->given[i]) {
        *out = def;
        return 1;
    }
    if (!is_num(A->v[i]))
        return el_err(E, A->at[i], "argument '%s' of '%s' must be a number, got %s", A->b->slots[i],
                   A->callee, el_kind_name(A->v[i].k)),
               0;
    *out = num(A->v[i]);
    return 1;
}

/* A probability in [0, 1). */
int el_arg_prob(Elab *E, Args *A, int i, double *out)
{
    if (!el_arg_num(E, A, i, 0.0, out)) return 0;
    return *out >= 0 && *out < 1 ? 1 : el_bad_arg(E, A, i, "must be in [0, 1)");
}

int el_arg_bool(Elab *E, Args *A, int i, int def, int *out)
{
    *out = def;
    if (!A->given[i]) {
        *out = def;
        return 1;
    }
    if (A->v[i].k != V_BOOL)
        return el_err(E, A->at[i], "argument '%s' of '%s' must be true or false, got %s",
                   A->b->slots[i], A->callee, el_kind_name(A->v[i].k)),
               0;
    *out = A->v[i].b;
    return 1;
}

/* ======================================================================
 * parameters and buffers of the builtin layers (ops/<family>.c)
 * ====================================================================== */

int el_param(Elab *E, Args *A, const char *local, GShape sh, GInit init, double a, int decay)
{
    int id = leaf(E, A->call, A->site, A->callee, OP_PARAM, scope_join(E, A->scope, local), sh,
                  DT_REAL);
    if (id >= 0) {
        GNode *n = &E->g->nodes[id];
        n->init = init;
        n->init_a = a;
        n->decay = decay;
    }
    return id;
}

/* The parameter argument i names (a string: its full state_dict name), made
   earlier, to be used again with shape sh: one parameter, two uses, its
   gradients summed. what says what it stands for ("weight"). */
int el_tied_param(Elab *E, Args *A, int i, GShape sh, const char *what)
{
    Value v = A->v[i];
    Loc at = el_arg_loc(A, i);
    if (v.k != V_STR)
        return el_err(E, at, "argument '%s' of '%s' must be a parameter's name in quotes "
                      "(e.g. \"transformer.wte.weight\"), got %s", A->b->slots[i], A->callee, el_kind_name(v.k)),
               -1;
    int id = names_find(E, v.s);
    if (id < 0 || E->g->nodes[id].op != OP_PARAM) {
        el_err(E, at, "'%s' ties its %s to '%s', but no parameter of that name was made before it", A->callee,
               what, v.s);
        if (id >= 0) {
            diag_note(E->d, node_loc(E, id), "'%s' is %s, not a parameter", v.s,
                      E->g->nodes[id].op == OP_BUFFER ? "a buffer" : "an input");
            return -1;
        }
        const char **cands = xmalloc(sizeof *cands * (size_t)(E->g->n ? E->g->n : 1));
        int nc = 0;
        for (int j = E->n0; j < E->g->n; j++)
            if (E->g->nodes[j].op == OP_PARAM) cands[nc++] = E->g->nodes[j].name;
        const char *near = diag_closest(v.s, cands, nc);
        if (near) diag_hint(E->d, "did you mean '%s'?", near);
        free(cands);
        return -1;
    }
    const GNode *p = &E->g->nodes[id];
    if (!shape_eq(&p->shape, &sh)) {
        el_err(E, at, "'%s' ties its %s to '%s', but it needs %s and '%s' is %s", A->callee, what, v.s,
               el_shape_text(E, &sh), v.s, el_shape_text(E, &p->shape));
        diag_note(E->d, node_loc(E, id), "'%s' was made here, with shape %s", v.s, el_shape_text(E, &p->shape));
        return -1;
    }
    graph_add_alias(E->g, scope_join(E, A->scope, what), id); /* the name an untied one would have */
    return id;
}

int el_buffer(Elab *E, Args *A, const char *local, GShape sh, GInit init)
{
    int id = leaf(E, A->call, A->site, A->callee, OP_BUFFER, scope_join(E, A->scope, local), sh,
                  DT_REAL);
    if (id >= 0) E->g->nodes[id].init = init;
    return id;
}


/* ======================================================================
 * builtin functions of values
 * ====================================================================== */

static Value F_shape(Elab *E, Args *A)
{
    int x;
    if (!el_arg_tensor(E, A, 0, -1, &x)) return VERR;
    GShape s = el_tshape(E, x);
    Value v = {V_LIST, s.nd, {0}};
    v.items = arena_alloc(E->ar, (size_t)(s.nd ? s.nd : 1) * sizeof(Value));
    for (int i = 0; i < s.nd; i++) v.items[i] = vint(s.d[i]);
    return v;
}

static Value F_sqrt(Elab *E, Args *A)
{
    double x;
    if (!el_arg_num(E, A, 0, 0, &x)) return VERR;
    return x >= 0 ? vfloat(sqrt(x)) : (el_bad_arg(E, A, 0, "must not be negative"), VERR);
}

static Value F_abs(Elab *E, Args *A)
{
    Value v = A->v[0];
    if (v.k == V_INT && v.i == INT64_MIN) return el_err(E, A->at[0], "integer overflow in 'abs'");
    if (v.k == V_INT) return vint(v.i < 0 ? -v.i : v.i);
    double x;
    return el_arg_num(E, A, 0, 0, &x) ? vfloat(fabs(x)) : VERR;
}

static Value F_exp(Elab *E, Args *A)
{
    double x;
    if (!el_arg_num(E, A, 0, 0, &x)) return VERR;
    return isfinite(exp(x)) ? vfloat(exp(x)) : (el_bad_arg(E, A, 0, "is too large: exp overflows"), VERR);
}

static Value F_log(Elab *E, Args *A)
{
    double x;
    if (!el_arg_num(E, A, 0, 0, &x)) return VERR;
    return x > 0 ? vfloat(log(x)) : (el_bad_arg(E, A, 0, "must be positive"), VERR);
}

static Value F_int(Elab *E, Args *A)
{
    Value v = A->v[0];
    if (v.k == V_INT) return v;
    if (v.k == V_BOOL) return vint(v.b);
    double x;
    if (!el_arg_num(E, A, 0, 0, &x)) return VERR;
    if (!(x > -9.2e18 && x < 9.2e18)) return el_bad_arg(E, A, 0, "is too large for an int"), VERR;
    return vint((int64_t)x); /* truncates toward zero */
}

static Value F_float(Elab *E, Args *A)
{
    double x;
    return el_arg_num(E, A, 0, 0, &x) ? vfloat(x) : VERR;
}

static Value F_len(Elab *E, Args *A)
{
    Value v = A->v[0];
    if (v.k != V_LIST) return el_bad_arg(E, A, 0, "must be a list"), VERR;
    return vint(v.n);
}

/* min/max of its arguments, or of the items of a single list argument */
static Value minmax(Elab *E, Args *A, int want_max)
{
    Value all[1 + 64];
    int n = 1 + A->nrest;
    if (A->nrest > 64) return el_err(E, A->call, "'%s' takes at most 65 arguments", A->callee);
    all[0] = A->v[0];
    for (int i = 0; i < A->nrest; i++) all[1 + i] = A->rest[i];
    const Value *v = all;
    if (n == 1 && v[0].k == V_LIST) n = v[0].n, v = v[0].items;
    if (n == 0) return el_bad_arg(E, A, 0, "must not be empty"), VERR;
    Value best = v[0];
    for (int i = 0; i < n; i++) {
        if (!is_num(v[i]))
            return el_err(E, A->call, "'%s' needs numbers, got %s", A->callee, el_kind_name(v[i].k));
        if (want_max ? num(v[i]) > num(best) : num(v[i]) < num(best)) best = v[i];
    }
    return best;
}

static Value F_min(Elab *E, Args *A) { return minmax(E, A, 0); }
static Value F_max(Elab *E, Args *A) { return minmax(E, A, 1); }


/* The builtins: the layers of ops/ops.def (LAYER, in that order), then the
   functions of values. abs, exp and log are both: the layer on a tensor, the
   function on a number (number_form, call_builtin). */
static const Builtin FUNCTIONS[] = {
    {"shape", F_shape, 1, 0, 0, "shape(x)", {"x"}},
    {"sqrt", F_sqrt, 1, 0, 0, "sqrt(x)", {"x"}},
    {"abs", F_abs, 1, 0, 0, "abs(x)", {"x"}},
    {"exp", F_exp, 1, 0, 0, "exp(x)", {"x"}},
    {"log", F_log, 1, 0, 0, "log(x)", {"x"}},
    {"int", F_int, 1, 0, 0, "int(x)", {"x"}},
    {"float", F_float, 1, 0, 0, "float(x)", {"x"}},
    {"len", F_len, 1, 0, 0, "len(list)", {"list"}},
    {"min", F_min, 1, 1, 0, "min(a, b, ...) or min(list)", {"a"}},
    {"max", F_max, 1, 1, 0, "max(a, b, ...) or max(list)", {"a"}},
};

#define LAYER(name, family) extern const Builtin layer_##name;
#include "ops.def"
static const Builtin *const BUILTINS[] = {
#define LAYER(name, family) &layer_##name,
#include "ops.def"
    &FUNCTIONS[0],
    &FUNCTIONS[1],
    &FUNCTIONS[2],
    &FUNCTIONS[3],
    &FUNCTIONS[4],
    &FUNCTIONS[5],
    &FUNCTIONS[6],
    &FUNCTIONS[7],
    &FUNCTIONS[8],
    &FUNCTIONS[9],
};

#define N_BUILTINS ((int)(sizeof BUILTINS / sizeof BUILTINS[0]))

static const Builtin *find_builtin(const char *name)
{
    for (int i = 0; i < N_BUILTINS; i++)
        if (!strcmp(BUILTINS[i]->name, name)) return BUILTINS[i];
    return NULL;
}

/* the function of numbers that shares layer b's name (abs, exp, log), or NULL */
static const Builtin *number_form(const Builtin *b)
{
    if (!b || !b->layer) return NULL;
    for (size_t i = 0; i < sizeof FUNCTIONS / sizeof FUNCTIONS[0]; i++)
        if (!strcmp(FUNCTIONS[i].name, b->name)) return &FUNCTIONS[i];
    return NULL;
}

static int slot_count(const Builtin *b)
{
    int n = 0;
    while (n < MAX_SLOTS && b->slots[n]) n++;
    return n;
}

/* ======================================================================
 * expressions
 * ====================================================================== */

static Value eval(Elab *E, const Node *n);
static Value eval_call(Elab *E, const Node *n);

static const Preset *find_preset(const Elab *E, const char *name, int before)
{
    for (int i = before - 1; i >= 0; i--)
        if (!strcmp(E->presets[i].name, name)) return &E->presets[i];
    return NULL;
}

static const Node *find_block(const Elab *E, const char *name)
{
    for (int i = 0; i < E->nblocks; i++)
        if (!strcmp(E->blocks[i]->name, name)) return E->blocks[i];
    return NULL;
}

static const Node *find_param_decl(const Elab *E, const char *name)
{
    for (const Node *it = E->items; it; it = it->next)
        if (it->kind == ND_PARAM && !strcmp(it->name, name)) return it;
    return NULL;
}

static Value unknown_var(Elab *E, const Node *n)
{
    const char *name = n->name;
    el_err(E, n->loc, "unknown variable '%s'", name);
    if (E->in_set) {
        diag_hint(E->d, "a string value is quoted: --set NAME='\"%s\"'", name);
        return VERR;
    }
    const Node *later = find_param_decl(E, name);
    if (later && !E->fr) {
        diag_note(E->d, later->loc, "'%s' is declared here, after its use; a hyperparameter can "
                  "only use those declared before it", name);
        return VERR;
    }
    if (find_block(E, name) || find_preset(E, name, E->npresets) || find_builtin(name)) {
        diag_hint(E->d, "'%s' is a layer or block: call it, as in %s(x)", name, name);
        return VERR;
    }
    int n_frame = E->fr ? E->fr->vars.n : 0, nc = 0;
    const char **cands = xmalloc((size_t)(n_frame + E->params.n + 1) * sizeof *cands);
    for (int i = 0; i < n_frame; i++) cands[nc++] = E->fr->vars.v[i].name;
    for (int i = 0; i < E->params.n; i++) cands[nc++] = E->params.v[i].name;
    const char *near = diag_closest(name, cands, nc);
    if (near) diag_hint(E->d, "did you mean '%s'?", near);
    free(cands);
    return VERR;
}

static Value eval_var(Elab *E, const Node *n)
{
    Var *v = E->fr ? env_find(&E->fr->vars, n->name) : NULL;
    if (!v) v = env_find(&E->params, n->name);
    return v ? v->v : unknown_var(E, n);
}

static Value eval_list(Elab *E, const Node *n)
{
    Value v = {V_LIST, node_count(n->list), {0}};
    v.items = arena_alloc(E->ar, (size_t)(v.n ? v.n : 1) * sizeof(Value));
    int i = 0;
    for (const Node *e = n->list; e; e = e->next, i++) {
        v.items[i] = eval(E, e);
        if (v.items[i].k == V_ERR) return VERR;
        if (v.items[i].k == V_TUPLE || v.items[i].k == V_TENSOR)
            return el_err(E, e->loc, "a list holds numbers, bools and strings, not %s",
                       el_kind_name(v.items[i].k));
    }
    return v;
}

static Value eval_index(Elab *E, const Node *n)
{
    Value a = eval(E, n->lhs), i = eval(E, n->rhs);
    if (a.k == V_ERR || i.k == V_ERR) return VERR;
    if (a.k == V_TENSOR)
        return el_err(E, n->loc, "a tensor cannot be indexed; use split() or reshape()");
    if (a.k != V_LIST) return el_err(E, n->loc, "only a list can be indexed, not %s", el_kind_name(a.k));
    if (i.k != V_INT) return el_err(E, n->rhs->loc, "a list index must be an int, got %s",
                                 el_kind_name(i.k));
    int64_t k = i.i < 0 ? i.i + a.n : i.i; /* -1 is the last item */
    if (k < 0 || k >= a.n)
        return el_err(E, n->rhs->loc, "index %lld is out of range for a list of %d item%s",
                   (long long)i.i, a.n, a.n == 1 ? "" : "s");
    return a.items[k];
}

static Value int_overflow(Elab *E, const Node *n)
{
    return el_err(E, n->loc, "integer overflow in '%s'", binop_str(n->op));
}

static Value div_zero(Elab *E, const Node *n)
{
    return el_err(E, n->loc, "%s by zero", n->op == BIN_MOD ? "modulo" : "division");
}

/* int op int, with overflow checks. `/` gives an int when exact, else a
   float; `//` and `%` round toward minus infinity (as Python does). */
static Value int_arith(Elab *E, const Node *n, int64_t x, int64_t y)
{
    int64_t r;
    switch (n->op) {
    case BIN_ADD: return __builtin_add_overflow(x, y, &r) ? int_overflow(E, n) : vint(r);
    case BIN_SUB: return __builtin_sub_overflow(x, y, &r) ? int_overflow(E, n) : vint(r);
    case BIN_MUL: return __builtin_mul_overflow(x, y, &r) ? int_overflow(E, n) : vint(r);
    default: break;
    }
    if (y == 0) return div_zero(E, n);
    if (y == -1) { /* x / -1 and x % -1, without INT64_MIN / -1 */
        if (n->op == BIN_MOD) return vint(0);
        return x == INT64_MIN ? int_overflow(E, n) : vint(-x);
    }
    int64_t q = x / y, m = x % y;
    if (n->op == BIN_DIV) return m == 0 ? vint(q) : vfloat((double)x / (double)y);
    if (m != 0 && (m < 0) != (y < 0)) q--, m += y;
    return n->op == BIN_FLOORDIV ? vint(q) : vint(m);
}

static Value float_arith(Elab *E, const Node *n, double x, double y)
{
    double r;
    switch (n->op) {
    case BIN_ADD: r = x + y; break;
    case BIN_SUB: r = x - y; break;
    case BIN_MUL: r = x * y; break;
    default:
        if (y == 0) return div_zero(E, n);
        r = n->op == BIN_DIV ? x / y : n->op == BIN_FLOORDIV ? floor(x / y) : x - y * floor(x / y);
    }
    if (!isfinite(r)) return el_err(E, n->loc, "floating-point overflow in '%s'", binop_str(n->op));
    return vfloat(r);
}

static Value compare(Elab *E, const Node *n, Value a, Value b)
{
    int eq_only = n->op == BIN_EQ || n->op == BIN_NE;
    double c;
    if (is_num(a) && is_num(b)) {
        if (a.k == V_INT && b.k == V_INT) c = (a.i > b.i) - (a.i < b.i);
        else c = (num(a) > num(b)) - (num(a) < num(b));
    } else if (eq_only && a.k == b.k && a.k == V_BOOL) {
        c = a.b != b.b;
    } else if (eq_only && a.k == b.k && a.k == V_STR) {
        c = strcmp(a.s, b.s) != 0;
    } else {
        return el_err(E, n->loc, "cannot compare %s with %s using '%s'", el_kind_name(a.k),
                   el_kind_name(b.k), binop_str(n->op));
    }
    switch (n->op) {
    case BIN_EQ: return vbool(c == 0);
    case BIN_NE: return vbool(c != 0);
    case BIN_LT: return vbool(c < 0);
    case BIN_LE: return vbool(c <= 0);
    case BIN_GT: return vbool(c > 0);
    default: return vbool(c >= 0);
    }
}

/* An elementwise op of one tensor at the operator's place. */
static int tensor_unary(Elab *E, const Node *n, GOp op, int x, GAttr at)
{
    return el_emit(E, n->loc, cur_scope(E), op, &x, 1, el_tshape(E, x), &at);
}

/* tensor (+ - * /) tensor, with trailing-dims broadcast; a / b is a * (1 / b).
   tensor (+ - * /) number and number (+ - * /) tensor: the affine op scale
   (y = s x + c), and c / x = c * (1 / x). */
static Value tensor_binary(Elab *E, const Node *n, Value a, Value b)
{
    const char *op = binop_str(n->op);
    int arith = n->op == BIN_ADD || n->op == BIN_SUB || n->op == BIN_MUL || n->op == BIN_DIV;
    if (a.k == V_TENSOR && b.k == V_TENSOR) {
        if (!arith) return el_err(E, n->loc, "'%s' is not defined on two tensors", op);
        if (E->g->nodes[a.t].dtype != DT_REAL || E->g->nodes[b.t].dtype != DT_REAL)
            return el_err(E, n->loc, "'%s' needs real tensors, not token ids", op);
        GShape sa = el_tshape(E, a.t), sb = el_tshape(E, b.t);
        if (n->op == BIN_DIV) { /* a * (1 / b): b is the operand that may broadcast, or a */
            if (!shape_is_suffix(&sa, &sb) && !shape_is_suffix(&sb, &sa))
                return el_err(E, n->loc, "shape mismatch in '%s': %s and %s", op,
                           el_shape_text(E, &sa), el_shape_text(E, &sb));
            b = vnode(tensor_unary(E, n, OP_RECIP, b.t, (GAttr){0}));
            if (b.k == V_ERR) return VERR;
        }
        if (!shape_is_suffix(&sa, &sb)) {
            if (!shape_is_suffix(&sb, &sa))
                return el_err(E, n->loc, "shape mismatch in '%s': %s and %s", op,
                           el_shape_text(E, &sa), el_shape_text(E, &sb));
            if (n->op == BIN_SUB) {
                el_err(E, n->loc, "in '-', the left operand %s would have to broadcast over the "
                    "right one %s", el_shape_text(E, &sa), el_shape_text(E, &sb));
                diag_hint(E->d, "write it as (-b) + a");
                return VERR;
            }
            Value t = a; /* the broadcast operand goes second */
            a = b, b = t;
            sa = sb;
        }
        GOp gop = n->op == BIN_ADD ? OP_ADD : n->op == BIN_SUB ? OP_SUB : OP_MUL;
        return vnode(el_emit(E, n->loc, cur_scope(E), gop, (int[]){a.t, b.t}, 2, sa, NULL));
    }
    int tensor_left = a.k == V_TENSOR;
    Value t = tensor_left ? a : b, s = tensor_left ? b : a;
    if (!is_num(s))
        return el_err(E, n->loc, "'%s' between a tensor and %s is not defined", op, el_kind_name(s.k));
    if (!arith) {
        el_err(E, n->loc, "'%s' between a tensor and a number is not defined", op);
        diag_hint(E->d, "a tensor and a number combine with +, -, * and / (x + 1, 1 - x, 2 * x, x / 2, 1 / x)");
        return VERR;
    }
    if (E->g->nodes[t.t].dtype != DT_REAL)
        return el_err(E, n->loc, "'%s' needs a real tensor, not token ids", op);
    double f = num(s);
    GAttr at = {.scale = 1};
    switch (n->op) {
    case BIN_ADD: at.shift = f; break;
    case BIN_SUB: at.scale = tensor_left ? 1 : -1, at.shift = tensor_left ? -f : f; break;
    case BIN_MUL: at.scale = f; break;
    default: /* x / c, or c / x = c * (1 / x) */
        if (tensor_left) {
            if (f == 0) return div_zero(E, n);
            at.scale = 1.0 / f;
        } else {
            int r = tensor_unary(E, n, OP_RECIP, t.t, (GAttr){0});
            if (r < 0 || f == 1) return vnode(r);
            t.t = r, at.scale = f;
        }
    }
    return vnode(tensor_unary(E, n, OP_SCALE, t.t, at));
}

static Value eval_logic(Elab *E, const Node *n)
{
    Value a = eval(E, n->lhs);
    if (a.k == V_ERR) return VERR;
    if (a.k != V_BOOL)
        return el_err(E, n->lhs->loc, "'%s' needs true or false, got %s", binop_str(n->op),
                   el_kind_name(a.k));
    if (a.b == (n->op == BIN_OR)) return a; /* short circuit */
    Value b = eval(E, n->rhs);
    if (b.k == V_ERR) return VERR;
    if (b.k != V_BOOL)
        return el_err(E, n->rhs->loc, "'%s' needs true or false, got %s", binop_str(n->op),
                   el_kind_name(b.k));
    return b;
}

static Value eval_binary(Elab *E, const Node *n)
{
    if (n->op == BIN_AND || n->op == BIN_OR) return eval_logic(E, n);
    Value a = eval(E, n->lhs), b = eval(E, n->rhs); /* both: each may hold an error */
    if (a.k == V_ERR || b.k == V_ERR) return VERR;
    if (a.k == V_TUPLE || b.k == V_TUPLE)
        return el_err(E, n->loc, "'%s' on several values: unpack them first (a, b = f(x))",
                   binop_str(n->op));
    if (n->op >= BIN_EQ) return compare(E, n, a, b);
    if (a.k == V_TENSOR || b.k == V_TENSOR) return tensor_binary(E, n, a, b);
    if (!is_num(a) || !is_num(b))
        return el_err(E, n->loc, "'%s' needs numbers, got %s and %s", binop_str(n->op),
                   el_kind_name(a.k), el_kind_name(b.k));
    if (a.k == V_INT && b.k == V_INT) return int_arith(E, n, a.i, b.i);
    return float_arith(E, n, num(a), num(b));
}

static Value eval_unary(Elab *E, const Node *n)
{
    Value a = eval(E, n->lhs);
    if (a.k == V_ERR) return VERR;
    if (n->op == UN_NOT)
        return a.k == V_BOOL ? vbool(!a.b)
                             : el_err(E, n->loc, "'not' needs true or false, got %s", el_kind_name(a.k));
    if (a.k == V_TENSOR && n->op == UN_NEG) {
        if (E->g->nodes[a.t].dtype != DT_REAL)
            return el_err(E, n->loc, "'-' needs a real tensor, not token ids");
        GAttr at = {.scale = -1};
        return vnode(el_emit(E, n->loc, cur_scope(E), OP_SCALE, &a.t, 1, el_tshape(E, a.t), &at));
    }
    if (a.k == V_TENSOR || (n->op == UN_PLUS && is_num(a))) return a;
    if (a.k == V_INT)
        return a.i == INT64_MIN ? el_err(E, n->loc, "integer overflow in '-'") : vint(-a.i);
    if (a.k == V_FLOAT) return vfloat(-a.f);
    return el_err(E, n->loc, "'%s' needs a number, got %s", n->op == UN_NEG ? "-" : "+",
               el_kind_name(a.k));
}

static Value member_error(Elab *E, const Node *n)
{
    return el_err(E, n->loc, "'.' can only be used in a label, as in 'transformer.wte: "
               "embedding(idx, vocab_size, n_embd)'");
}

static int count_step(Elab *E, Loc at)
{
    if (E->stop) return 0;
    if (++E->steps <= MAX_STEPS) return 1;
    el_err(E, at, "the model takes too long to elaborate (more than %ld steps); is a repeat count "
        "too large?", MAX_STEPS);
    E->stop = 1;
    return 0;
}

static Value eval(Elab *E, const Node *n)
{
    if (!count_step(E, n->loc)) return VERR;
    if (E->nest >= MAX_NEST) {
        el_err(E, n->loc, "expression nested too deeply (more than %d levels)", MAX_NEST);
        E->stop = 1;
        return VERR;
    }
    E->nest++;
    Value v;
    switch (n->kind) {
    case ND_BAD: v = VERR; break;
    case ND_INT: v = vint(n->ival); break;
    case ND_FLOAT: v = vfloat(n->fval); break;
    case ND_BOOL: v = vbool((int)n->ival); break;
    case ND_STR: v = vstr(n->sval); break;
    case ND_LIST: v = eval_list(E, n); break;
    case ND_VAR: v = eval_var(E, n); break;
    case ND_INDEX: v = eval_index(E, n); break;
    case ND_CALL: v = eval_call(E, n); break;
    case ND_BINARY: v = eval_binary(E, n); break;
    case ND_UNARY: v = eval_unary(E, n); break;
    case ND_MEMBER: v = member_error(E, n); break;
    default: v = el_err(E, n->loc, "not an expression"); break;
    }
    E->nest--;
    return v;
}

/* ======================================================================
 * calls
 * ====================================================================== */

/* "transformer.h[i]" -> "transformer.h.3" (NULL after an error) */
static const char *label_path(Elab *E, const Node *n)
{
    const Node *parts[MAX_LABEL_PARTS];
    int np = 0;
    for (; n->kind == ND_MEMBER || n->kind == ND_INDEX; n = n->lhs) {
        if (np == MAX_LABEL_PARTS - 1)
            return el_err(E, n->loc, "label too long (more than %d parts)", MAX_LABEL_PARTS), NULL;
        parts[np++] = n;
    }
    if (n->kind != ND_VAR)
        return el_err(E, n->loc, "a label is a dotted name such as 'transformer.h[i]'"), NULL;
    StrBuf b = {0};
    sb_printf(&b, "%s", n->name);
    for (int i = np - 1; i >= 0; i--) {
        if (parts[i]->kind == ND_MEMBER) {
            sb_printf(&b, ".%s", parts[i]->name);
            continue;
        }
        Value k = eval(E, parts[i]->rhs);
        if (k.k != V_INT || k.i < 0) {
            if (k.k != V_ERR)
                el_err(E, parts[i]->rhs->loc, "a label index must be an int >= 0, got %s",
                    value_text(E, k));
            free(b.s);
            return NULL;
        }
        sb_printf(&b, ".%lld", (long long)k.i);
    }
    const char *s = arena_strndup(E->ar, b.s, b.n);
    free(b.s);
    return s;
}

typedef struct {
    const char *name; /* NULL: positional */
    Value v;
    Loc at;
} ArgVal;

/* Evaluates a call's arguments; NULL if one failed (already reported). */
static ArgVal *eval_args(Elab *E, const Node *call, int *n)
{
    *n = node_count(call->list);
    ArgVal *av = xcalloc((size_t)(*n ? *n : 1), sizeof *av);
    int i = 0, ok = 1;
    for (const Node *a = call->list; a; a = a->next, i++) {
        av[i] = (ArgVal){a->name, eval(E, a->lhs), a->lhs->loc};
        if (av[i].v.k == V_TUPLE) {
            el_err(E, a->lhs->loc, "an argument must be one value, not several (unpack them first: "
                "a, b = f(x))");
            av[i].v = VERR;
        }
        ok &= av[i].v.k != V_ERR;
    }
    if (!ok) free(av);
    return ok ? av : NULL;
}

/* Binds evaluated arguments to slot names: positional first, then named.
   Fills v/at/given (and rest, for variadic). 0 after an error. */
static int bind_args(Elab *E, const char *callee, const char *usage, const char *const *slots,
                     int nslots, int variadic, const ArgVal *av, int nav, Args *A)
{
    int pos = 0, named = 0;
    for (int i = 0; i < nav; i++) {
        int s;
        if (!av[i].name) {
            if (named)
                return el_err(E, av[i].at, "a positional argument cannot follow a named one"), 0;
            if (pos >= nslots && variadic) {
                A->rest[A->nrest] = av[i].v;
                A->rest_at[A->nrest++] = av[i].at;
                continue;
            }
            if (pos >= nslots)
                return el_err(E, av[i].at, "too many arguments to '%s' (it takes %d)", callee,
                           nslots),
                       0;
            s = pos++;
        } else {
            named = 1;
            s = -1;
            for (int j = 0; j < nslots; j++)
                if (!strcmp(slots[j], av[i].name)) s = j;
            if (s < 0) {
                el_err(E, av[i].at, "'%s' has no argument named '%s'", callee, av[i].name);
                const char *near = diag_closest(av[i].name, slots, nslots);
                if (near) diag_hint(E->d, "did you mean '%s'?", near);
                else if (usage) diag_hint(E->d, "usage: %s", usage);
                return 0;
            }
            if (A->given[s]) return el_err(E, av[i].at, "argument '%s' given twice", slots[s]), 0;
        }
        A->v[s] = av[i].v;
        A->at[s] = av[i].at;
        A->given[s] = 1;
    }
    return 1;
}

/* b's arguments bound and checked, then b called; number: b's function of
   numbers, called instead when the first argument is not a tensor */
static Value call_builtin(Elab *E, const Builtin *b, const Preset *p, const Node *call,
                          const char *scope, const Builtin *number)
{
    int nav;
    ArgVal *av = eval_args(E, call, &nav);
    if (!av) return VERR;
    if (number && nav > 0 && av[0].v.k != V_TENSOR && av[0].v.k != V_ERR) b = number;
    Args A = {0};
    A.b = b;
    A.callee = call->name;
    A.call = call->loc;
    A.site = call->label ? call->label->loc : call->loc;
    A.scope = scope;
    A.rest = xcalloc((size_t)(nav ? nav : 1), sizeof *A.rest);
    A.rest_at = xcalloc((size_t)(nav ? nav : 1), sizeof *A.rest_at);
    int ok = bind_args(E, call->name, b->usage, b->slots, slot_count(b), b->variadic, av, nav,
                       &A);
    for (int i = 0; ok && p && i < MAX_SLOTS; i++)
        if (!A.given[i] && p->given[i]) A.v[i] = p->v[i], A.at[i] = p->at[i], A.given[i] = 1;
    for (int i = 0; ok && i < b->nreq; i++)
        if (!A.given[i]) {
            el_err(E, call->loc, "missing argument '%s' in call to '%s'", b->slots[i], call->name);
            diag_hint(E->d, "usage: %s", b->usage);
            ok = 0;
        }
    Value r = ok ? b->fn(E, &A) : VERR;
    free(A.rest);
    free(A.rest_at);
    free(av);
    return r;
}

static int block_nparams(const Node *blk) { return node_count(blk->list); }

/* "a -> b -> a": the chain of calls that comes back to blk */
static const char *recursion_chain(Elab *E, const Node *blk)
{
    StrBuf b = {0};
    const Frame *fs[MAX_CALL_DEPTH + 2];
    int n = 0;
    for (const Frame *f = E->fr; f && n < MAX_CALL_DEPTH + 1; f = f->up) {
        fs[n++] = f;
        if (f->def == blk) break;
    }
    for (int i = n - 1; i >= 0; i--) sb_printf(&b, "%s -> ", fs[i]->def->name);
    sb_printf(&b, "%s", blk->name);
    const char *s = arena_strndup(E->ar, b.s, b.n);
    free(b.s);
    return s;
}

static void exec_list(Elab *E, const Node *s);

/* Runs a block's body in a new frame; returns its value (a tuple for several). */
static Value call_block(Elab *E, const Node *blk, const Node *call, const char *scope)
{
    for (const Frame *f = E->fr; f; f = f->up)
        if (f->def == blk)
            return el_err(E, call->loc, "recursive call: %s; a block cannot call itself",
                       recursion_chain(E, blk));
    if (E->depth >= MAX_CALL_DEPTH)
        return el_err(E, call->loc, "block calls nested more than %d deep", MAX_CALL_DEPTH);
    int nav, np = block_nparams(blk);
    ArgVal *av = eval_args(E, call, &nav);
    if (!av) return VERR;
    const char **slots = arena_alloc(E->ar, (size_t)(np + 1) * sizeof *slots);
    int i = 0;
    for (const Node *p = blk->list; p; p = p->next) slots[i++] = p->name;
    Args A = {0};
    Frame fr = {.up = E->fr, .def = blk, .scope = scope, .ret = VERR};
    int ok = np <= MAX_SLOTS || (el_err(E, blk->loc, "a block takes at most %d parameters",
                                     MAX_SLOTS), 0);
    ok = ok && bind_args(E, call->name, NULL, slots, np, 0, av, nav, &A);
    free(av);
    i = 0;
    for (const Node *p = blk->list; ok && p; p = p->next, i++) {
        if (!A.given[i] && !p->lhs) {
            el_err(E, call->loc, "missing argument '%s' in call to block '%s'", p->name, blk->name);
            diag_note(E->d, blk->loc, "'%s' is defined here", blk->name);
            ok = 0;
            break;
        }
        Frame *saved = E->fr; /* a default is a constant: hyperparameters only */
        E->fr = NULL;
        Value v = A.given[i] ? A.v[i] : eval(E, p->lhs);
        E->fr = saved;
        env_set(&fr.vars, p->name, v, p->loc);
    }
    if (ok) {
        E->fr = &fr;
        E->depth++;
        exec_list(E, blk->body);
        E->depth--;
        E->fr = fr.up;
        if (!fr.returned && !E->stop) {
            el_err(E, blk->loc, "block '%s' ends without 'return'", blk->name);
            diag_note(E->d, call->loc, "called here");
        }
    }
    env_free(&fr.vars);
    return ok && fr.returned ? fr.ret : VERR;
}

static Value unknown_callee(Elab *E, const Node *n)
{
    el_err(E, n->loc, "unknown layer or block '%s'", n->name);
    if (E->fr && env_find(&E->fr->vars, n->name)) {
        diag_hint(E->d, "'%s' is a variable, not a layer or block", n->name);
        return VERR;
    }
    int nc = 0;
    const char **cands = xmalloc((size_t)(N_BUILTINS + E->nblocks + E->npresets) * sizeof *cands);
    for (int i = 0; i < N_BUILTINS; i++) cands[nc++] = BUILTINS[i]->name;
    for (int i = 0; i < E->nblocks; i++) cands[nc++] = E->blocks[i]->name;
    for (int i = 0; i < E->npresets; i++) cands[nc++] = E->presets[i].name;
    const char *near = diag_closest(n->name, cands, nc);
    /* a short name is close only one edit away: 'mean' is not 'kan' */
    if (near && strlen(n->name) < 5 && diag_edit_distance(n->name, near) > 1) near = NULL;
    free(cands);
    if (near) {
        diag_hint(E->d, "did you mean '%s'?", near);
        return VERR;
    }
    /* nothing close: what there is (the layers, then this file's presets and
       blocks), once per compile */
    if (E->listed_layers) {
        diag_hint(E->d, "the layers and blocks are listed above");
        return VERR;
    }
    E->listed_layers = 1;
    StrBuf list = {0};
    for (int i = 0; i < N_BUILTINS; i++)
        if (BUILTINS[i]->layer) sb_printf(&list, "%s%s", list.n ? ", " : "", BUILTINS[i]->name);
    for (int i = 0; i < E->npresets; i++) sb_printf(&list, ", %s", E->presets[i].name);
    diag_hint(E->d, "the layers are %s", list.s);
    if (E->nblocks) {
        list.n = 0;
        for (int i = 0; i < E->nblocks; i++) sb_printf(&list, "%s%s", i ? ", " : "", E->blocks[i]->name);
        diag_hint(E->d, "the blocks are %s", list.s);
    }
    free(list.s);
    return VERR;
}

/* name(args) or label: name(args). A label adds to the scope of every
   parameter the call makes (a block call without one adds nothing). */
static Value eval_call(Elab *E, const Node *n)
{
    const Preset *p = find_preset(E, n->name, E->npresets);
    const Node *blk = p ? NULL : find_block(E, n->name);
    const Builtin *b = p ? p->base : blk ? NULL : find_builtin(n->name);
    if (!p && !blk && !b) return unknown_callee(E, n);
    const Builtin *number = p ? NULL : number_form(b);
    if (number && !E->fr) b = number, number = NULL; /* outside a block every value is a number */
    if (n->label && b && !b->layer)
        return el_err(E, n->label->loc, "a label names parameters, but '%s' makes none", n->name);
    if (!E->fr && (blk || b->layer))
        return el_err(E, n->loc, "'%s' makes tensors: call it inside a block or the model", n->name);
    const char *scope = cur_scope(E);
    if (n->label) {
        const char *label = label_path(E, n->label);
        if (!label) return VERR;
        scope = scope_join(E, scope, label);
    }
    return blk ? call_block(E, blk, n, scope) : call_builtin(E, b, p, n, scope, number);
}

/* ======================================================================
 * statements
 * ====================================================================== */

static void assign(Elab *E, const Node *target, Value v)
{
    Frame *fr = E->fr;
    if (!env_find(&fr->vars, target->name) && env_find(&E->params, target->name)) {
        el_err(E, target->loc, "cannot assign to '%s': it is a hyperparameter", target->name);
        diag_hint(E->d, "use another name for the variable (hyperparameters change with --set)");
        v = VERR;
    }
    env_set(&fr->vars, target->name, v, target->loc);
}

static void exec_assign(Elab *E, const Node *s)
{
    Value v = eval(E, s->rhs);
    int n = node_count(s->list), have = v.k == V_TUPLE ? v.n : 1;
    if (v.k != V_ERR && n != have) {
        el_err(E, s->loc, "%d value%s assigned to %d name%s", have, have == 1 ? "" : "s", n,
            n == 1 ? "" : "s");
        v = VERR;
    }
    int i = 0;
    for (const Node *t = s->list; t; t = t->next, i++)
        assign(E, t, v.k == V_TUPLE ? v.items[i] : v);
}

static void exec_return(Elab *E, const Node *s)
{
    Frame *fr = E->fr;
    int n = node_count(s->list), i = 0;
    Value t = {V_TUPLE, n, {0}};
    t.items = arena_alloc(E->ar, (size_t)n * sizeof(Value));
    for (const Node *e = s->list; e; e = e->next, i++) {
        t.items[i] = eval(E, e);
        if (t.items[i].k == V_TUPLE) {
            el_err(E, e->loc, "cannot return several values as one; unpack them first");
            t.items[i] = VERR;
        }
    }
    fr->returned = 1;
    fr->ret = n == 1 ? t.items[0] : t;
    fr->ret_stmt = s;
}

static void exec_repeat(Elab *E, const Node *s)
{
    Value n = eval(E, s->lhs);
    if (n.k == V_ERR) return;
    if (n.k != V_INT || n.i < 0) {
        el_err(E, s->lhs->loc, "a repeat count must be an int >= 0, got %s", value_text(E, n));
        return;
    }
    for (int64_t i = 0; i < n.i && !E->fr->returned && count_step(E, s->loc); i++) {
        if (s->name) assign(E, s, vint(i));
        exec_list(E, s->body);
    }
}

static void exec_if(Elab *E, const Node *s)
{
    Value c = eval(E, s->lhs);
    if (c.k == V_ERR) return;
    if (c.k != V_BOOL) {
        el_err(E, s->lhs->loc, "an if condition must be true or false, got %s", el_kind_name(c.k));
        return;
    }
    exec_list(E, c.b ? s->body : s->els); /* els: a statement list, or one ND_IF */
}

static void exec_stmt(Elab *E, const Node *s)
{
    if (!count_step(E, s->loc)) return;
    if (E->nest >= MAX_NEST) {
        el_err(E, s->loc, "statements nested too deeply (more than %d levels)", MAX_NEST);
        E->stop = 1;
        return;
    }
    E->nest++;
    switch (s->kind) {
    case ND_ASSIGN: exec_assign(E, s); break;
    case ND_RETURN: exec_return(E, s); break;
    case ND_REPEAT: exec_repeat(E, s); break;
    case ND_IF: exec_if(E, s); break;
    default: el_err(E, s->loc, "not a statement"); break;
    }
    E->nest--;
}

static void exec_list(Elab *E, const Node *s)
{
    for (; s && !E->fr->returned && !E->stop; s = s->next) exec_stmt(E, s);
}

/* ======================================================================
 * top level: definitions, hyperparameters, overrides, the model
 * ====================================================================== */

/* Blocks and the model are found first, so they may be used before (or
   after) their definition. */
static void collect_defs(Elab *E)
{
    int nb = 0;
    for (const Node *it = E->items; it; it = it->next) nb += it->kind == ND_BLOCK;
    E->blocks = arena_alloc(E->ar, (size_t)(nb + 1) * sizeof *E->blocks);
    for (const Node *it = E->items; it; it = it->next) {
        if (it->kind == ND_MODEL) {
            if (!E->model) {
                E->model = it;
                continue;
            }
            el_err(E, it->loc, "a file holds exactly one model, but '%s' is a second one", it->name);
            diag_note(E->d, E->model->loc, "the first is '%s', here", E->model->name);
            continue;
        }
        if (it->kind != ND_BLOCK) continue;
        const Node *prev = find_block(E, it->name);
        if (prev) {
            el_err(E, it->loc, "block '%s' is defined twice", it->name);
            diag_note(E->d, prev->loc, "the first definition is here");
        } else if (find_builtin(it->name)) {
            el_err(E, it->loc, "'%s' is a builtin layer; choose another name for the block",
                it->name);
        } else {
            E->blocks[E->nblocks++] = it;
        }
        for (const Node *p = it->list; p; p = p->next)
            for (const Node *q = it->list; q != p; q = q->next)
                if (!strcmp(p->name, q->name))
                    el_err(E, p->loc, "block '%s' has two parameters named '%s'", it->name, p->name);
    }
}

/* A --set override, parsed. */
typedef struct {
    const KdlSet *set;
    DSrc src;
    Node *expr;   /* NULL if it did not parse, or does not apply */
} Override;

/* Checks each --set name and parses its value with the .kdl parser, in a
   source "--set name=value" so messages point into it. */
static Override *parse_overrides(Elab *E, const KdlSet *sets, int nsets)
{
    Override *ov = arena_alloc(E->ar, (size_t)(nsets + 1) * sizeof *ov);
    for (int i = 0; i < nsets; i++) {
        const char *name = sets[i].name ? sets[i].name : "", *val = sets[i].value ? sets[i].value : "";
        char *text = arena_printf(E->ar, "--set %s=%s", name, val);
        ov[i].set = &sets[i];
        ov[i].src = (DSrc){"<command line>", text, strlen(text)};
        Loc at_name = {&ov[i].src, 1, 7};
        int col = 7 + (int)strlen(name) + 1;
        if (!find_param_decl(E, name)) {
            if (sets[i].soft) continue;
            el_err(E, at_name, "unknown hyperparameter '%s'", name);
            int nc = 0;
            for (const Node *it = E->items; it; it = it->next) nc += it->kind == ND_PARAM;
            const char **cands = xmalloc((size_t)(nc + 1) * sizeof *cands);
            nc = 0;
            for (const Node *it = E->items; it; it = it->next)
                if (it->kind == ND_PARAM) cands[nc++] = it->name;
            const char *near = diag_closest(name, cands, nc);
            if (near) diag_hint(E->d, "did you mean '%s'?", near);
            free(cands);
            continue;
        }
        if (!*val) {
            el_err(E, (Loc){&ov[i].src, 1, col}, "--set %s= needs a value", name);
            continue;
        }
        ov[i].expr = kdl_parse_expr(E->ar, E->d, &ov[i].src, (size_t)col - 1, col);
    }
    return ov;
}

/* The override's value, converted to the declared value's kind. */
static Value apply_override(Elab *E, const Node *decl, Value def, Override *o)
{
    E->in_set = 1;
    Value v = eval(E, o->expr);
    E->in_set = 0;
    if (v.k == V_ERR || def.k == V_ERR || v.k == def.k) return v;
    if (def.k == V_FLOAT && v.k == V_INT) return vfloat((double)v.i);
    el_err(E, o->expr->loc, "hyperparameter '%s' is %s, but --set gives %s", decl->name,
        el_kind_name(def.k), el_kind_name(v.k));
    diag_note(E->d, decl->loc, "'%s' is declared here as %s", decl->name,
              value_text(E, def));
    return VERR;
}

static void define_param(Elab *E, const Node *it, Override *ov, int nsets)
{
    Var *prev = env_find(&E->params, it->name);
    if (prev) {
        el_err(E, it->loc, "hyperparameter '%s' is declared twice", it->name);
        diag_note(E->d, prev->loc, "the first declaration is here");
        return;
    }
    Value v = eval(E, it->rhs);
    Override *o = NULL;
    for (int i = 0; i < nsets; i++) /* the last --set of a name wins */
        if (ov[i].expr && !strcmp(ov[i].set->name, it->name)) o = &ov[i];
    if (o) v = apply_override(E, it, v, o);
    env_set(&E->params, it->name, v, it->loc);
}

/* The builtin a preset is made from; NULL after an error. */
static const Builtin *preset_base(Elab *E, const Node *it, const Preset **bp)
{
    const Node *call = it->rhs;
    *bp = find_preset(E, call->name, E->npresets);
    const Builtin *b = *bp ? (*bp)->base : find_builtin(call->name);
    for (int i = 0; i < E->npresets; i++)
        if (!strcmp(E->presets[i].name, it->name)) {
            el_err(E, it->loc, "layer preset '%s' is defined twice", it->name);
            diag_note(E->d, E->presets[i].loc, "the first definition is here");
            return NULL;
        }
    if (find_block(E, it->name))
        el_err(E, it->loc, "'%s' is already the name of a block", it->name);
    else if (b && b->layer)
        return b;
    else if (find_block(E, call->name))
        el_err(E, call->loc, "a layer preset is made from a builtin layer, and '%s' is a block",
            call->name);
    else if (b)
        el_err(E, call->loc, "'%s' is a function, not a layer", call->name);
    else
        unknown_callee(E, call);
    return NULL;
}

/* layer NAME = base(name = value, ...): evaluated once, here. A preset may
   take the name of its base (`layer kan = kan(grid_size = 8)`). */
static void define_preset(Elab *E, const Node *it)
{
    const Node *call = it->rhs;
    const Preset *bp;
    const Builtin *b = preset_base(E, it, &bp);
    if (!b) return;
    for (const Node *a = call->list; a; a = a->next)
        if (!a->name) {
            el_err(E, a->loc, "a layer preset takes named arguments only (name = value)");
            return;
        }
    Preset p = {.name = it->name, .base = b, .loc = it->loc};
    if (bp) {
        memcpy(p.v, bp->v, sizeof p.v);
        memcpy(p.at, bp->at, sizeof p.at);
        memcpy(p.given, bp->given, sizeof p.given);
    }
    int nav;
    ArgVal *av = eval_args(E, call, &nav);
    if (!av) return;
    Args A = {0};
    int ok = bind_args(E, call->name, b->usage, b->slots, slot_count(b), 0, av, nav, &A);
    free(av);
    if (!ok) return;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (A.given[i]) p.v[i] = A.v[i], p.at[i] = A.at[i], p.given[i] = 1;
    E->presets = xrealloc(E->presets, (size_t)(E->npresets + 1) * sizeof *E->presets);
    E->presets[E->npresets++] = p;
}

/* The shape of an input: each dim a positive int, or a list of them (spliced). */
static int input_shape(Elab *E, const Node *in, GShape *s)
{
    for (const Node *d = in->list; d; d = d->next) {
        Value v = eval(E, d);
        int n = v.k == V_LIST ? v.n : 1;
        const Value *vs = v.k == V_LIST ? v.items : &v;
        for (int i = 0; i < n; i++) {
            if (vs[i].k == V_ERR) return 0;
            if (vs[i].k != V_INT || vs[i].i < 1)
                return el_err(E, d->loc, "an input dimension must be a positive int, got %s",
                           value_text(E, vs[i])),
                       0;
            if (!el_shape_push(E, d->loc, s, vs[i].i)) return 0;
        }
    }
    return 1;
}

/* Model inputs: name: tokens[dims] (int32 ids) or real[dims]. */
static void define_input(Elab *E, Frame *fr, const Node *in)
{
    int is_tok = !strcmp(in->sval, "tokens"), id = -1;
    GShape s = {0};
    if (env_find(&fr->vars, in->name))
        el_err(E, in->loc, "two inputs named '%s'", in->name);
    else if (!is_tok && strcmp(in->sval, "real"))
        el_err(E, in->lhs->loc, "unknown input type '%s'; an input is tokens[...] or real[...]",
            in->sval);
    else if (input_shape(E, in, &s))
        id = leaf(E, in->loc, in->loc, NULL, OP_INPUT, in->name, s, is_tok ? DT_I32 : DT_REAL);
    env_set(&fr->vars, in->name, vnode(id), in->loc);
}

/* The returned values become the graph's named outputs. */
static void set_outputs(Elab *E, const Frame *fr)
{
    const Node *e = fr->ret_stmt->list;
    int n = node_count(e);
    if (n > 16) {
        el_err(E, fr->ret_stmt->loc, "a model returns at most 16 values");
        return;
    }
    for (int i = 0; i < n; i++, e = e->next) {
        Value v = n == 1 ? fr->ret : fr->ret.items[i];
        if (v.k == V_ERR) continue;
        if (v.k != V_TENSOR) {
            el_err(E, e->loc, "a model returns tensors, not %s", el_kind_name(v.k));
            continue;
        }
        char *name = e->kind == ND_VAR ? xstrdup(e->name) : xasprintf("out%d", i);
        Graph *g = E->g;
        g->outputs[g->n_outputs] = v.t;
        g->output_names[g->n_outputs++] = name;
        if (i == 0) g->output = v.t;
        if (!strcmp(name, "loss") && g->nodes[v.t].shape.nd == 0) g->loss = v.t;
    }
}

static void elab_model(Elab *E, const Node *m)
{
    Frame fr = {.def = m, .scope = "", .ret = VERR};
    for (const Node *in = m->list; in && !E->stop; in = in->next) define_input(E, &fr, in);
    E->fr = &fr;
    exec_list(E, m->body);
    E->fr = NULL;
    if (!fr.returned && !E->stop)
        el_err(E, m->loc, "model '%s' ends without 'return'", m->name);
    else if (fr.returned && !E->d->errors)
        set_outputs(E, &fr);
    env_free(&fr.vars);
}

/* ---- a check of every block and the model before anything runs ----
 * Names are resolved without running the code, so mistakes in a block that is
 * never called are found too. The check is flow-insensitive: a name is known
 * in a body if it is a parameter or input of it, is assigned or is a loop
 * variable anywhere in it, or is a hyperparameter of the file. The run reports
 * later what this cannot see (a use before the assignment); a message at the
 * same place is given once. */

static void collect_names(Env *names, const Node *s)
{
    for (; s; s = s->next) {
        if (s->kind == ND_ASSIGN)
            for (const Node *t = s->list; t; t = t->next) env_set(names, t->name, VERR, t->loc);
        if (s->kind == ND_REPEAT && s->name) env_set(names, s->name, VERR, s->loc);
        if (s->kind == ND_REPEAT || s->kind == ND_IF) {
            collect_names(names, s->body);
            collect_names(names, s->els);
        }
    }
}

static void check_expr(Elab *E, const Node *n);

static void check_label(Elab *E, const Node *n)
{
    for (; n && (n->kind == ND_MEMBER || n->kind == ND_INDEX); n = n->lhs)
        if (n->kind == ND_INDEX) check_expr(E, n->rhs);
}

static void check_expr(Elab *E, const Node *n)
{
    if (!n || E->stop || E->nest >= MAX_NEST) return; /* the run reports deep nesting */
    E->nest++;
    switch (n->kind) {
    case ND_VAR:
        if (!(E->fr && env_find(&E->fr->vars, n->name)) && !find_param_decl(E, n->name))
            unknown_var(E, n);
        break;
    case ND_CALL:
        if (!find_preset(E, n->name, E->npresets) && !find_block(E, n->name) &&
            !find_builtin(n->name))
            unknown_callee(E, n);
        check_label(E, n->label);
        for (const Node *a = n->list; a; a = a->next) check_expr(E, a->lhs);
        break;
    case ND_LIST:
        for (const Node *e = n->list; e; e = e->next) check_expr(E, e);
        break;
    case ND_MEMBER:
        member_error(E, n);
        break;
    default:
        check_expr(E, n->lhs);
        check_expr(E, n->rhs);
        break;
    }
    E->nest--;
}

static void check_stmts(Elab *E, const Node *s)
{
    if (E->nest >= MAX_NEST) return;
    E->nest++;
    for (; s && !E->stop; s = s->next) {
        check_expr(E, s->lhs);
        check_expr(E, s->rhs);
        for (const Node *e = s->kind == ND_RETURN ? s->list : NULL; e; e = e->next)
            check_expr(E, e);
        check_stmts(E, s->body);
        check_stmts(E, s->els);
    }
    E->nest--;
}

/* Checks a block or the model: defaults and input dims see hyperparameters only. */
static void check_def(Elab *E, const Node *def)
{
    Frame fr = {.def = def, .scope = ""};
    for (const Node *p = def->list; p; p = p->next) {
        if (p->kind == ND_ARG) check_expr(E, p->lhs); /* a default */
        for (const Node *d = p->kind == ND_INPUT ? p->list : NULL; d; d = d->next)
            check_expr(E, d);
        env_set(&fr.vars, p->name, VERR, p->loc);
    }
    collect_names(&fr.vars, def->body);
    E->fr = &fr;
    check_stmts(E, def->body);
    E->fr = NULL;
    env_free(&fr.vars);
}

static void elaborate(Elab *E, const KdlSet *sets, int nsets)
{
    collect_defs(E);
    Override *ov = parse_overrides(E, sets, nsets);
    for (const Node *it = E->items; it && !E->stop; it = it->next) {
        if (it->kind == ND_PARAM) define_param(E, it, ov, nsets);
        else if (it->kind == ND_LAYER) define_preset(E, it);
    }
    if (!E->model) {
        el_err(E, (Loc){E->src, 1, 1}, "no model in this file");
        diag_hint(E->d, "a file defines one 'model name(inputs) { ... return outputs }'");
        return;
    }
    for (int i = 0; i < E->nblocks && !E->stop; i++) check_def(E, E->blocks[i]);
    if (!E->stop) check_def(E, E->model);
    if (!E->stop) elab_model(E, E->model);
}

/* ======================================================================
 * the API (frontend.h)
 * ====================================================================== */

static void graph_truncate(Graph *g, int n)
{
    for (int i = n; i < g->n; i++) free(g->nodes[i].name);
    g->n = n;
}

static void params_fill(Elab *E, KdlParams *p)
{
    p->n = E->params.n;
    p->names = xcalloc((size_t)(p->n ? p->n : 1), sizeof *p->names);
    p->values = xcalloc((size_t)(p->n ? p->n : 1), sizeof *p->values);
    for (int i = 0; i < p->n; i++) {
        StrBuf b = {0};
        fmt_value(&b, E->g, E->params.v[i].v);
        p->names[i] = xstrdup(E->params.v[i].name);
        p->values[i] = b.s ? b.s : xstrdup("");
    }
}

int kdl_compile(const char *path, const char *src, size_t len, const KdlSet *sets, int nsets,
                Graph *g, KdlParams *params, FILE *diag)
{
    Diag d;
    diag_init(&d, diag);
    DSrc file = {path ? path : "<input>", src ? src : "", src ? len : 0};
    if (params) memset(params, 0, sizeof *params);
    Elab E = {.d = &d, .ar = arena_new(), .g = g, .src = &file, .n0 = g->n};
    int outputs0 = g->n_outputs;
    Node *items;
    if (!kdl_parse_file(E.ar, &d, &file, &items)) { /* bad numbers alone: go on */
        E.items = items;
        elaborate(&E, sets, nsets > 0 ? nsets : 0);
    }
    if (d.errors) {
        graph_truncate(g, E.n0);
        for (int i = outputs0; i < g->n_outputs; i++) free(g->output_names[i]);
        g->n_outputs = outputs0;
    } else {
        g->n_forward = g->n;
        if (params) params_fill(&E, params);
    }
    env_free(&E.params);
    free(E.presets);
    free(E.names.slot);
    arena_free(E.ar);
    return d.errors;
}

const char *kdl_param_get(const KdlParams *p, const char *name)
{
    for (int i = 0; p && i < p->n; i++)
        if (!strcmp(p->names[i], name)) return p->values[i];
    return NULL;
}

void kdl_params_free(KdlParams *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->names[i]);
        free(p->values[i]);
    }
    free(p->names);
    free(p->values);
    memset(p, 0, sizeof *p);
}

/* ---- preset files ---- */

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    *end = 0;
    return s;
}

int kdl_sets_load(const char *path, int soft, KdlSet **sets, int *nsets, FILE *diag)
{
    Diag d;
    diag_init(&d, diag);
    size_t len;
    char why[256];
    char *text = read_file_why(path, &len, why, sizeof why);
    if (!text) {
        diag_error(&d, (Loc){0}, "cannot read preset file '%s': %s", path, why);
        return d.errors;
    }
    char *copy = xmalloc(len + 1); /* messages echo the original lines */
    memcpy(copy, text, len + 1);
    DSrc src = {path, copy, len};
    int line = 1;
    for (char *s = text, *end = text + len; s < end; line++) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *eol = nl ? nl : end, *next = nl ? nl + 1 : end;
        char *t = trim(s, eol);
        char *eq = strchr(t, '=');
        if (*t && *t != '#' && (!eq || eq == t)) {
            diag_error(&d, (Loc){&src, line, (int)(t - s) + 1},
                       "expected 'name=value' (a hyperparameter and its new value)");
        } else if (*t && *t != '#') {
            char *name = trim(t, eq), *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
            *sets = xrealloc(*sets, (size_t)(*nsets + 1) * sizeof **sets);
            (*sets)[(*nsets)++] = (KdlSet){xstrdup(name), xstrdup(value), soft};
        }
        s = next;
    }
    free(copy);
    free(text);
    return d.errors;
}

void kdl_sets_free(KdlSet *sets, int nsets)
{
    for (int i = 0; i < nsets; i++) {
        free((char *)sets[i].name);
        free((char *)sets[i].value);
    }
    free(sets);
}
