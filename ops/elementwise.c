/* elementwise.c: add, sub, mul (with trailing broadcast), scale (affine: s x + c),
 * the activations, the unary ops (tanh, sigmoid, exp, log, abs, recip) and
 * dropout; their gradients reduce over the broadcast dimensions. The unary ops
 * and activations share one backward op, act_bwd, told the function by attr.act. */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

static double numel_of(const Graph *g, int node) { return (double)shape_numel(&g->nodes[node].shape); }

/* FLOPs per element of an activation (tanh-form GELU: x^3, 3 multiplies, 2
   adds, tanh; SiLU and sigmoid: exp, add, divide) and of its derivative times
   dy (tanh: 1 - t^2 times dy, 4; sigmoid: s (1 - s) dy, 6; 1/x: -1/x^2 dy, 3) */
static double act_cost(GAct act, int derivative)
{
    switch (act) {
    case ACT_GELU: return derivative ? 17 : 9;
    case ACT_SILU: return derivative ? 8 : 3;
    case ACT_RELU: return 1;
    case ACT_TANH: return derivative ? 4 : 1;
    case ACT_SIGMOID: return derivative ? 6 : 3;
    case ACT_EXP: case ACT_LOG: return derivative ? 2 : 1;
    case ACT_ABS: return 1;
    case ACT_RECIP: return derivative ? 3 : 1;
    default: return 0;
    }
}

/* the function of a forward activation or unary op */
static GAct unary_act(GOp op)
{
    switch (op) {
    case OP_GELU: return ACT_GELU;
    case OP_SILU: return ACT_SILU;
    case OP_RELU: return ACT_RELU;
    case OP_TANH: return ACT_TANH;
    case OP_SIGMOID: return ACT_SIGMOID;
    case OP_EXP: return ACT_EXP;
    case OP_LOG: return ACT_LOG;
    case OP_ABS: return ACT_ABS;
    case OP_RECIP: return ACT_RECIP;
    default: return ACT_NONE;
    }
}

/* per output element one operation; a gradient that reduces over broadcast
   dimensions adds once per dy element (accumulation into a partial gradient
   is not counted) */
static double elementwise_arith(const Graph *g, const GNode *n)
{
    double out = (double)shape_numel(&n->shape);
    switch (n->op) {
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DROPOUT: case OP_DROPOUT_BWD: return out;
    case OP_SCALE: return out * (n->a.shift != 0 ? 2 : 1);
    case OP_GELU: case OP_SILU: case OP_RELU: case OP_TANH: case OP_SIGMOID: case OP_EXP:
    case OP_LOG: case OP_ABS: case OP_RECIP:
        return out * act_cost(unary_act(n->op), 0);
    case OP_ACT_BWD: return out * act_cost(n->a.act, 1);
    case OP_ACC: {
        double dy = numel_of(g, n->in[0]);
        return (dy > out ? dy : 0) + (n->a.scale != 1 ? dy : 0);
    }
    case OP_MUL_BWD: {
        double dy = numel_of(g, n->in[0]);
        return dy + (dy > out ? dy : 0);
    }
    default: return 0;
    }
}

const OpFamily op_family_elementwise = {.name = "elementwise", .elementwise_flops = elementwise_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

static Value activation(Elab *E, Args *A, GOp op)
{
    int x;
    if (!el_arg_real(E, A, 0, 0, &x)) return VERR;
    return vnode(el_emit(E, A->call, A->scope, op, &x, 1, el_tshape(E, x), NULL));
}

static Value L_gelu(Elab *E, Args *A) { return activation(E, A, OP_GELU); }
static Value L_silu(Elab *E, Args *A) { return activation(E, A, OP_SILU); }
static Value L_relu(Elab *E, Args *A) { return activation(E, A, OP_RELU); }
static Value L_tanh(Elab *E, Args *A) { return activation(E, A, OP_TANH); }
static Value L_sigmoid(Elab *E, Args *A) { return activation(E, A, OP_SIGMOID); }
/* on a tensor; on a number, elaborate.c calls the function of the same name instead */
static Value L_exp(Elab *E, Args *A) { return activation(E, A, OP_EXP); }
static Value L_log(Elab *E, Args *A) { return activation(E, A, OP_LOG); }
static Value L_abs(Elab *E, Args *A) { return activation(E, A, OP_ABS); }

static Value L_dropout(Elab *E, Args *A)
{
    int x;
    double p;
    if (!el_arg_real(E, A, 0, 0, &x) || !el_arg_prob(E, A, 1, &p)) return VERR;
    if (p == 0) return vnode(x); /* no node at all: nothing to do */
    GAttr at = {.p = p};
    return vnode(el_emit(E, A->call, A->scope, OP_DROPOUT, &x, 1, el_tshape(E, x), &at));
}

const Builtin layer_gelu = {"gelu", L_gelu, 1, 0, 1, "gelu(x)", {"x"}};
const Builtin layer_silu = {"silu", L_silu, 1, 0, 1, "silu(x)", {"x"}};
const Builtin layer_relu = {"relu", L_relu, 1, 0, 1, "relu(x)", {"x"}};
const Builtin layer_tanh = {"tanh", L_tanh, 1, 0, 1, "tanh(x)", {"x"}};
const Builtin layer_sigmoid = {"sigmoid", L_sigmoid, 1, 0, 1, "sigmoid(x)", {"x"}};
const Builtin layer_exp = {"exp", L_exp, 1, 0, 1, "exp(x)", {"x"}};
const Builtin layer_log = {"log", L_log, 1, 0, 1, "log(x)", {"x"}};
const Builtin layer_abs = {"abs", L_abs, 1, 0, 1, "abs(x)", {"x"}};
const Builtin layer_dropout = {"dropout", L_dropout, 2, 0, 1, "dropout(x, p)", {"x", "p"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* d a = dy, d b = s * reduce(dy), s = +1 (add) or -1 (sub for b) */
static void vjp_add_sub(AdCtx *ad, const GNode *n, int dy, double sign_b)
{
    for (int j = 0; j < 2; j++)
        if (ad_wants(ad, n->in[j]))
            ad_contribute(ad, n->in[j], OP_ACC, &dy, 1, (GAttr){.scale = j ? sign_b : 1});
}

void op_vjp_add(AdCtx *ad, const GNode *n, int dy) { vjp_add_sub(ad, n, dy, 1); }
void op_vjp_sub(AdCtx *ad, const GNode *n, int dy) { vjp_add_sub(ad, n, dy, -1); }

/* d a = dy * b, d b = reduce(dy * a) */
void op_vjp_mul(AdCtx *ad, const GNode *n, int dy)
{
    for (int j = 0; j < 2; j++)
        if (ad_wants(ad, n->in[j]))
            ad_contribute(ad, n->in[j], OP_MUL_BWD, (int[]){dy, n->in[1 - j]}, 2, (GAttr){0});
}

void op_vjp_scale(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ACC, &dy, 1, (GAttr){.scale = n->a.scale});
}

/* dx = dy * f'(x) */
static void vjp_act(AdCtx *ad, const GNode *n, int dy, GAct act)
{
    if (ad_wants(ad, n->in[0]))
        ad_contribute(ad, n->in[0], OP_ACT_BWD, (int[]){dy, n->in[0]}, 2, (GAttr){.act = act});
}

void op_vjp_gelu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_GELU); }
void op_vjp_silu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_SILU); }
void op_vjp_relu(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_RELU); }
void op_vjp_tanh(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_TANH); }
void op_vjp_sigmoid(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_SIGMOID); }
void op_vjp_exp(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_EXP); }
void op_vjp_log(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_LOG); }
void op_vjp_abs(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_ABS); }
void op_vjp_recip(AdCtx *ad, const GNode *n, int dy) { vjp_act(ad, n, dy, ACT_RECIP); }

/* dx = dy * mask / (1 - p), the forward's mask drawn again from its node id */
void op_vjp_dropout(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_DROPOUT_BWD, &dy, 1, (GAttr){.p = n->a.p});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

static void emit_binary(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape), nb = shape_numel(&CG_IN(1)->shape);
    const char *op = n->op == OP_ADD ? "+" : n->op == OP_SUB ? "-" : "*";
    cg_kernel_begin(G, op_name(n->op), cg_blocks_for(N), 1, CG_BLOCK, 0,
                    "y = a %s b (b broadcast over a's leading dims)", op);
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "a", 0);
    cg_in_ptr(G, "b", 1);
    char body[160];
    if (nb == N)
        snprintf(body, sizeof body, "y[e] = a[e] %s b[e];", op);
    else
        snprintf(body, sizeof body, "y[e] = a[e] %s b[e %% %lld];", op, (long long)nb);
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

void cuda_emit_scale(CudaGen *G)
{
    char b[32], body[96];
    int64_t N = shape_numel(&G->n->shape);
    int shift = G->n->a.shift != 0;
    cg_kernel_begin(G, "scale", cg_blocks_for(N), 1, CG_BLOCK, 0, shift ? "y = s x + c" : "y = s x");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    cg_line(G, "const float s = %s;", cg_flit(b, (float)G->n->a.scale));
    if (shift) cg_line(G, "const float c = %s;", cg_flit(b, (float)G->n->a.shift));
    snprintf(body, sizeof body, shift ? "y[e] = s * x[e] + c;" : "y[e] = s * x[e];");
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

/* reshape: same elements; a copy unless the plan placed both at one offset */
static void emit_activation(CudaGen *G)
{
    const GNode *n = G->n;
    int act = unary_act(n->op);
    int64_t N = shape_numel(&n->shape);
    char body[96];
    cg_kernel_begin(G, op_name(n->op), cg_blocks_for(N), 1, CG_BLOCK, 0, "y = %s(x)", op_name(n->op));
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    snprintf(body, sizeof body, "y[e] = kanc_act(%s, x[e]);", cg_act_name(act));
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

void cuda_emit_act_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char body[128];
    cg_kernel_begin(G, "act_bwd", cg_blocks_for(N), 1, CG_BLOCK, 0, "dx (+)= dy * %s'(x)",
                    cg_act_short(n->a.act));
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    snprintf(body, sizeof body, "dx[e] = %sdy[e] * kanc_act_grad(%s, x[e]);",
             cg_node_acc(n) ? "dx[e] + " : "", cg_act_name(n->a.act));
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

void cuda_emit_dropout(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char b[32], body[192];
    cg_kernel_begin(G, "dropout", cg_blocks_for(N), 1, CG_BLOCK, 0,
                    "y = x * keep / (1-p), keep from the counter RNG (training only)");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    cg_dropout_params(G, n->a.p, n->id);
    snprintf(body, sizeof body, "y[e] = p > 0.0 ? x[e] * kanc_drop(p, %s, seed, stream, (uint64_t)e) : x[e];",
             cg_flit(b, cg_keep_scale(n->a.p)));
    cg_loop(G, N, body);
    cg_kernel_end(G);
}

void cuda_emit_dropout_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&n->shape);
    char b[32], body[192];
    cg_kernel_begin(G, "dropout_bwd", cg_blocks_for(N), 1, CG_BLOCK, 0,
                    "dx (+)= dy * keep / (1-p), the forward's mask (training only)");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_dropout_params(G, n->a.p, n->fwd);
    snprintf(body, sizeof body,
             "dx[e] = %s(p > 0.0 ? dy[e] * kanc_drop(p, %s, seed, stream, (uint64_t)e) : dy[e]);",
             cg_node_acc(n) ? "dx[e] + " : "", cg_flit(b, cg_keep_scale(n->a.p)));
    cg_loop(G, N, body);
    cg_kernel_end(G);
}
static void emit_col_reduce(CudaGen *G)
{
    const GNode *n = G->n;
    int mul = n->op == OP_MUL_BWD;
    int64_t N = shape_numel(&CG_IN(0)->shape), nout = shape_numel(&n->shape);
    int64_t nother = mul ? shape_numel(&CG_IN(1)->shape) : 1;
    const GNode *t = op_is_backward(n->op) && n->gparam >= 0 ? &G->g->nodes[n->gparam] : NULL;
    CgColSum q = {.out = cg_out_loc(G, n),
                  .dy = cg_value_loc(G, n->in[0]),
                  .other = mul ? cg_value_loc(G, n->in[1]) : (CgLoc){0},
                  .out_shape = &n->shape,
                  .out_note = t ? t->name : NULL,
                  .rows = N / nout,
                  .nout = nout,
                  .nother = nother,
                  .s = mul ? 1.0 : n->a.scale,
                  .acc = cg_node_acc(n),
                  .mul = mul};
    cg_col_sum(G, op_name(n->op), &q);
}

/* comments for the operands: roles ra, rb of input nodes ia, ib; the output rc */

void cuda_emit_add(CudaGen *G) { emit_binary(G); }
void cuda_emit_sub(CudaGen *G) { emit_binary(G); }
void cuda_emit_mul(CudaGen *G) { emit_binary(G); }
void cuda_emit_gelu(CudaGen *G) { emit_activation(G); }
void cuda_emit_silu(CudaGen *G) { emit_activation(G); }
void cuda_emit_relu(CudaGen *G) { emit_activation(G); }
void cuda_emit_tanh(CudaGen *G) { emit_activation(G); }
void cuda_emit_sigmoid(CudaGen *G) { emit_activation(G); }
void cuda_emit_exp(CudaGen *G) { emit_activation(G); }
void cuda_emit_log(CudaGen *G) { emit_activation(G); }
void cuda_emit_abs(CudaGen *G) { emit_activation(G); }
void cuda_emit_recip(CudaGen *G) { emit_activation(G); }
void cuda_emit_acc(CudaGen *G) { emit_col_reduce(G); }
void cuda_emit_mul_bwd(CudaGen *G) { emit_col_reduce(G); }
