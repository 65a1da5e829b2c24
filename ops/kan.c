/* kan.c: the fused KAN layer (efficient-kan's KANLinear; DESIGN.md 4). */
#include <string.h>
#include <math.h>
#include <stdio.h>

#include "autodiff.h"
#include "cpu_kernels.h"
#include "kan_basis.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

static const GNode *kan_forward(const Graph *g, const GNode *n)
{
    return n->fwd >= 0 ? &g->nodes[n->fwd] : n;
}

/* one product of K = in * (G+k+1) columns, forward and for each backward product */
/* the regularization loss reads only the spline weights: no matrix product, no workspace */
static int is_kan_reg(const GNode *n) { return n->op == OP_KAN_REG || n->op == OP_KAN_REG_BWD; }

static double kan_flops(const Graph *g, const GNode *n)
{
    if (is_kan_reg(n)) return 0;
    const GNode *f = kan_forward(g, n);
    int S = kan_basis(f->a.basis)->nf(f->a.grid_size, f->a.spline_order) + 1;
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

const OpFamily op_family_kan = {.name = "kan", .flops = kan_flops, .cpu_workspace = kan_cpu_workspace};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

#define KAN_SLOTS                                                                                            \
    "grid_size", "spline_order", "grid_range", "scale_noise", "scale_base", "scale_spline", "scaler", "base"
#define KAN_USAGE                                                                                            \
    "grid_size = 5, spline_order = 3, grid_range = [-1, 1], scale_noise = 0.1, "                             \
    "scale_base = 1.0, scale_spline = 1.0, scaler = true, base = \"silu\")"

/* The options shared by kan() and kan_linear(), slots 2..9. */
typedef struct {
    int64_t G, k;
    double lo, hi, noise, sbase, sspline;
    int scaler;
    GAct act;
    KanBasisId basis;
} KanOpts;

static int arg_grid_range(Elab *E, Args *A, int i, double *lo, double *hi)
{
    *lo = -1, *hi = 1;
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

static int kan_opts(Elab *E, Args *A, KanOpts *o)
{
    o->basis = KAN_BASIS_BSPLINE; /* the only family kan() offers so far */
    if (!el_arg_int(E, A, 2, 5, 1, 1 << 16, &o->G) || !el_arg_int(E, A, 3, 3, 0, 16, &o->k) ||
        !arg_grid_range(E, A, 4, &o->lo, &o->hi) || !el_arg_num(E, A, 5, 0.1, &o->noise) ||
        !el_arg_num(E, A, 6, 1.0, &o->sbase) || !el_arg_num(E, A, 7, 1.0, &o->sspline) ||
        !el_arg_bool(E, A, 8, 1, &o->scaler) || !arg_act(E, A, 9, &o->act))
        return 0;
    if (!(o->noise >= 0)) return el_bad_arg(E, A, 5, "must not be negative");
    const char *why = kan_basis(o->basis)->check_options((int)o->G, (int)o->k, o->lo, o->hi);
    return why ? el_bad_arg(E, A, 4, why) : 1;
}

/* One efficient-kan KANLinear: buffer grid, then base_weight, spline_weight,
   spline_scaler (the order and names of its state_dict), then the op. */
static int kan_one(Elab *E, Args *A, const KanOpts *o, int x, int64_t out, const char *prefix)
{
    GShape xs = el_tshape(E, x);
    int64_t in = shape_last(&xs), G = o->G, k = o->k;
    const KanBasis *b = kan_basis(o->basis);
    const char *names[4];
    static const char *const local[4] = {"grid", "base_weight", "spline_weight", "spline_scaler"};
    for (int i = 0; i < 4; i++) names[i] = arena_printf(el_arena(E), "%s%s", prefix, local[i]);
    int grid =
        el_buffer(E, A, names[0], shape_of(2, in, (int64_t)b->grid_len((int)G, (int)k)), INIT_KAN_GRID);
    if (grid < 0) return -1;
    GNode *gn = &el_graph(E)->nodes[grid];
    gn->init_a = o->lo, gn->init_b = o->hi;
    gn->a.grid_size = (int)G, gn->a.spline_order = (int)k, gn->a.basis = o->basis;
    int base = el_param(E, A, names[1], shape_of(2, out, in), INIT_KAIMING_UNIFORM, sqrt(5.0) * o->sbase, 1);
    int spline = base < 0 ? -1
                          : el_param(E, A, names[2], shape_of(3, out, in, (int64_t)b->nf((int)G, (int)k)),
                                     INIT_KAN_SPLINE, o->noise, 1);
    if (spline < 0) return -1;
    GNode *sn = &el_graph(E)->nodes[spline];
    sn->init_ref = grid;
    sn->a.grid_size = (int)G, sn->a.spline_order = (int)k, sn->a.basis = o->basis;
    int scaler = o->scaler ? el_param(E, A, names[3], shape_of(2, out, in), INIT_KAIMING_UNIFORM,
                                      sqrt(5.0) * o->sspline, 1)
                           : -2;
    if (scaler == -1) return -1;
    GAttr at = {.grid_size = (int)G,
                .spline_order = (int)k,
                .has_scaler = o->scaler,
                .act = o->act,
                .basis = o->basis};
    return el_emit(E, A->call, A->scope, OP_KAN, (int[]){x, grid, base, spline, scaler}, o->scaler ? 5 : 4,
                   el_with_last(xs, out), &at);
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
        if (el_graph(E)->nodes[i].op != OP_KAN) continue;
        int w = el_graph(E)->nodes[i].in[3]; /* spline_weight */
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

/* both backward nodes take (dy, x, grid, base, spline, scaler?) */
void op_vjp_kan(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    GAttr a = n->a;
    a.acc = 0;
    int kin[G_MAXIN] = {dy, in[0], in[1], in[2], in[3], in[4]};
    int nk = n->a.has_scaler ? 6 : 5;
    if (ad_wants(ad, in[2])) ad_contribute(ad, in[2], OP_KAN_BWD_W, kin, nk, a);
    if (ad_wants(ad, in[0])) ad_contribute(ad, in[0], OP_KAN_BWD_X, kin, nk, a);
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
    int G, k, S, act, scaler;
    char basis[48]; /* the CUDA basis type, e.g. KancBSpline<5, 3> */
} KanDims;

static KanDims kan_dims(CudaGen *G, const GNode *k, const GNode *x)
{
    KanDims d = {.N = shape_rows(&x->shape),
                 .in = shape_last(&x->shape),
                 .out = shape_last(&k->shape),
                 .G = k->a.grid_size,
                 .k = k->a.spline_order,
                 .act = k->a.act,
                 .scaler = k->a.has_scaler};
    const KanBasis *b = kan_basis(k->a.basis);
    d.S = b->nf(d.G, d.k) + 1;
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

static void kan_params(CudaGen *G, const char *base, int j_grid, int j_base, int j_spline, int j_scaler,
                       int scaler)
{
    cg_in_ptr(G, "grid", j_grid);
    if (base) cg_in_ptr(G, "base", j_base);
    cg_in_ptr(G, "spline", j_spline);
    if (scaler)
        cg_in_ptr(G, "scaler", j_scaler);
    else
        cg_line(G, "const float *scaler = 0; /* no standalone scaler */");
}

void cuda_emit_kan(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, n, CG_IN(0));
    int TM = G->o.tile_m, TN = G->o.tile_n;
    int TI = kan_inputs(G, G->o.tile_k, d.S, d.in, 0, (int64_t)d.S * (TM + TN + 2));
    char s1[96], s2[96];
    cg_kernel_begin(G, "kan_fwd", (unsigned)cg_cdiv(d.out, TN), (unsigned)cg_cdiv(d.N, TM), CG_BLOCK, 1,
                    "y%s = A(x%s) Wf^T, G=%d k=%d base %s%s\n   tiles: %d rows x %d outputs; "
                    "per stage, inputs: %d (columns of A: %d)",
                    cg_shp(&n->shape, s1), cg_shp(&CG_IN(0)->shape, s2), d.G, d.k, cg_act_short(d.act),
                    d.scaler ? " scaler" : "", TM, TN, TI, TI * d.S);
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    kan_params(G, "base", 1, 2, 3, 4, d.scaler);
    cg_line(G, "kanc_kan_fwd<%s, %s, %d, %d, %d, %d>(y, x, grid, base, spline, scaler, %lldLL, %lld, %lld);",
            d.basis, cg_act_name(d.act), d.scaler, TM, TN, TI, (long long)d.N, (long long)d.in,
            (long long)d.out);
    cg_kernel_end(G);
}

void cuda_emit_kan_bwd_w(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], CG_IN(1));
    int TM = G->o.tile_m, TR = G->o.tile_k;
    int TI =
        kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TR * (TM + 1) + TR + TM, (int64_t)d.S * (TR + TM));
    cg_kernel_begin(G, "kan_bwd_w", (unsigned)cg_cdiv(d.in, TI), (unsigned)cg_cdiv(d.out, TM), CG_BLOCK, 1,
                    "dWf = dy^T A(x), split into d base, d spline, d scaler (accumulate)\n"
                    "   G=%d k=%d base %s%s; tiles: %d outputs x inputs: %d (columns: %d); rows per "
                    "stage: %d",
                    d.G, d.k, cg_act_short(d.act), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TR);
    cg_ptr(G, "float", "dbase", cg_grad_loc(G, n->in[3]), &CG_IN(3)->shape, "grad of base_weight");
    cg_ptr(G, "float", "dspline", cg_grad_loc(G, n->in[4]), &CG_IN(4)->shape, "grad of spline_weight");
    if (d.scaler)
        cg_ptr(G, "float", "dscaler", cg_grad_loc(G, n->in[5]), &CG_IN(5)->shape, "grad of spline_scaler");
    else
        cg_line(G, "float *dscaler = 0;");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    kan_params(G, NULL, 2, 3, 4, 5, d.scaler);
    cg_line(G,
            "kanc_kan_bwd_w<%s, %s, %d, %d, %d, %d>(dbase, dspline, dscaler, dy, x, grid, spline, "
            "scaler, %lldLL, %lld, %lld);",
            d.basis, cg_act_name(d.act), d.scaler, TM, TI, TR, (long long)d.N, (long long)d.in,
            (long long)d.out);
    cg_kernel_end(G);
}

void cuda_emit_kan_bwd_x(CudaGen *G)
{
    const GNode *n = G->n;
    KanDims d = kan_dims(G, &G->g->nodes[n->fwd], CG_IN(1));
    int TM = G->o.tile_m, TO = G->o.tile_k;
    int TI =
        kan_inputs(G, G->o.tile_n, d.S, d.in, (int64_t)TO * (TM + 1) + TO + TM, (int64_t)d.S * (TO + TM));
    cg_kernel_begin(G, "kan_bwd_x", (unsigned)cg_cdiv(d.in, TI), (unsigned)cg_cdiv(d.N, TM), CG_BLOCK, 1,
                    "dx (+)= act'(x) (dy Wf)[., 0] + sum_c f'_c(x) (dy Wf)[., 1+c]\n"
                    "   G=%d k=%d base %s%s; tiles: %d rows x inputs: %d (columns: %d); outputs per "
                    "stage: %d",
                    d.G, d.k, cg_act_short(d.act), d.scaler ? " scaler" : "", TM, TI, TI * d.S, TO);
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    kan_params(G, "base", 2, 3, 4, 5, d.scaler);
    cg_line(G,
            "kanc_kan_bwd_x<%s, %s, %d, %d, %d, %d, %d>(dx, dy, x, grid, base, spline, scaler, "
            "%lldLL, %lld, %lld);",
            d.basis, cg_act_name(d.act), d.scaler, cg_node_acc(n), TM, TI, TO, (long long)d.N,
            (long long)d.in, (long long)d.out);
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
