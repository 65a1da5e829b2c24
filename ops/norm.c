/* norm.c: layernorm (torch.nn.LayerNorm) and RMSNorm (LLaMA's) over the last dimension. */
#include "autodiff.h"
#include "cuda_emit.h"
#include "layer.h"
#include "ops.h"

/* per element: layernorm forward mean (1), variance (3), (x - mean) rstd w + b (4);
   backward x-hat again (2), dy w (1), the two row sums (3), dx (4), dw and db (3).
   rmsnorm forward x^2 and its sum (2), x rstd w (2); backward x-hat (1), dy w (1),
   the row sum (2), dx (3), dw (2) */
static double norm_arith(const Graph *g, const GNode *n)
{
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : n;
    double per = n->op == OP_LAYERNORM ? 8 : n->op == OP_LAYERNORM_BWD ? 13 : n->op == OP_RMSNORM ? 4 : 9;
    return per * (double)shape_numel(&f->shape);
}

const OpFamily op_family_norm = {.name = "norm", .elementwise_flops = norm_arith};

/* ---- the language: the builtin layers (compiler/layer.h) ---- */

static Value L_layernorm(Elab *E, Args *A)
{
    int x;
    double eps;
    if (!el_arg_real(E, A, 0, 1, &x) || !el_arg_num(E, A, 1, 1e-5, &eps)) return VERR;
    if (!(eps > 0)) return el_bad_arg(E, A, 1, "must be positive"), VERR;
    GShape xs = el_tshape(E, x);
    int64_t C = shape_last(&xs);
    int w = el_param(E, A, "weight", shape_of(1, C), INIT_ONES, 0, 0);
    int b = w < 0 ? -1 : el_param(E, A, "bias", shape_of(1, C), INIT_ZEROS, 0, 0);
    if (b < 0) return VERR;
    GAttr at = {.eps = eps};
    int y = el_emit(E, A->call, A->scope, OP_LAYERNORM, (int[]){x, w, b}, 3, xs, &at);
    if (y >= 0) {
        el_graph(E)->nodes[y].aux = shape_of(2, shape_rows(&xs), (int64_t)2);
        el_graph(E)->nodes[y].aux_numel = shape_rows(&xs) * 2;
    }
    return vnode(y);
}

const Builtin layer_layernorm = {"layernorm", L_layernorm, 1, 0, 1, "layernorm(x, eps = 1e-5)", {"x", "eps"}};

/* rmsnorm(x, eps): x / sqrt(mean(x^2) + eps) * weight, LLaMA's RMSNorm (no
   mean subtracted, no bias); the parameter is `weight` [C], ones at init */
static Value L_rmsnorm(Elab *E, Args *A)
{
    int x;
    double eps;
    if (!el_arg_real(E, A, 0, 1, &x) || !el_arg_num(E, A, 1, 1e-6, &eps)) return VERR;
    if (!(eps > 0)) return el_bad_arg(E, A, 1, "must be positive"), VERR;
    GShape xs = el_tshape(E, x);
    int w = el_param(E, A, "weight", shape_of(1, shape_last(&xs)), INIT_ONES, 0, 0);
    if (w < 0) return VERR;
    GAttr at = {.eps = eps};
    int y = el_emit(E, A->call, A->scope, OP_RMSNORM, (int[]){x, w}, 2, xs, &at);
    if (y >= 0) {
        el_graph(E)->nodes[y].aux = shape_of(1, shape_rows(&xs));
        el_graph(E)->nodes[y].aux_numel = shape_rows(&xs);
    }
    return vnode(y);
}

const Builtin layer_rmsnorm = {"rmsnorm", L_rmsnorm, 1, 0, 1, "rmsnorm(x, eps = 1e-6)", {"x", "eps"}};

/* ---- autodiff: the VJP rules (compiler/autodiff.h) ---- */

/* one backward node computes dx, dw and db; its value is dx */
void op_vjp_layernorm(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    ad_contribute(ad, in[0], OP_LAYERNORM_BWD, (int[]){dy, in[0], in[1], in[2]}, 4, (GAttr){.eps = n->a.eps});
}

/* one backward node computes dx and dw; its value is dx */
void op_vjp_rmsnorm(AdCtx *ad, const GNode *n, int dy)
{
    const int *in = n->in;
    ad_contribute(ad, in[0], OP_RMSNORM_BWD, (int[]){dy, in[0], in[1]}, 3, (GAttr){.eps = n->a.eps});
}

/* ---- CUDA: the kernels of a node (compiler/cuda_emit.h) ---- */

void cuda_emit_layernorm(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), C = shape_last(&CG_IN(0)->shape);
    char b[32];
    cg_kernel_begin(G, "layernorm_fwd", (unsigned)N, 1, cg_row_threads(C), 1,
                    "y = (x - mean) rstd w + b, stats = (mean, rstd); one block per row");
    cg_out_ptr(G, "y");
    GShape as = shape_of(2, N, (int64_t)2);
    cg_ptr(G, "float", "stats", cg_aux_loc(G, n->id), &as, "(mean, rstd)");
    cg_in_ptr(G, "x", 0);
    cg_in_ptr(G, "w", 1);
    cg_in_ptr(G, "b", 2);
    cg_line(G, "kanc_layernorm_fwd(y, stats, x, w, b, %lld, %s);", (long long)C, cg_dlit(b, n->a.eps));
    cg_kernel_end(G);
}

void cuda_emit_layernorm_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(1)->shape), C = shape_last(&CG_IN(1)->shape);
    GShape as = shape_of(2, N, (int64_t)2);
    cg_kernel_begin(G, "layernorm_bwd_x", (unsigned)N, 1, cg_row_threads(C), 1,
                    "dx (+)= rstd (dy w - mean(dy w) - xhat mean(dy w xhat)); one block per row");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    cg_ptr(G, "const float", "stats", cg_aux_loc(G, n->fwd), &as, "(mean, rstd)");
    cg_in_ptr(G, "w", 2);
    cg_line(G, "kanc_layernorm_bwd_x<%d>(dx, dy, x, stats, w, %lld);", cg_node_acc(n), (long long)C);
    cg_kernel_end(G);
    /* dw and db: column sums in two launches (cuda/kanc_norm.cuh) */
    CgChunks ch = cg_col_chunks(N, C);
    CgLoc part = {AREA_WS, 0}, part_b = {AREA_WS, (int64_t)ch.nchunks * C * 8};
    cg_need_ws(G, 2 * (int64_t)ch.nchunks * C * 8);
    cg_kernel_begin(G, "layernorm_bwd_wb_partial", (unsigned)cg_cdiv(C, CG_BLOCK), (unsigned)ch.nchunks, CG_BLOCK, 0,
                    "ws[0 | 1][chunk][c] = sum of dy xhat | dy over the chunk's rows; %d chunks of %lld rows",
                    ch.nchunks, (long long)ch.chunk);
    cg_ptr(G, "double", "part", part, NULL, "partial sums (workspace)");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    cg_ptr(G, "const float", "stats", cg_aux_loc(G, n->fwd), &as, "(mean, rstd)");
    cg_line(G, "kanc_layernorm_bwd_wb_partial(part, dy, x, stats, %lldLL, %lld, %lldLL, %d);", (long long)N,
            (long long)C, (long long)ch.chunk, ch.nchunks);
    cg_kernel_end(G);
    cg_kernel_begin(G, "layernorm_bwd_wb", cg_blocks_for(C), 1, CG_BLOCK, 0,
                    "dw += the %d partial sums of dy xhat, db += those of dy", ch.nchunks);
    cg_ptr(G, "float", "dw", cg_grad_loc(G, n->in[2]), &CG_IN(2)->shape, "grad of weight");
    cg_ptr(G, "float", "db", cg_grad_loc(G, n->in[3]), &CG_IN(3)->shape, "grad of bias");
    cg_ptr(G, "const double", "part", part, NULL, "partial sums of dw (workspace)");
    cg_ptr(G, "const double", "part_b", part_b, NULL, "partial sums of db");
    cg_line(G, "kanc_col_finish<1>(dw, part, %lldLL, %d, 1.0);", (long long)C, ch.nchunks);
    cg_line(G, "kanc_col_finish<1>(db, part_b, %lldLL, %d, 1.0);", (long long)C, ch.nchunks);
    cg_kernel_end(G);
}

void cuda_emit_rmsnorm(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(0)->shape), C = shape_last(&CG_IN(0)->shape);
    char b[32];
    GShape as = shape_of(1, N);
    cg_kernel_begin(G, "rmsnorm_fwd", (unsigned)N, 1, cg_row_threads(C), 1,
                    "y = x rstd w, rstd = 1/sqrt(mean(x^2) + eps); one block per row");
    cg_out_ptr(G, "y");
    cg_ptr(G, "float", "rstd", cg_aux_loc(G, n->id), &as, "rstd per row");
    cg_in_ptr(G, "x", 0);
    cg_in_ptr(G, "w", 1);
    cg_line(G, "kanc_rmsnorm_fwd(y, rstd, x, w, %lld, %s);", (long long)C, cg_dlit(b, n->a.eps));
    cg_kernel_end(G);
}

void cuda_emit_rmsnorm_bwd(CudaGen *G)
{
    const GNode *n = G->n;
    int64_t N = shape_rows(&CG_IN(1)->shape), C = shape_last(&CG_IN(1)->shape);
    GShape as = shape_of(1, N);
    cg_kernel_begin(G, "rmsnorm_bwd_x", (unsigned)N, 1, cg_row_threads(C), 1,
                    "dx (+)= rstd (dy w - xhat mean(dy w xhat)); one block per row");
    cg_out_ptr(G, "dx");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    cg_ptr(G, "const float", "rstd", cg_aux_loc(G, n->fwd), &as, "rstd per row");
    cg_in_ptr(G, "w", 2);
    cg_line(G, "kanc_rmsnorm_bwd_x<%d>(dx, dy, x, rstd, w, %lld);", cg_node_acc(n), (long long)C);
    cg_kernel_end(G);
    /* dw: column sums in two launches, as layernorm's */
    CgChunks ch = cg_col_chunks(N, C);
    CgLoc part = {AREA_WS, 0};
    cg_need_ws(G, (int64_t)ch.nchunks * C * 8);
    cg_kernel_begin(G, "rmsnorm_bwd_w_partial", (unsigned)cg_cdiv(C, CG_BLOCK), (unsigned)ch.nchunks, CG_BLOCK, 0,
                    "ws[chunk][c] = sum of dy xhat over the chunk's rows; %d chunks of %lld rows", ch.nchunks,
                    (long long)ch.chunk);
    cg_ptr(G, "double", "part", part, NULL, "partial sums (workspace)");
    cg_in_ptr(G, "dy", 0);
    cg_in_ptr(G, "x", 1);
    cg_ptr(G, "const float", "rstd", cg_aux_loc(G, n->fwd), &as, "rstd per row");
    cg_line(G, "kanc_rmsnorm_bwd_w_partial(part, dy, x, rstd, %lldLL, %lld, %lldLL);", (long long)N, (long long)C,
            (long long)ch.chunk);
    cg_kernel_end(G);
    cg_kernel_begin(G, "rmsnorm_bwd_w", cg_blocks_for(C), 1, CG_BLOCK, 0, "dw += the %d partial sums of dy xhat",
                    ch.nchunks);
    cg_ptr(G, "float", "dw", cg_grad_loc(G, n->in[2]), &CG_IN(2)->shape, "grad of weight");
    cg_ptr(G, "const double", "part", part, NULL, "partial sums of dw (workspace)");
    cg_line(G, "kanc_col_finish<1>(dw, part, %lldLL, %d, 1.0);", (long long)C, ch.nchunks);
    cg_kernel_end(G);
}
