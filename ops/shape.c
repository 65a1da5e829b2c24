/* shape.c: slice and concat of the last dimension, reshape. */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "ops.h"

const OpFamily op_family_shape = {.name = "shape"};

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
    cg_kernel_begin(G, "slice", cg_blocks_for(rows * len), 1, CG_BLOCK, 0,
                 "y[r, :] = x[r, %lld:%lld]", (long long)start, (long long)(start + len));
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
