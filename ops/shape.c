/* shape.c: slice and concat of the last dimension, reshape. */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

const OpFamily op_family_shape = {.name = "shape"};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

/* split(x, n) or split(x, [sizes]) along the last dimension. */
static Value L_split(Elab *E, Args *A)
{
    int x;
    if (!el_arg_real(E, A, 0, 1, &x)) return VERR;
    GShape s = el_tshape(E, x);
    int64_t last = shape_last(&s);
    Value v = A->v[1];
    const Value *sz = v.k == V_LIST ? v.items : NULL;
    int n = v.k == V_LIST ? v.n : v.k == V_INT && v.i >= 1 && v.i <= 4096 ? (int)v.i : 0;
    if (n < 1) return el_bad_arg(E, A, 1, "must be a number of parts (1 to 4096) or a list of sizes"), VERR;
    int64_t sum = 0;
    for (int i = 0; sz && i < n; i++) {
        if (sz[i].k != V_INT || sz[i].i < 1 || sz[i].i > last)
            return el_bad_arg(E, A, 1, "must hold positive int sizes"), VERR;
        sum += sz[i].i;
    }
    if (sz ? sum != last : last % n) {
        char why[128];
        snprintf(why, sizeof why, "must %s the last dimension of %s", sz ? "add up to" : "divide",
                 el_shape_text(E, &s));
        return el_bad_arg(E, A, 1, why), VERR;
    }
    Value t = {V_TUPLE, n, {0}};
    t.items = arena_alloc(el_arena(E), (size_t)n * sizeof(Value));
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = sz ? sz[i].i : last / n;
        GAttr at = {.start = start, .len = len};
        t.items[i] = vnode(el_emit(E, A->call, A->scope, OP_SLICE, &x, 1, el_with_last(s, len), &at));
        if (t.items[i].k == V_ERR) return VERR;
        start += len;
    }
    return n == 1 ? t.items[0] : t;
}

/* concat(a, b, ...) along the last dimension: a chain of pairwise concats. */
static Value L_concat(Elab *E, Args *A)
{
    int y;
    if (!el_arg_real(E, A, 0, 1, &y)) return VERR;
    for (int i = 0; i < A->nrest; i++) {
        Value v = A->rest[i];
        if (v.k != V_TENSOR || el_graph(E)->nodes[v.t].dtype != DT_REAL)
            return el_err(E, A->rest_at[i], "argument %d of '%s' must be a real tensor, got %s", i + 2,
                          A->callee, v.k == V_TENSOR ? "token ids" : el_kind_name(v.k));
        GShape a = el_tshape(E, y), b = el_tshape(E, v.t);
        int same = a.nd == b.nd;
        for (int d = 0; same && d < a.nd - 1; d++) same = a.d[d] == b.d[d];
        if (!same)
            return el_err(E, A->rest_at[i],
                          "'%s': shapes %s and %s differ in more than the last "
                          "dimension",
                          A->callee, el_shape_text(E, &a), el_shape_text(E, &b));
        if (a.d[a.nd - 1] > INT64_MAX - b.d[b.nd - 1]) return el_err(E, A->call, "concat too large");
        y = el_emit(E, A->call, A->scope, OP_CONCAT, (int[]){y, v.t}, 2,
                    el_with_last(a, a.d[a.nd - 1] + b.d[b.nd - 1]), NULL);
        if (y < 0) return VERR;
    }
    return vnode(y);
}

/* reshape(x, [dims]): one dimension may be -1 (inferred). */
static Value L_reshape(Elab *E, Args *A)
{
    int x;
    if (!el_arg_real(E, A, 0, 0, &x)) return VERR;
    Value v = A->v[1];
    if (v.k != V_LIST || v.n > G_MAXDIM)
        return el_bad_arg(E, A, 1, "must be a list of at most 6 dimensions"), VERR;
    GShape xs = el_tshape(E, x), s = {0};
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < v.n; i++) {
        Value d = v.items[i];
        if (d.k != V_INT || (d.i < 1 && d.i != -1) || (d.i == -1 && infer >= 0))
            return el_bad_arg(E, A, 1, "must hold positive ints and at most one -1"), VERR;
        if (d.i == -1)
            infer = i;
        else if (__builtin_mul_overflow(known, d.i, &known))
            known = INT64_MAX;
        s.d[s.nd++] = d.i;
    }
    int64_t total = shape_numel(&xs);
    if (infer >= 0 && total % known == 0) s.d[infer] = total / known;
    if (infer >= 0 ? total % known : known != total) {
        char why[160];
        snprintf(why, sizeof why, "does not fit the %lld elements of %s", (long long)total,
                 el_shape_text(E, &xs));
        return el_bad_arg(E, A, 1, why), VERR;
    }
    return vnode(el_emit(E, A->call, A->scope, OP_RESHAPE, &x, 1, s, NULL));
}

const Builtin layer_split = {"split", L_split, 2, 0, 1, "split(x, n) or split(x, [sizes])", {"x", "parts"}};
const Builtin layer_concat = {"concat", L_concat, 1, 1, 1, "concat(a, b, ...)", {"a"}};
const Builtin layer_reshape = {"reshape", L_reshape, 2, 0, 1, "reshape(x, [dims])", {"x", "shape"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

void op_vjp_slice(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0]))
        ad_contribute(ad, n->in[0], OP_SLICE_BWD, &dy, 1, (GAttr){.start = n->a.start, .len = n->a.len});
}

/* each input's gradient is its slice of dy */
void op_vjp_concat(AdCtx *ad, const GNode *n, int dy)
{
    Graph *g = ad_graph(ad);
    int64_t ca = shape_last(&g->nodes[n->in[0]].shape);
    for (int j = 0; j < 2; j++) {
        if (!ad_wants(ad, n->in[j])) continue;
        GShape s = g->nodes[n->in[j]].shape;
        GAttr a = {.start = j ? ca : 0, .len = shape_last(&s)};
        int piece = ad_emit(ad, OP_SLICE, &dy, 1, s, &a, -1);
        ad_contribute_value(ad, n->in[j], piece);
    }
}

void op_vjp_reshape(AdCtx *ad, const GNode *n, int dy)
{
    if (ad_wants(ad, n->in[0])) ad_contribute(ad, n->in[0], OP_ACC, &dy, 1, (GAttr){.scale = 1});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

static void emit_copy(CudaGen *G, const char *what)
{
    int64_t N = shape_numel(&G->n->shape);
    CgLoc y = cg_out_loc(G, G->n), x = cg_value_loc(G, G->n->in[0]);
    if (y.area == x.area && y.off == x.off) return;
    cg_kernel_begin(G, what, cg_blocks_for(N), 1, CG_BLOCK, 0, "y = x");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    cg_loop(G, N, "y[e] = x[e];");
    cg_kernel_end(G);
}
void cuda_emit_slice(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t rows = shape_rows(&CG_IN(0)->shape), C = shape_last(&CG_IN(0)->shape);
    int64_t start = n->a.start, len = n->a.len;
    char body[160];
    cg_kernel_begin(G, "slice", cg_blocks_for(rows * len), 1, CG_BLOCK, 0, "y[r, :] = x[r, %lld:%lld]",
                    (long long)start, (long long)(start + len));
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "x", 0);
    snprintf(body, sizeof body, "y[e] = x[(e / %lld) * %lld + %lld + e %% %lld];", (long long)len,
             (long long)C, (long long)start, (long long)len);
    cg_loop(G, rows * len, body);
    cg_kernel_end(G);
}

void cuda_emit_slice_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t rows = shape_rows(&n->shape), C = shape_last(&n->shape);
    int64_t start = n->a.start, len = n->a.len;
    cg_kernel_begin(G, "slice_bwd", cg_blocks_for(rows * C), 1, CG_BLOCK, 0,
                    "dx[r, %lld:%lld] (+)= dy[r, :], other columns 0 (or kept)", (long long)start,
                    (long long)(start + len));
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride()) {", (long long)(rows * C));
    cg_line(G, "    long long c = e %% %lld;", (long long)C);
    cg_line(G, "    float v = c >= %lld && c < %lld ? dy[(e / %lld) * %lld + c - %lld] : 0.0f;",
            (long long)start, (long long)(start + len), (long long)C, (long long)len, (long long)start);
    cg_line(G, "    dx[e] = %sv;", cg_node_acc(n) ? "dx[e] + " : "");
    cg_line(G, "}");
    cg_kernel_end(G);
}

void cuda_emit_concat(CudaGen *G)
{
    int64_t rows = shape_rows(&CG_IN(0)->shape), ca = shape_last(&CG_IN(0)->shape),
            cb = shape_last(&CG_IN(1)->shape), W = ca + cb;
    cg_kernel_begin(G, "concat", cg_blocks_for(rows * W), 1, CG_BLOCK, 0, "y[r] = [a[r], b[r]]");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "a", 0);
    cg_in_ptr(G, "b", 1);
    cg_line(G, "for (long long e = kanc_gtid(); e < %lldLL; e += kanc_gstride()) {", (long long)(rows * W));
    cg_line(G, "    long long r = e / %lld, c = e %% %lld;", (long long)W, (long long)W);
    cg_line(G, "    y[e] = c < %lld ? a[r * %lld + c] : b[r * %lld + c - %lld];", (long long)ca,
            (long long)ca, (long long)cb, (long long)ca);
    cg_line(G, "}");
    cg_kernel_end(G);
}

void cuda_emit_reshape(CudaGen *G) { emit_copy(G, "reshape"); }
