/* kan.c: the fused KAN layer (efficient-kan's KANLinear; DESIGN.md 4). */
#include <string.h>
#include <math.h>
#include <stdio.h>

#include "autodiff.h"
#include "cpu_kernels.h"
#include "kan_basis.h"
#include "kan_op.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

static const GNode *kan_forward(const Graph *g, const GNode *n)
{
    return n->fwd >= 0 ? &g->nodes[n->fwd] : n;
}

/* one product of K = in * (nf + base) columns, forward and for each backward product */
/* the regularization loss reads only the spline weights: no matrix product, no workspace */
static int is_kan_reg(const GNode *n) { return n->op == OP_KAN_REG || n->op == OP_KAN_REG_BWD; }

static double kan_flops(const Graph *g, const GNode *n)
{
    if (is_kan_reg(n)) return 0;
    const GNode *f = kan_forward(g, n);
    int S = kan_basis(f->a.basis)->nf(f->a.grid_size, f->a.spline_order) + !f->a.no_base;
    return 2 * (double)shape_rows(&f->shape) * (double)shape_last(&g->nodes[f->in[0]].shape) * S *
           (double)shape_last(&f->shape);
}

static int64_t kan_cpu_workspace(const Graph *g, const GNode *n, size_t real_size)
{
    if (is_kan_reg(n)) return 0;
    const GNode *k = kan_forward(g, n);
    const GShape *xs = &g->nodes[k->in[0]].shape;
    int64_t N = shape_rows(xs), in = shape_last(xs), out = shape_last(&k->shape);
    int nf = kan_basis(k->a.basis)->nf(k->a.grid_size, k->a.spline_order);
    return real_size == 8 ? kan_workspace_elems_f64(N, in, out, nf) : kan_workspace_elems_f32(N, in, out, nf);
}

/* the regularization loss: |W| and a sum per spline weight, its gradient
   sign(W) times a coefficient; the layer's basis rows are not counted (about
   in (k + 1)^2 per row against the product's 2 in out (nf + base)) */
static double kan_arith(const Graph *g, const GNode *n)
{
    return is_kan_reg(n) ? 2 * (double)shape_numel(&g->nodes[n->in[n->op == OP_KAN_REG ? 0 : 1]].shape) : 0;
}

const OpFamily op_family_kan = {.name = "kan", .flops = kan_flops, .elementwise_flops = kan_arith,
                                .cpu_workspace = kan_cpu_workspace};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

#define KAN_SLOTS                                                                                            \
    "grid_size", "spline_order", "grid_range", "scale_noise", "scale_base", "scale_spline", "scaler", "base", \
        "basis", "degree", "num_grids", "use_layernorm", "use_base_update", "spline_weight_init_scale"
#define KAN_USAGE                                                                                            \
    "basis = \"bspline\", ...): bspline: grid_size = 5, spline_order = 3, grid_range = [-1, 1], "            \
    "scale_noise = 0.1, scale_base = 1.0, scale_spline = 1.0, scaler = true, base = \"silu\"; "               \
    "chebyshev: degree = 4; rbf: num_grids = 8, grid_range = [-2, 2], base = \"silu\", "                      \
    "use_layernorm = true, use_base_update = true, spline_weight_init_scale = 0.1"

/* the option slots (2 = the first after x and widths/out) */
enum {
    KO_GRID_SIZE = 2, KO_SPLINE_ORDER, KO_GRID_RANGE, KO_SCALE_NOISE, KO_SCALE_BASE, KO_SCALE_SPLINE,
    KO_SCALER, KO_BASE, KO_BASIS, KO_DEGREE, KO_NUM_GRIDS, KO_USE_LAYERNORM, KO_USE_BASE_UPDATE,
    KO_INIT_SCALE, KO_END
};

/* which options each family takes (bit s: slot s); basis itself is everyone's */
static unsigned kan_family_slots(KanBasisId b)
{
#define KO(s) (1u << (s))
    switch (b) {
    case KAN_BASIS_CHEBYSHEV: return KO(KO_DEGREE);
    case KAN_BASIS_RBF:
        return KO(KO_GRID_RANGE) | KO(KO_BASE) | KO(KO_NUM_GRIDS) | KO(KO_USE_LAYERNORM) |
               KO(KO_USE_BASE_UPDATE) | KO(KO_INIT_SCALE);
    default:
        return KO(KO_GRID_SIZE) | KO(KO_SPLINE_ORDER) | KO(KO_GRID_RANGE) | KO(KO_SCALE_NOISE) |
               KO(KO_SCALE_BASE) | KO(KO_SCALE_SPLINE) | KO(KO_SCALER) | KO(KO_BASE);
    }
#undef KO
}

/* The options shared by kan() and kan_linear(): the basis family and its own. */
typedef struct {
    KanBasisId basis;
    int64_t G, k;               /* GAttr grid_size, spline_order: (G, k), (degree, 0), (num_grids, 0) */
    double lo, hi;              /* grid_range */
    double noise, sbase, sspline; /* bspline inits */
    int scaler;                 /* bspline */
    GAct act;                   /* bspline, rbf: the base branch's activation */
    int layernorm, base_update; /* rbf */
    double init_scale;          /* rbf: spline_linear.weight's std */
} KanOpts;

static int arg_grid_range(Elab *E, Args *A, int i, double dlo, double dhi, double *lo, double *hi)
{
    *lo = dlo, *hi = dhi;
    if (!A->given[i]) return 1;
    Value v = A->v[i];
    if (v.k != V_LIST || v.n != 2 || !is_num(v.items[0]) || !is_num(v.items[1]))
        return el_bad_arg(E, A, i, "must be a list of two numbers [lo, hi]");
    *lo = num(v.items[0]);
    *hi = num(v.items[1]);
    return *lo < *hi ? 1 : el_bad_arg(E, A, i, "must have lo < hi");
}

static int arg_act(Elab *E, Args *A, int i, GAct *act)
{
    static const struct {
        const char *name;
        GAct act;
    } acts[] = {{"silu", ACT_SILU}, {"gelu", ACT_GELU}, {"relu", ACT_RELU}, {"none", ACT_NONE}};
    *act = ACT_SILU;
    if (!A->given[i]) return 1;
    for (size_t j = 0; A->v[i].k == V_STR && j < sizeof acts / sizeof acts[0]; j++)
        if (!strcmp(A->v[i].s, acts[j].name)) return *act = acts[j].act, 1;
    return el_bad_arg(E, A, i, "must be \"silu\", \"gelu\", \"relu\" or \"none\"");
}

static int arg_basis(Elab *E, Args *A, int i, KanBasisId *b)
{
    *b = KAN_BASIS_BSPLINE;
    if (!A->given[i]) return 1;
    for (int j = 0; A->v[i].k == V_STR && j < KAN_N_BASES; j++)
        if (!strcmp(A->v[i].s, kan_basis(j)->name)) return *b = (KanBasisId)j, 1;
    return el_bad_arg(E, A, i, "must be \"bspline\", \"chebyshev\" or \"rbf\"");
}

static int kan_opts(Elab *E, Args *A, KanOpts *o)
{
    memset(o, 0, sizeof *o);
    if (!arg_basis(E, A, KO_BASIS, &o->basis)) return 0;
    const KanBasis *b = kan_basis(o->basis);
    unsigned mine = kan_family_slots(o->basis);
    for (int s = KO_GRID_SIZE; s < KO_END; s++)
        if (s != KO_BASIS && A->given[s] && !(mine & (1u << s))) {
            char why[160];
            snprintf(why, sizeof why, "is not an option of basis \"%s\" (see kan()'s options for each basis)",
                     b->name);
            return el_bad_arg(E, A, s, why);
        }
    int range_slot = KO_GRID_RANGE;
    switch (o->basis) {
    case KAN_BASIS_CHEBYSHEV:
        range_slot = KO_DEGREE;
        if (!el_arg_int(E, A, KO_DEGREE, 4, 0, 64, &o->G)) return 0;
        o->lo = -1, o->hi = 1; /* tanh's range: no grid to place */
        break;
    case KAN_BASIS_RBF:
        if (!el_arg_int(E, A, KO_NUM_GRIDS, 8, 2, 1 << 16, &o->G) ||
            !arg_grid_range(E, A, KO_GRID_RANGE, -2, 2, &o->lo, &o->hi) || !arg_act(E, A, KO_BASE, &o->act) ||
            !el_arg_bool(E, A, KO_USE_LAYERNORM, 1, &o->layernorm) ||
            !el_arg_bool(E, A, KO_USE_BASE_UPDATE, 1, &o->base_update) ||
            !el_arg_num(E, A, KO_INIT_SCALE, 0.1, &o->init_scale))
            return 0;
        if (!(o->init_scale >= 0)) return el_bad_arg(E, A, KO_INIT_SCALE, "must not be negative");
        break;
    default:
        if (!el_arg_int(E, A, KO_GRID_SIZE, 5, 1, 1 << 16, &o->G) ||
            !el_arg_int(E, A, KO_SPLINE_ORDER, 3, 0, 16, &o->k) ||
            !arg_grid_range(E, A, KO_GRID_RANGE, -1, 1, &o->lo, &o->hi) ||
            !el_arg_num(E, A, KO_SCALE_NOISE, 0.1, &o->noise) || !el_arg_num(E, A, KO_SCALE_BASE, 1.0, &o->sbase) ||
            !el_arg_num(E, A, KO_SCALE_SPLINE, 1.0, &o->sspline) || !el_arg_bool(E, A, KO_SCALER, 1, &o->scaler) ||
            !arg_act(E, A, KO_BASE, &o->act))
            return 0;
        if (!(o->noise >= 0)) return el_bad_arg(E, A, KO_SCALE_NOISE, "must not be negative");
    }
    const char *why = b->check_options((int)o->G, (int)o->k, o->lo, o->hi);
    return why ? el_bad_arg(E, A, range_slot, why) : 1;
}

/* the layer's grid buffer (KAN_GRID init over [lo, hi]): [in, len], or [len] when shared */
static int kan_grid_buffer(Elab *E, Args *A, const KanOpts *o, const char *name, int64_t in)
{
    const KanBasis *b = kan_basis(o->basis);
    int64_t len = b->grid_len((int)o->G, (int)o->k);
    int grid = el_buffer(E, A, name, b->shared_grid ? shape_of(1, len) : shape_of(2, in, len), INIT_KAN_GRID);
    if (grid < 0) return -1;
    GNode *gn = &el_graph(E)->nodes[grid];
    gn->init_a = o->lo, gn->init_b = o->hi;
    gn->a.grid_size = (int)o->G, gn->a.spline_order = (int)o->k, gn->a.basis = o->basis;
    return grid;
}

static const char *kan_name(Elab *E, const char *prefix, const char *local)
{
    return arena_printf(el_arena(E), "%s%s", prefix, local);
}

/* One efficient-kan KANLinear: buffer grid, then base_weight, spline_weight,
   spline_scaler (the order and names of its state_dict), then the op. */
static int kan_one_bspline(Elab *E, Args *A, const KanOpts *o, int x, int64_t out, const char *prefix)
{
    GShape xs = el_tshape(E, x);
    int64_t in = shape_last(&xs), G = o->G, k = o->k;
    const KanBasis *b = kan_basis(o->basis);
    int grid = kan_grid_buffer(E, A, o, kan_name(E, prefix, "grid"), in);
    if (grid < 0) return -1;
    int base = el_param(E, A, kan_name(E, prefix, "base_weight"), shape_of(2, out, in), INIT_KAIMING_UNIFORM,
                        sqrt(5.0) * o->sbase, 1);
    int spline = base < 0 ? -1
                          : el_param(E, A, kan_name(E, prefix, "spline_weight"),
                                     shape_of(3, out, in, (int64_t)b->nf((int)G, (int)k)), INIT_KAN_SPLINE, o->noise, 1);
    if (spline < 0) return -1;
    GNode *sn = &el_graph(E)->nodes[spline];
    sn->init_ref = grid;
    sn->a.grid_size = (int)G, sn->a.spline_order = (int)k, sn->a.basis = o->basis;
    int scaler = o->scaler ? el_param(E, A, kan_name(E, prefix, "spline_scaler"), shape_of(2, out, in),
                                      INIT_KAIMING_UNIFORM, sqrt(5.0) * o->sspline, 1)
                           : -2;
    if (scaler == -1) return -1;
    GAttr at = {.grid_size = (int)G, .spline_order = (int)k, .has_scaler = o->scaler, .act = o->act, .basis = o->basis};
    return el_emit(E, A->call, A->scope, OP_KAN, (int[]){x, grid, base, spline, scaler}, o->scaler ? 5 : 4,
                   el_with_last(xs, out), &at);
}

/* One ChebyKANLayer: cheby_coeffs [in, out, degree + 1] ~ N(0, 1/(in (degree+1))),
   buffer arange = 0 .. degree (the op's grid); no base branch, no scaler. */
static int kan_one_chebyshev(Elab *E, Args *A, const KanOpts *o, int x, int64_t out, const char *prefix)
{
    GShape xs = el_tshape(E, x);
    int64_t in = shape_last(&xs), nf = o->G + 1;
    int coeffs = el_param(E, A, kan_name(E, prefix, "cheby_coeffs"), shape_of(3, in, out, nf), INIT_NORMAL,
                          1.0 / ((double)in * (double)nf), 1);
    int arange = coeffs < 0 ? -1 : kan_grid_buffer(E, A, o, kan_name(E, prefix, "arange"), in);
    if (arange < 0) return -1;
    GAttr at = {.grid_size = (int)o->G, .no_base = 1, .act = ACT_NONE, .basis = o->basis};
    return el_emit(E, A->call, A->scope, OP_KAN, (int[]){x, arange, coeffs}, 3, el_with_last(xs, out), &at);
}

/* the op of a base activation (-1: the identity) */
static GOp act_op(GAct a) { return a == ACT_SILU ? OP_SILU : a == ACT_GELU ? OP_GELU : a == ACT_RELU ? OP_RELU : -1; }

/* One FastKANLayer: u = layernorm(x) (optional), y = kan op on u with the
   shared rbf.grid and spline_linear.weight [out, in * num_grids] (its columns
   in the op's (input, function) order), plus base_linear(act(x)) with a bias
   (optional). The LayerNorm and the base branch are ordinary nodes beside the
   fused op; every trainable parameter has weight decay (FastKAN's are all
   KAN-layer parameters), none the frozen grid. */
static int kan_one_rbf(Elab *E, Args *A, const KanOpts *o, int x, int64_t out, const char *prefix)
{
    GShape xs = el_tshape(E, x);
    int64_t in = shape_last(&xs), G = o->G;
    int u = x;
    if (o->layernorm) {
        if (in < 2)
            return el_err(E, A->call, "'%s': FastKAN's LayerNorm needs more than one input (x has %lld); "
                          "give use_layernorm = false", A->callee, (long long)in), -1;
        int w = el_param(E, A, kan_name(E, prefix, "layernorm.weight"), shape_of(1, in), INIT_ONES, 0, 1);
        int b = w < 0 ? -1 : el_param(E, A, kan_name(E, prefix, "layernorm.bias"), shape_of(1, in), INIT_ZEROS, 0, 1);
        if (b < 0) return -1;
        GAttr ln = {.eps = 1e-5};
        u = el_emit(E, A->call, A->scope, OP_LAYERNORM, (int[]){x, w, b}, 3, xs, &ln);
        if (u < 0) return -1;
        el_graph(E)->nodes[u].aux = shape_of(2, shape_rows(&xs), (int64_t)2);
        el_graph(E)->nodes[u].aux_numel = shape_rows(&xs) * 2;
    }
    int grid = kan_grid_buffer(E, A, o, kan_name(E, prefix, "rbf.grid"), in);
    int spline = grid < 0 ? -1
                          : el_param(E, A, kan_name(E, prefix, "spline_linear.weight"), shape_of(2, out, in * G),
                                     INIT_TRUNC_NORMAL, o->init_scale, 1);
    if (spline < 0) return -1;
    GAttr at = {.grid_size = (int)G, .no_base = 1, .act = ACT_NONE, .basis = o->basis};
    int y = el_emit(E, A->call, A->scope, OP_KAN, (int[]){u, grid, spline}, 3, el_with_last(xs, out), &at);
    if (y < 0 || !o->base_update) return y;
    int w = el_param(E, A, kan_name(E, prefix, "base_linear.weight"), shape_of(2, out, in), INIT_KAIMING_UNIFORM,
                     sqrt(5.0), 1);
    int b = w < 0 ? -1
                  : el_param(E, A, kan_name(E, prefix, "base_linear.bias"), shape_of(1, out), INIT_UNIFORM,
                             1 / sqrt((double)in), 1);
    if (b < 0) return -1;
    int h = act_op(o->act) < 0 ? x : el_emit(E, A->call, A->scope, act_op(o->act), &x, 1, xs, NULL);
    GAttr lin = {.has_bias = 1};
    int base = h < 0 ? -1 : el_emit(E, A->call, A->scope, OP_LINEAR, (int[]){h, w, b}, 3, el_with_last(xs, out), &lin);
    return base < 0 ? -1 : el_emit(E, A->call, A->scope, OP_ADD, (int[]){y, base}, 2, el_with_last(xs, out), NULL);
}

/* one layer of the family o->basis, its state named prefix + the upstream's local names */
static int kan_one(Elab *E, Args *A, const KanOpts *o, int x, int64_t out, const char *prefix)
{
    switch (o->basis) {
    case KAN_BASIS_CHEBYSHEV: return kan_one_chebyshev(E, A, o, x, out, prefix);
    case KAN_BASIS_RBF: return kan_one_rbf(E, A, o, x, out, prefix);
    default: return kan_one_bspline(E, A, o, x, out, prefix);
    }
}

/* kan(x, widths): efficient-kan KAN([in] + widths), layers named layers.<l>.* */
static Value L_kan(Elab *E, Args *A)
{
    int x;
    KanOpts o;
    if (!el_arg_real(E, A, 0, 1, &x) || !kan_opts(E, A, &o)) return VERR;
    Value w = A->v[1];
    int n = w.k == V_LIST ? w.n : 1;
    const Value *ws = w.k == V_LIST ? w.items : &w;
    if (n == 0) return el_bad_arg(E, A, 1, "must not be empty"), VERR;
    for (int l = 0; l < n; l++)
        if (ws[l].k != V_INT || ws[l].i < 1)
            return el_bad_arg(E, A, 1, "must be a positive int or a list of positive ints"), VERR;
    for (int l = 0; l < n && x >= 0; l++)
        x = kan_one(E, A, &o, x, ws[l].i, arena_printf(el_arena(E), "layers.%d.", l));
    return vnode(x);
}

/* kan_linear(x, out): one KANLinear named directly in the scope. */
static Value L_kan_linear(Elab *E, Args *A)
{
    int x;
    int64_t out;
    KanOpts o;
    if (!el_arg_real(E, A, 0, 1, &x) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &out) || !kan_opts(E, A, &o))
        return VERR;
    return vnode(kan_one(E, A, &o, x, out, ""));
}

const Builtin layer_kan = {"kan", L_kan, 2, 0, 1, "kan(x, widths, " KAN_USAGE, {"x", "widths", KAN_SLOTS}};
_Static_assert(KO_END <= LAYER_MAX_SLOTS, "kan()'s options fit the builtin's slots");
const Builtin layer_kan_linear = {
    "kan_linear", L_kan_linear, 2, 0, 1, "kan_linear(x, out, " KAN_USAGE, {"x", "out", KAN_SLOTS}};

/* kan_regularization(activation = 1.0, entropy = 1.0): efficient-kan's
   KAN.regularization_loss, summed over every KAN layer made before the call:
   per layer a * sum(l) + e * (-sum(p log p)), l = mean |spline_weight| over
   its last axis, p = l / sum(l). A scalar, to add to a loss. */
static Value L_kan_regularization(Elab *E, Args *A)
{
    double act, ent;
    if (!el_arg_num(E, A, 0, 1.0, &act) || !el_arg_num(E, A, 1, 1.0, &ent)) return VERR;
    int total = -1, n = el_graph(E)->n;
    for (int i = 0; i < n; i++) {
        const GNode *k = &el_graph(E)->nodes[i];
        if (k->op != OP_KAN) continue;
        if (k->a.basis != KAN_BASIS_BSPLINE)
            return el_err(E, A->call,
                          "'%s': efficient-kan's regularization loss is defined for B-spline layers; "
                          "'%s' has basis \"%s\"",
                          A->callee, el_graph(E)->nodes[k->in[1]].name, kan_basis(k->a.basis)->name);
        int w = k->in[kan_in_spline(&k->a)]; /* spline_weight */
        GAttr at = {.reg_activation = act, .reg_entropy = ent};
        int r = el_emit(E, A->call, A->scope, OP_KAN_REG, &w, 1, (GShape){0}, &at);
        if (r < 0) return VERR;
        el_graph(E)->nodes[r].aux = shape_of(1, (int64_t)2);
        el_graph(E)->nodes[r].aux_numel = 2;
        total = total < 0 ? r : el_emit(E, A->call, A->scope, OP_ADD, (int[]){total, r}, 2, (GShape){0}, NULL);
        if (total < 0) return VERR;
    }
    if (total < 0)
        return el_err(E, A->call, "'%s': there is no KAN layer before this call to regularize", A->callee);
    return vnode(total);
}

const Builtin layer_kan_regularization = {"kan_regularization",
                                          L_kan_regularization,
                                          0,
                                          0,
                                          1,
                                          "kan_regularization(activation = 1.0, entropy = 1.0)",
                                          {"activation", "entropy"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* both backward nodes take (dy, x, grid, base?, spline, scaler?): dy, then the op's inputs */
void op_vjp_kan(AdCtx *ad, const GNode *n, int dy)
{
    GAttr a = n->a;
    a.acc = 0;
    int kin[G_MAXIN] = {dy};
    for (int j = 0; j < n->nin; j++) kin[1 + j] = n->in[j];
    int nk = 1 + n->nin, b = kan_in_base(&n->a), sp = n->in[kan_in_spline(&n->a)];
    /* the weight gradient node writes every parameter's; it stands for the base (or the spline) */
    int w = b >= 0 ? n->in[b] : sp;
    if (ad_wants(ad, w)) ad_contribute(ad, w, OP_KAN_BWD_W, kin, nk, a);
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_KAN_BWD_X, kin, nk, a);
}

/* the spline weights' gradient of the regularization loss */
void op_vjp_kan_reg(AdCtx *ad, const GNode *n, int dy)
{
    GAttr a = n->a;
    a.acc = 0;
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_KAN_REG_BWD, (int[]){dy, n->in[0]}, 2, a);
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

typedef struct {
    int64_t N, in, out;
    int G, k, S, act, scaler, base; /* S = nf + base columns of A per input */
    int j_grid, j_base, j_spline, j_scaler; /* positions among the node's inputs (-1: none) */
    char basis[48];                 /* the CUDA basis type, e.g. KancBSpline<5, 3> */
} KanDims;

/* k the forward op, x its input; `shift` 1 for a backward node (dy first) */
static KanDims kan_dims(CudaGen *G, const GNode *k, const GNode *x, int shift)
{
    KanDims d = {.N = shape_rows(&x->shape),
                 .in = shape_last(&x->shape),
                 .out = shape_last(&k->shape),
                 .G = k->a.grid_size,
                 .k = k->a.spline_order,
                 .act = k->a.act,
                 .scaler = k->a.has_scaler,
                 .base = !k->a.no_base};
    const KanBasis *b = kan_basis(k->a.basis);
    d.S = b->nf(d.G, d.k) + d.base;
    d.j_grid = 1 + shift;
    d.j_base = d.base ? kan_in_base(&k->a) + shift : -1;
    d.j_spline = kan_in_spline(&k->a) + shift;
    d.j_scaler = d.scaler ? kan_in_scaler(&k->a) + shift : -1;
    snprintf(d.basis, sizeof d.basis, b->cuda_type, d.G, d.k);
    return d;
}

/* inputs per stage: about `cols` columns of A, within the shared memory limit
   (floats = fixed + per_input * TI) */
static int kan_inputs(CudaGen *G, int cols, int S, int64_t in, int64_t fixed, int64_t per_input)
{
    int ti = (int)cg_imax(1, cg_imin(cols / S, in));
    while (ti > 1 && (fixed + per_input * ti) * 4 > CG_SMEM_LIMIT) ti--;
    if ((fixed + per_input * ti) * 4 > CG_SMEM_LIMIT)
        cg_fail(
            G,
            "cuda: node %d: KAN tile too large for shared memory (%d columns per input); use smaller tiles",
            G->n->id, S);
    return ti;
}

/* the kernel's base (if with_base), spline and scaler pointers; absent ones are null */
static void kan_weight_ptrs(CudaGen *G, const KanDims *d, int with_base)
{
    if (with_base) {
        if (d->base)
            cg_in_ptr(G, "base", d->j_base);
        else
            cg_line(G, "const float *base = 0; /* no base branch */");
    }
    cg_in_ptr(G, "spline", d->j_spline);
    if (d->scaler)
        cg_in_ptr(G, "scaler", d->j_scaler);
    else
        cg_line(G, "const float *scaler = 0; /* no standalone scaler */");
}

/* the grid pointer, then kan_weight_ptrs */
static void kan_params(CudaGen *G, const KanDims *d, int with_base)
{
    cg_in_ptr(G, "grid", d->j_grid);
    kan_weight_ptrs(G, d, with_base);
}

static const char *kan_base_text(const KanDims *d) { return d->base ? cg_act_short(d->act) : "none (no branch)"; }

/* ---- the blocked path (cuda/kanc_kan_blocked.cuh): the basis of one row block
   at a time in the workspace, the matrix products as GEMM launches ---- */

#define KAN_WS_ALIGN 256 /* workspace pieces start on 256 bytes (cuBLASLt wants 16 at least) */

static int64_t kan_ws_align(int64_t bytes) { return cg_cdiv(bytes, KAN_WS_ALIGN) * KAN_WS_ALIGN; }

/* rows per block: as many rows of A as the budget holds (a multiple of 16), at most N */
static int64_t kan_block_rows(const CudaGen *G, const KanDims *d)
{
    if (G->o.kan_block_rows > 0) return cg_imin(G->o.kan_block_rows, d->N);
    int64_t r = G->o.kan_block_bytes / (d->in * d->S * 4) / 16 * 16;
    return cg_imin(cg_imax(r, 16), d->N);
}

/* The cost model of KAN_KERNEL_AUTO: estimated seconds of one KAN node (the
   three nodes of a layer cost alike) on an H100-class GPU, from NVIDIA's
   datasheet figures (67 TFLOP/s fp32, 3.35 TB/s), not yet calibrated on a GPU:
     fused:   2 N in S out FLOPs at 25% of the fp32 peak (16x16-thread FFMA tiles
              from shared memory) + the basis rebuilt once per output tile
              (ceil(out / tile_n) times) + one launch;
     blocked: the same FLOPs at 80% of the peak (cuBLASLt) + the basis once + the
              row blocks of A written and read and the fused weight written + two
              launches per row block and one more; under bf16 the peak is the tensor
              cores' (989 TFLOP/s dense) and A and Wf take 2 bytes an element (the
              fused kernels stay fp32). */
#define KAN_PEAK_FP32  67e12
#define KAN_PEAK_BF16  989e12
#define KAN_BANDWIDTH  3.35e12
#define KAN_LAUNCH_S   5e-6
#define KAN_BASIS_OPS  1000.0 /* instructions per input value (Cox-de Boor, k = 3) */

static double kan_cost(const CudaGen *G, const KanDims *d, int blocked)
{
    double flops = 2.0 * (double)d->N * (double)d->in * d->S * (double)d->out;
    double basis = (double)d->N * (double)d->in * KAN_BASIS_OPS / (KAN_PEAK_FP32 / 2);
    if (!blocked) return flops / (0.25 * KAN_PEAK_FP32) + basis * (double)cg_cdiv(d->out, G->o.tile_n) + KAN_LAUNCH_S;
    int bf16 = G->o.precision == CUDA_BF16;
    double el = bf16 ? 2 : 4;
    double bytes = 2.0 * el * (double)d->N * (double)d->in * d->S + el * (double)d->out * (double)d->in * d->S;
    double blocks = (double)cg_cdiv(d->N, kan_block_rows(G, d));
    return flops / (0.8 * (bf16 ? KAN_PEAK_BF16 : KAN_PEAK_FP32)) + basis + bytes / KAN_BANDWIDTH +
           (2 * blocks + 1) * KAN_LAUNCH_S;
}

/* 1 if this layer takes the blocked path */
static int kan_blocked(const CudaGen *G, const KanDims *d)
{
    switch (G->o.kan_kernel) {
    case KAN_KERNEL_FUSED: return 0;
    case KAN_KERNEL_BLOCKED: return 1;
    default: /* the generated GEMM is no faster than the fused tiles: blocked only with cuBLASLt */
        return G->o.use_cublas && kan_cost(G, d, 1) < kan_cost(G, d, 0);
    }
}

/* the workspace of a blocked node: the fused weight (or its gradient) at 0, one row block after it.
   Under bf16, Wf and the basis block A are bf16 (the GEMMs' operands); dWf and
   Gb, GEMM results, stay fp32, so both pieces keep their fp32 sizes. */
typedef struct {
    int64_t rows, blocks;
    CgLoc w, block;
    int bf16;          /* Wf and A in bf16 */
    int gtype;         /* their GemmType */
    const char *type;  /* their element type in the kernels: "float" or "__nv_bfloat16" */
} KanBlocks;

static KanBlocks kan_blocks(CudaGen *G, const KanDims *d)
{
    KanBlocks b = {.rows = kan_block_rows(G, d)};
    b.blocks = cg_cdiv(d->N, b.rows);
    int64_t wbytes = kan_ws_align(d->out * d->in * d->S * 4);
    b.w = (CgLoc){AREA_WS, 0};
    b.block = (CgLoc){AREA_WS, wbytes};
    b.bf16 = G->o.precision == CUDA_BF16;
    b.type = b.bf16 ? "__nv_bfloat16" : "float";
    b.gtype = b.bf16 ? GEMM_BF16 : GEMM_F32;
    cg_need_ws(G, wbytes + kan_ws_align(b.rows * d->in * d->S * 4));
    return b;
}

static CgLoc kan_loc_at(CgLoc l, int64_t bytes) { return (CgLoc){l.area, l.off + bytes}; }

/* "(long long)la.v[a]": an integer as a launch argument (buf: 32 bytes), so that
   the kernels of equal layers and row blocks compile once */
static const char *kan_iarg(CudaGen *G, int64_t v, char *buf)
{
    snprintf(buf, 32, "(long long)la.v[%d]", cg_arg(G, CUDA_ARG_INT, v));
    return buf;
}

/* Wf [out, in*S] into the workspace from the node's base, spline and scaler inputs */
static void kan_emit_fuse_w(CudaGen *G, const KanDims *d, const KanBlocks *b)
{
    cg_kernel_begin(G, "kan_fuse_w", cg_blocks_for(d->out * d->in * d->S), 1, CG_BLOCK, 0,
                    "Wf[%lld, %lld] = [base | spline * scaler] per (output, input), for the GEMMs",
                    (long long)d->out, (long long)(d->in * d->S));
    cg_ptr(G, b->type, "wf", b->w, NULL, "the fused weight (workspace)");
    kan_weight_ptrs(G, d, 1);
    char a1[32], a2[32];
    cg_line(G, "kanc_kan_fuse_w<%s, %d, %d, %s>(wf, base, spline, scaler, (int)%s, (int)%s);", d->basis, d->base,
            d->scaler, b->type, kan_iarg(G, d->in, a1), kan_iarg(G, d->out, a2));
    cg_kernel_end(G);
}

/* row block k of A(x) (x: input j of the node) into the workspace */
static void kan_emit_basis_rows(CudaGen *G, const KanDims *d, const KanBlocks *b, int j, int64_t k)
{
    int64_t r0 = k * b->rows, rows = cg_imin(b->rows, d->N - r0);
    char what[48];
    snprintf(what, sizeof what, "kan_basis_%lld", (long long)k);
    cg_kernel_begin(G, what, cg_blocks_for(rows * d->in), 1, CG_BLOCK, 0,
                    "A[%lld, %lld] = [act(x) | f(x)] of rows %lld.. (block %lld of %lld), %s", (long long)rows,
                    (long long)(d->in * d->S), (long long)r0, (long long)k + 1, (long long)b->blocks, d->basis);
    cg_ptr(G, b->type, "a", b->block, NULL, "the row block of A (workspace)");
    cg_ptr(G, "const float", "x", kan_loc_at(cg_value_loc(G, G->n->in[j]), r0 * d->in * 4), NULL, "its rows of x");
    cg_in_ptr(G, "grid", d->j_grid);
    char a1[32], a2[32];
    cg_line(G, "kanc_kan_basis_rows<%s, %s, %d, %s>(a, x, grid, %s, (int)%s);", d->basis, cg_act_name(d->act),
            d->base, b->type, kan_iarg(G, rows, a1), kan_iarg(G, d->in, a2));
    cg_kernel_end(G);
}

static void kan_emit_blocked_fwd(CudaGen *G, const KanDims *d)
{
    KanBlocks b = kan_blocks(G, d);
    kan_emit_fuse_w(G, d, &b);
    CgLoc y = cg_out_loc(G, G->n);
    int64_t SI = d->in * d->S;
    for (int64_t k = 0; k < b.blocks; k++) {
        int64_t r0 = k * b.rows, rows = cg_imin(b.rows, d->N - r0);
        kan_emit_basis_rows(G, d, &b, 0, k);
        char what[48];
        snprintf(what, sizeof what, "kan_fwd_gemm_%lld", (long long)k);
        CgGemm q = {.ta = 0, .tb = 1, .m = rows, .n = d->out, .k = SI, .lda = SI, .ldb = SI, .ldc = d->out,
                    .alpha = 1, .beta = 0, .a = b.block, .b = b.w, .c = kan_loc_at(y, r0 * d->out * 4),
                    .na = "A (row block)", .nb = "Wf", .nc = "y rows", .type_a = b.gtype, .type_b = b.gtype};
        cg_gemm(G, what, &q, "blocked KAN forward: y rows = A Wf^T");
    }
}

/* dbase, dspline and dscaler: the weight gradients a kan_bwd_w node accumulates into
   (null pointers for a layer without a base branch or scaler) */
static void kan_grad_ptrs(CudaGen *G, const KanDims *d)
{
    const GNode *n = G->n;
    if (d->base)
        cg_ptr(G, "float", "dbase", cg_grad_loc(G, n->in[d->j_base]), &CG_IN(d->j_base)->shape, "grad of base_weight");
    else
        cg_line(G, "float *dbase = 0; /* no base branch */");
    cg_ptr(G, "float", "dspline", cg_grad_loc(G, n->in[d->j_spline]), &CG_IN(d->j_spline)->shape,
           "grad of the spline weights");
    if (d->scaler)
        cg_ptr(G, "float", "dscaler", cg_grad_loc(G, n->in[d->j_scaler]), &CG_IN(d->j_scaler)->shape,
               "grad of spline_scaler");
    else
        cg_line(G, "float *dscaler = 0;");
}

static void kan_emit_blocked_bwd_w(CudaGen *G, const KanDims *d)
{
    const GNode *n = G->n;
    KanBlocks b = kan_blocks(G, d);
    CgLoc dy = cg_value_loc(G, n->in[0]);
    int64_t SI = d->in * d->S;
    for (int64_t k = 0; k < b.blocks; k++) {
        int64_t r0 = k * b.rows, rows = cg_imin(b.rows, d->N - r0);
        kan_emit_basis_rows(G, d, &b, 1, k);
        char what[48];
        snprintf(what, sizeof what, "kan_dw_gemm_%lld", (long long)k);
        CgGemm q = {.ta = 1, .tb = 0, .m = d->out, .n = SI, .k = rows, .lda = d->out, .ldb = SI, .ldc = SI,
                    .alpha = 1, .beta = k ? 1.0f : 0.0f, .a = kan_loc_at(dy, r0 * d->out * 4), .b = b.block,
                    .c = b.w, .na = "dy rows", .nb = "A (row block)", .nc = "dWf (workspace)", .type_b = b.gtype};
        cg_gemm(G, what, &q, "blocked KAN weight gradient: dWf (+)= dy rows^T A");
    }
    cg_kernel_begin(G, "kan_split_dw", cg_blocks_for(d->out * d->in), 1, CG_BLOCK, 0,
                    "d base, d spline, d scaler (accumulate) from dWf[%lld, %lld]", (long long)d->out,
                    (long long)SI);
    kan_grad_ptrs(G, d);
    cg_ptr(G, "const float", "dwf", b.w, NULL, "dWf (workspace)");
    kan_weight_ptrs(G, d, 0);
    char a1[32], a2[32];
    cg_line(G, "kanc_kan_split_dw<%s, %d, %d>(dbase, dspline, dscaler, dwf, spline, scaler, (int)%s, (int)%s);",
            d->basis, d->base, d->scaler, kan_iarg(G, d->in, a1), kan_iarg(G, d->out, a2));
    cg_kernel_end(G);
}

static void kan_emit_blocked_bwd_x(CudaGen *G, const KanDims *d)
{
    const GNode *n = G->n;
    KanBlocks b = kan_blocks(G, d);
    kan_emit_fuse_w(G, d, &b);
    CgLoc dy = cg_value_loc(G, n->in[0]), x = cg_value_loc(G, n->in[1]), dx = cg_out_loc(G, n);
    int64_t SI = d->in * d->S;
    for (int64_t k = 0; k < b.blocks; k++) {
        int64_t r0 = k * b.rows, rows = cg_imin(b.rows, d->N - r0);
        char what[48];
        snprintf(what, sizeof what, "kan_dx_gemm_%lld", (long long)k);
        CgGemm q = {.ta = 0, .tb = 0, .m = rows, .n = SI, .k = d->out, .lda = d->out, .ldb = SI, .ldc = SI,
                    .alpha = 1, .beta = 0, .a = kan_loc_at(dy, r0 * d->out * 4), .b = b.w, .c = b.block,
                    .na = "dy rows", .nb = "Wf", .nc = "Gb (row block, workspace)", .type_b = b.gtype};
        cg_gemm(G, what, &q, "blocked KAN input gradient: Gb = dy rows Wf");
        snprintf(what, sizeof what, "kan_dx_%lld", (long long)k);
        cg_kernel_begin(G, what, cg_blocks_for(rows * d->in), 1, CG_BLOCK, 0,
                        "dx (+)= act'(x) Gb[., 0] + sum_c f'_c(x) Gb[., base+c] for rows %lld.. (block %lld of %lld)",
                        (long long)r0, (long long)k + 1, (long long)b.blocks);
        cg_ptr(G, "float", "dx", kan_loc_at(dx, r0 * d->in * 4), NULL, cg_node_acc(n) ? "its rows of dx (accumulate)" : "its rows of dx");
        cg_ptr(G, "const float", "gb", b.block, NULL, "Gb (workspace)");
        cg_ptr(G, "const float", "x", kan_loc_at(x, r0 * d->in * 4), NULL, "its rows of x");
        cg_in_ptr(G, "grid", d->j_grid);
        char a1[32], a2[32];
        cg_line(G, "kanc_kan_dx_rows<%s, %s, %d, %d>(dx, gb, x, grid, %s, (int)%s);", d->basis, cg_act_name(d->act),
                d->base, cg_node_acc(n), kan_iarg(G, rows, a1), kan_iarg(G, d->in, a2));
        cg_kernel_end(G);
    }
}

/* "(long long)la.v[a], (int)la.v[b], (int)la.v[c]": the rows, inputs and outputs
   as launch arguments, so that every KAN layer of one basis, activation and
   set of flags runs one kernel (the tiles stay compiled in); buf: 96 bytes */
static const char *kan_sizes(CudaGen *G, const KanDims *d, char *buf)
{
    int a = cg_arg(G, CUDA_ARG_INT, d->N), b = cg_arg(G, CUDA_ARG_INT, d->in), c = cg_arg(G, CUDA_ARG_INT, d->out);
    snprintf(buf, 96, "(long long)la.v[%d], (int)la.v[%d], (int)la.v[%d]", a, b, c);
    return buf;
}

void cuda_emit_kan(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, n, CG_IN(0), 0);
    if (kan_blocked(G, &d)) {
        kan_emit_blocked_fwd(G, &d);
        return;
    }
    int TM = G->o.tile_m, TN = G->o.tile_n;
    int TI = kan_inputs(G, G->o.tile_k, d.S, d.in, 0, (int64_t)d.S * (TM + TN + 2));
    char s1[96], s2[96];
    cg_kernel_begin(G, "kan_fwd", (unsigned)cg_cdiv(d.out, TN), (unsigned)cg_cdiv(d.N, TM), CG_BLOCK, 1,
                    "y%s = A(x%s) Wf^T, %s G=%d k=%d base %s%s\n   tiles: %d rows x %d outputs; "
                    "per stage, inputs: %d (columns of A: %d)",
                    cg_shp(&n->shape, s1), cg_shp(&CG_IN(0)->shape, s2), d.basis, d.G, d.k, kan_base_text(&d),
                    d.scaler ? " scaler" : "", TM, TN, TI, TI * d.S);
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    kan_params(G, &d, 1);
    char sz[96];
    cg_line(G, "kanc_kan_fwd<%s, %s, %d, %d, %d, %d, %d>(y, x, grid, base, spline, scaler, %s); /* %lld, %lld, %lld */",
            d.basis, cg_act_name(d.act), d.base, d.scaler, TM, TN, TI, kan_sizes(G, &d, sz), (long long)d.N,
            (long long)d.in, (long long)d.out);
    cg_kernel_end(G);
}

void cuda_emit_kan_bwd_w(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], CG_IN(1), 1);
    if (kan_blocked(G, &d)) {
        kan_emit_blocked_bwd_w(G, &d);
        return;
    }
    int TM = G->o.tile_m, TR = G->o.tile_k;
    int TI =
        kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TR * (TM + 1) + TR + TM, (int64_t)d.S * (TR + TM));
    cg_kernel_begin(G, "kan_bwd_w", (unsigned)cg_cdiv(d.in, TI), (unsigned)cg_cdiv(d.out, TM), CG_BLOCK, 1,
                    "dWf = dy^T A(x), split into d base, d spline, d scaler (accumulate)\n"
                    "   %s G=%d k=%d base %s%s; tiles: %d outputs x inputs: %d (columns: %d); rows per "
                    "stage: %d",
                    d.basis, d.G, d.k, kan_base_text(&d), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TR);
    kan_grad_ptrs(G, &d);
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    kan_params(G, &d, 0);
    char sz[96];
    cg_line(G,
            "kanc_kan_bwd_w<%s, %s, %d, %d, %d, %d, %d>(dbase, dspline, dscaler, dy, x, grid, spline, "
            "scaler, %s); /* %lld, %lld, %lld */",
            d.basis, cg_act_name(d.act), d.base, d.scaler, TM, TI, TR, kan_sizes(G, &d, sz), (long long)d.N,
            (long long)d.in, (long long)d.out);
    cg_kernel_end(G);
}

void cuda_emit_kan_bwd_x(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], CG_IN(1), 1);
    if (kan_blocked(G, &d)) {
        kan_emit_blocked_bwd_x(G, &d);
        return;
    }
    int TM = G->o.tile_m, TO = G->o.tile_k;
    int TI =
        kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TO * (TM + 1) + TO + TM, (int64_t)d.S * (TO + TM));
    cg_kernel_begin(G, "kan_bwd_x", (unsigned)cg_cdiv(d.in, TI), (unsigned)cg_cdiv(d.N, TM), CG_BLOCK, 1,
                    "dx (+)= act'(x) (dy Wf)[., 0] + sum_c f'_c(x) (dy Wf)[., base+c]\n"
                    "   %s G=%d k=%d base %s%s; tiles: %d rows x inputs: %d (columns: %d); outputs per "
                    "stage: %d",
                    d.basis, d.G, d.k, kan_base_text(&d), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TO);
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    kan_params(G, &d, 1);
    char sz[96];
    cg_line(G,
            "kanc_kan_bwd_x<%s, %s, %d, %d, %d, %d, %d, %d>(dx, dy, x, grid, base, spline, scaler, "
            "%s); /* %lld, %lld, %lld */",
            d.basis, cg_act_name(d.act), d.base, d.scaler, cg_node_acc(n), TM, TI, TO, kan_sizes(G, &d, sz),
            (long long)d.N, (long long)d.in, (long long)d.out);
    cg_kernel_end(G);
}

void cuda_emit_kan_reg(CudaGen *G)
{
    const GNode *n = G->n;
    const GShape *ws = &CG_IN(0)->shape;
    char a[32], e[32], s1[96];
    cg_kernel_begin(G, "kan_reg", 1, 1, CG_BLOCK, 1,
                    "y = a sum(l) - e sum(p log p), l = mean |W%s| over its last axis; one block",
                    cg_shp(ws, s1));
    cg_out_ptr(G, "y");
    GShape as = shape_of(1, (int64_t)2);
    cg_ptr(G, "float", "stats", cg_aux_loc(G, n->id), &as, "(sum l, sum p log p)");
    cg_in_ptr(G, "w", 0);
    cg_line(G, "kanc_kan_reg_fwd(y, stats, w, %lldLL, %d, %s, %s);", (long long)shape_rows(ws),
            (int)shape_last(ws), cg_flit(a, (float)n->a.reg_activation), cg_flit(e, (float)n->a.reg_entropy));
    cg_kernel_end(G);
}

void cuda_emit_kan_reg_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    const GShape *ws = &CG_IN(1)->shape;
    int64_t numel = shape_numel(ws);
    char a[32], e[32];
    cg_kernel_begin(G, "kan_reg_bwd", cg_blocks_for(numel), 1, CG_BLOCK, 0,
                    "dW += dy (a - e (log p - H) / S) sign(W) / nf (the forward's S, H)");
    cg_out_ptr(G, "dw");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "w", 1);
    GShape as = shape_of(1, (int64_t)2);
    cg_ptr(G, "const float", "stats", cg_aux_loc(G, n->fwd), &as, "the forward's (sum l, sum p log p)");
    cg_line(G, "kanc_kan_reg_bwd(dw, dy, w, stats, %lldLL, %d, %s, %s);", (long long)shape_rows(ws),
            (int)shape_last(ws), cg_flit(a, (float)n->a.reg_activation), cg_flit(e, (float)n->a.reg_entropy));
    cg_kernel_end(G);
}
