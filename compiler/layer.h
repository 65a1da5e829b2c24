/* layer.h: what a builtin layer of the language sees of the elaborator.
 *
 * A builtin layer (`layernorm(x, eps = 1e-5)`, `attention(qkv, heads)`, ...)
 * lives with its op family in ops/<family>.c: a function that checks its
 * arguments (el_arg_*: located errors naming the argument), makes its
 * parameters and buffers (el_param, el_buffer: named in the current scope, as
 * the PyTorch state_dict names them) and emits its op (el_emit), plus a
 * Builtin row (name, usage, argument slots). ops/ops.def lists the layers as
 * LAYER(name) in the order the language shows them (hints, --help of errors);
 * compiler/elaborate.c binds the arguments and calls the function.
 */
#ifndef KANC_LAYER_H
#define KANC_LAYER_H

#include <stdint.h>

#include "ast.h"
#include "graph.h"

#define LAYER_MAX_SLOTS 16 /* arguments of a builtin or a block */

/* a value of the language */
typedef enum { V_ERR, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_TENSOR, V_TUPLE } VKind;

typedef struct Value Value;
struct Value {
    VKind k;
    int n; /* V_LIST, V_TUPLE: number of items */
    union {
        int64_t i;
        double f;
        int b;
        const char *s;
        int t; /* V_TENSOR: graph node id */
        Value *items;
    };
};

static const Value VERR = {V_ERR, 0, {0}};

static inline Value vint(int64_t i) { Value v = {V_INT, 0, {0}}; v.i = i; return v; }
/* a tensor value; an error for id < 0 (a node that could not be made) */
static inline Value vnode(int id) { Value v = {V_TENSOR, 0, {0}}; v.t = id; return id < 0 ? VERR : v; }
static inline int is_num(Value v) { return v.k == V_INT || v.k == V_FLOAT; }
static inline double num(Value v) { return v.k == V_INT ? (double)v.i : v.f; }

typedef struct Elab Elab;
typedef struct Builtin Builtin;

/* A call's arguments, bound to the builtin's slots. */
typedef struct Args {
    const Builtin *b;
    const char *callee;  /* as written (a preset's name, say) */
    Loc call;            /* the callee name */
    Loc site;            /* the label if any, else the callee: where names come from */
    const char *scope;   /* prefix of the parameter names */
    Value v[LAYER_MAX_SLOTS];
    Loc at[LAYER_MAX_SLOTS];
    int given[LAYER_MAX_SLOTS];
    Value *rest;         /* variadic arguments after the slots */
    Loc *rest_at;
    int nrest;
} Args;

typedef Value (*BuiltinFn)(Elab *E, Args *A);

struct Builtin {
    const char *name;
    BuiltinFn fn;
    int nreq;            /* the first nreq slots must be given */
    int variadic;        /* positional arguments beyond the slots go to rest */
    int layer;           /* makes graph nodes: needs a block/model, may have a label */
    const char *usage;
    const char *slots[LAYER_MAX_SLOTS];
};

/* the graph being built, the elaboration's arena (strings that live as long as it) */
Graph *el_graph(Elab *E);
Arena *el_arena(Elab *E);

/* Errors (each reported once per place and message); el_err returns VERR. */
Value el_err(Elab *E, Loc at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
Loc el_arg_loc(const Args *A, int i);
/* "argument 'p' of 'dropout' must be in [0, 1), got 1.5"; returns 0 */
int el_bad_arg(Elab *E, const Args *A, int i, const char *why);
const char *el_kind_name(VKind k);
const char *el_shape_text(Elab *E, const GShape *s);

/* Argument i as a tensor (dtype DT_REAL, DT_I32 or -1 for any), a real tensor
   of at least min_rank dimensions, an int in [lo, hi], a number, a probability
   in [0, 1), a bool; def when not given. 1, or 0 after reporting the error. */
int el_arg_tensor(Elab *E, const Args *A, int i, int dtype, int *id);
int el_arg_real(Elab *E, const Args *A, int i, int min_rank, int *id);
int el_arg_int(Elab *E, Args *A, int i, int64_t def, int64_t lo, int64_t hi, int64_t *out);
int el_arg_num(Elab *E, Args *A, int i, double def, double *out);
int el_arg_prob(Elab *E, Args *A, int i, double *out);
int el_arg_bool(Elab *E, Args *A, int i, int def, int *out);

/* A parameter or buffer named <scope>.<local> (init, init_a and decay as
   GNode's); its node id, or -1 after reporting the error (a duplicate name,
   a bad shape). */
int el_param(Elab *E, Args *A, const char *local, GShape sh, GInit init, double a, int decay);
int el_buffer(Elab *E, Args *A, const char *local, GShape sh, GInit init);
/* Weight tying: the parameter that argument i names (a string, the full
   state_dict name of a parameter made earlier), used again with shape sh. Its
   node id (the gradients of both uses add up in it; its name, init and decay
   stay the first use's), or -1 after an error naming both places (no such
   parameter, a buffer, another shape). what: "weight". */
int el_tied_param(Elab *E, Args *A, int i, GShape sh, const char *what);
/* An op node at `at`, named by its scope; its id, or -1 after an error. */
int el_emit(Elab *E, Loc at, const char *scope, GOp op, const int *in, int nin, GShape sh, const GAttr *attr);

GShape el_tshape(const Elab *E, int id);
/* the shape is usable (positive dimensions, at most 2^40 elements); 0 after an error */
int el_shape_ok(Elab *E, Loc at, const GShape *s);
/* s + [d]; 0 after an error (too many dimensions) */
int el_shape_push(Elab *E, Loc at, GShape *s, int64_t d);
/* s with its last dimension replaced by d */
static inline GShape el_with_last(GShape s, int64_t d)
{
    s.d[s.nd - 1] = d;
    return s;
}

#endif
