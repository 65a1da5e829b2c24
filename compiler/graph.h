/* graph.h: the static dataflow graph (the compiler's IR).
 *
 * A graph is an array of nodes in a valid execution order (every input of a
 * node comes before it). Each node produces at most one tensor value, plus an
 * optional auxiliary tensor saved for its backward rule (layernorm's mean and
 * rstd, attention's probabilities, cross-entropy's log-sum-exp). Parameters
 * and buffers are leaf nodes that carry their state_dict name; their storage
 * lives outside the activation arena (see plan.h).
 *
 * Shapes are fully static. Every float tensor is "real" (float32 in a normal
 * run, float64 when the tests run the CPU kernels in double precision); token
 * ids are int32.
 */
#ifndef KANC_GRAPH_H
#define KANC_GRAPH_H

#include <stdint.h>
#include <stdio.h>

#define G_MAXDIM 6
#define G_MAXIN 8

typedef struct {
    int nd;
    int64_t d[G_MAXDIM];
} GShape;

typedef enum { DT_REAL, DT_I32 } GDtype;

/* The ops, one per line of ops/ops.def (their inputs, shapes and pieces there;
   their properties in ops/ops.h). */
typedef enum {
#define OP(kind, ENUM, name, family, flags) OP_##ENUM,
#include "ops.def"
    OP__COUNT
} GOp;

/* activation kinds: OP_KAN's base activation (NONE .. RELU) and OP_ACT_BWD
   (every kind: the unary ops of ops/elementwise.c; RECIP is 1/x, for c / x) */
typedef enum {
    ACT_NONE, ACT_SILU, ACT_GELU, ACT_RELU,
    ACT_TANH, ACT_SIGMOID, ACT_EXP, ACT_LOG, ACT_ABS, ACT_RECIP
} GAct;

/* how a parameter or buffer is initialised when training from scratch */
typedef enum {
    INIT_NONE,            /* must be loaded */
    INIT_ZEROS,
    INIT_ONES,
    INIT_NORMAL,          /* N(0, init_a) */
    INIT_KAIMING_UNIFORM, /* torch kaiming_uniform_(a = init_a), fan_in = last dim */
    INIT_UNIFORM,         /* U(-init_a, init_a) (torch's nn.Linear bias: init_a = 1/sqrt(fan_in)) */
    INIT_TRUNC_NORMAL,    /* N(0, init_a) truncated to [-2, 2] (torch's trunc_normal_ defaults) */
    INIT_KAN_SPLINE,      /* least squares of noise scale init_a (needs the layer's grid) */
    INIT_KAN_GRID,        /* a KAN basis grid: attr basis, grid_size, spline_order; range init_a..init_b */
    INIT_TRIL,            /* causal mask: ones on and below the diagonal */
} GInit;

/* A node's attributes: I(type, name) integer and R(type, name) real fields.
   One list, so that the plan hash (runtime/io/artifact.c) covers every field. */
#define GATTR_FIELDS(I, R)                                                       \
    I(int, heads) I(int, causal)             /* attention; rope: rotated groups */ \
    I(int, grid_size) I(int, spline_order)   /* kan: the basis' G and k */       \
    I(int, has_scaler)                       /* kan: standalone spline_scaler */ \
    I(int, no_base)                          /* kan: no base branch (no base_weight input) */ \
    I(int, has_bias)                         /* linear */                        \
    I(GAct, act)                             /* kan base activation; act_bwd */  \
    I(int64_t, start) I(int64_t, len)        /* slice; rope: len = rotated columns */ \
    I(int, acc)                              /* backward: last input is the partial sum */ \
    I(int, basis)                            /* kan: KanBasisId (ops/kan_basis.h) */ \
    R(double, p)                             /* dropout probability (also attention's) */ \
    R(double, eps)                           /* layernorm */                     \
    R(double, scale)                         /* scale, acc */                    \
    R(double, shift)                         /* scale: y = scale x + shift */    \
    R(double, reg_activation) R(double, reg_entropy) /* kan_reg: the terms' weights */ \
    R(double, rope_base)                     /* rope: the frequencies' base (10000) */

typedef struct {
#define GATTR_FIELD(type, name) type name;
    GATTR_FIELDS(GATTR_FIELD, GATTR_FIELD)
#undef GATTR_FIELD
} GAttr;

typedef struct GNode {
    int id;
    GOp op;
    int nin;
    int in[G_MAXIN];
    GShape shape;       /* of the value (nd = 0: scalar; op with no value: numel 0) */
    GDtype dtype;
    GShape aux;         /* auxiliary saved tensor (nd = 0 and aux_numel = 0: none) */
    int64_t aux_numel;
    GAttr a;
    char *name;         /* leaves: full state_dict / input name; others: scope label or NULL */
    int fwd;            /* backward node: the forward node it differentiates (-1 otherwise) */
    /* leaves */
    int trainable;      /* OP_PARAM */
    int decay;          /* OP_PARAM: AdamW weight decay applies */
    int optional;       /* OP_BUFFER: may be absent from a loaded file (derived from config) */
    GInit init;
    double init_a, init_b;
    int init_ref;       /* INIT_KAN_SPLINE: the grid buffer node */
    int grad;           /* OP_PARAM: -1 (gradients live in the gradient area) */
    int src_line, src_col; /* where in the .kdl this node was made (0: unknown) */
    /* backward nodes (made by autodiff only): >= 0 when the result is that
       parameter's gradient, accumulated in the gradient area (no value) */
    int gparam;
} GNode;

typedef struct {
    GNode *nodes;
    int n, cap;
    int n_forward;      /* nodes [0, n_forward) are the forward graph */
    int loss;           /* node id of the scalar loss, or -1 */
    int output;         /* node id of the main output (logits / y), or -1 */
    /* named outputs of the model, in declaration order */
    int n_outputs;
    int outputs[16];
    char *output_names[16];
    /* after autodiff: grad_of[i] = the node holding d(output)/d(node i) for
       forward nodes (-1 when none is computed); NULL before */
    int *grad_of;
    /* tied weights: the state_dict names a tie stands in for (the head's
       "lm_head.weight"), each with the parameter it uses; loaders accept
       them, checkpoints store only the parameter's own name */
    int n_alias;
    char **alias_name;
    int *alias_param;
} Graph;

void graph_init(Graph *g);
void graph_free(Graph *g);
/* Appends a node (copied); returns its id. Inputs must already exist. */
int graph_add(Graph *g, const GNode *proto);
/* Convenience: a node of op with the given inputs, shape from `shape`. */
int graph_op(Graph *g, GOp op, const int *in, int nin, GShape shape, const GAttr *attr);
int graph_find(const Graph *g, GOp op, const char *name);
/* records that state_dict name `name` is parameter node `param` (a tie) */
void graph_add_alias(Graph *g, const char *name, int param);
/* the parameter node a tied name stands for, -1 if name is no alias */
int graph_alias_param(const Graph *g, const char *name);
/* The vocabulary an int32 input's ids index: the rows of the embedding it
   feeds, or the logits' last dimension of the cross-entropy it is the targets
   of; -1 when neither. */
int64_t graph_vocab(const Graph *g, int node); /* leaf by name, -1 if none */

GShape shape_make(int nd, const int64_t *d);
GShape shape_of(int nd, ...); /* shape_of(2, (int64_t)3, (int64_t)4) */
int64_t shape_numel(const GShape *s);
int shape_eq(const GShape *a, const GShape *b);
/* 1 if b equals the trailing dims of a (so b broadcasts over a's leading dims) */
int shape_is_suffix(const GShape *a, const GShape *b);
/* "[3, 4, 5]" into buf; returns buf */
const char *shape_str(const GShape *s, char *buf, size_t n);
int64_t shape_last(const GShape *s);
int64_t shape_rows(const GShape *s); /* numel / last dim */

const char *op_name(GOp op);
void graph_dump(const Graph *g, FILE *f);

#endif
