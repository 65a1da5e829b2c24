/* embedding.c: the token embedding: y[n, :] = W[idx[n], :]. */
#include <stdio.h>

#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

/* the lookup copies; its gradient adds each dy element into a row of dW */
static double embedding_arith(const Graph *g, const GNode *n)
{
    return n->op == OP_EMBEDDING_BWD ? (double)shape_numel(&g->nodes[n->in[1]].shape) : 0;
}

const OpFamily op_family_embedding = {.name = "embedding", .elementwise_flops = embedding_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

static Value L_embedding(Elab *E, Args *A)
{
    int x;
    int64_t num, dim;
    if (!el_arg_tensor(E, A, 0, DT_I32, &x) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &num) ||
        !el_arg_int(E, A, 2, 0, 1, INT64_MAX, &dim))
        return VERR;
    int w = el_param(E, A, "weight", shape_of(2, num, dim), INIT_NORMAL, 0.02, 0);
    GShape s = el_tshape(E, x);
    if (w < 0 || !el_shape_push(E, A->call, &s, dim)) return VERR;
    return vnode(el_emit(E, A->call, A->scope, OP_EMBEDDING, (int[]){x, w}, 2, s, NULL));
}

/* A learned position table: the value is the parameter itself ([n, dim]),
   which broadcasts over the batch when added to [B, n, dim]. */
static Value L_positions(Elab *E, Args *A)
{
    int64_t n, dim;
    if (!el_arg_int(E, A, 0, 0, 1, INT64_MAX, &n) || !el_arg_int(E, A, 1, 0, 1, INT64_MAX, &dim)) return VERR;
    return vnode(el_param(E, A, "weight", shape_of(2, n, dim), INIT_NORMAL, 0.02, 0));
}

const Builtin layer_embedding = {"embedding",          L_embedding, 3, 0, 1, "embedding(idx, num, dim)",
                                 {"idx", "num", "dim"}};
const Builtin layer_positions = {"positions", L_positions, 2, 0, 1, "positions(n, dim)", {"n", "dim"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* dW += scatter(dy) by the ids */
void op_vjp_embedding(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    if (ad_wants(ad, in[1])) ad_contribute(ad, in[1], OP_EMBEDDING_BWD, (int[]){in[0], dy}, 2, (GAttr){0});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

void cuda_emit_embedding(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&CG_IN(0)->shape), C = shape_last(&n->shape);
    cg_kernel_begin(G, "embedding", cg_blocks_for(N * C), 1, CG_BLOCK, 0, "y[n, c] = w[idx[n], c]");
    cg_out_ptr(G, "y");
    cg_in_ptr(G, "idx", 0);
    cg_in_ptr(G, "w", 1);
    char body[160];
    snprintf(body, sizeof body, "y[e] = w[(long long)idx[e / %lld] * %lld + e %% %lld];", (long long)C,
             (long long)C, (long long)C);
    cg_loop(G, N * C, body);
    cg_kernel_end(G);
}
void cuda_emit_embedding_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_numel(&CG_IN(0)->shape), V = n->shape.d[0], C = shape_last(&n->shape);
    unsigned tpb = 128;
    int64_t cblocks = cg_cdiv(C, tpb), chunks = cg_imax(1, cg_imin(V, CG_EMB_THREADS / (cblocks * tpb)));
    int64_t chunk = cg_cdiv(V, chunks);
    chunks = cg_cdiv(V, chunk);
    cg_kernel_begin(G, "embedding_bwd", (unsigned)cblocks, (unsigned)chunks, tpb, 0,
                    "dw[idx[n], c] += dy[n, c]; thread (column, %lld-row chunk of the vocabulary) "
                    "scans the ids in order: deterministic, no atomics",
                    (long long)chunk);
    cg_out_ptr(G, "dw");
    cg_in_ptr(G, "idx", 0);
    cg_in_ptr(G, "dy", 1);
    cg_line(G, "kanc_embedding_bwd(dw, idx, dy, %lldLL, %lld, %lld, %lld);", (long long)N, (long long)C,
            (long long)V, (long long)chunk);
    cg_kernel_end(G);
}
