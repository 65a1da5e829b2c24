/* lib_instantiate.cu: the CUDA library (cuda/kanc_lib.cuh) as a standalone translation
 * unit for nvcc: one kernel per template, instantiated with the parameters the
 * generator uses, so every template body is compiled for a real GPU target
 * (tests/test_codegen_cuda.c compiles it with -Werror). */
#include "kanc_lib.cuh"

#define KERNEL extern "C" __global__ void

/* B-splines of the shapes the models use: G = 5 and 8, k = 3, 2 and 1 */
KERNEL basis_g5k3(const float *x, const float *t, float *o, float *d) { kanc_basis<5, 3>(x[0], t, o, d); }
KERNEL basis_g8k2(const float *x, const float *t, float *o, float *d) { kanc_basis<8, 2>(x[0], t, o, d); }
KERNEL basis_g3k1(const float *x, const float *t, float *o, float *d) { kanc_basis<3, 1>(x[0], t, o, d); }

KERNEL gemm_nn(const float *A, const float *B, float *C) { kanc_gemm<0, 0, 64, 64, 32>(A, B, C, 7, 9, 11, 11, 9, 9, 1.f, 0.f); }
KERNEL gemm_tt(const float *A, const float *B, float *C) { kanc_gemm<1, 1, 32, 16, 8>(A, B, C, 7, 9, 11, 7, 11, 9, 2.f, 1.f); }

KERNEL kan_fwd(float *y, const float *x, const float *g, const float *b, const float *s, const float *sc)
{
    kanc_kan_fwd<KancBSpline<5, 3>, KANC_ACT_SILU, 1, 1, 64, 64, 3>(y, x, g, b, s, sc, 33, 12, 20);
}
KERNEL kan_fwd_noscaler(float *y, const float *x, const float *g, const float *b, const float *s)
{
    kanc_kan_fwd<KancBSpline<8, 2>, KANC_ACT_NONE, 1, 0, 16, 32, 1>(y, x, g, b, s, 0, 33, 12, 20);
}
KERNEL kan_bwd_w(float *db, float *ds, float *dsc, const float *dy, const float *x, const float *g,
                 const float *s, const float *sc)
{
    kanc_kan_bwd_w<KancBSpline<5, 3>, KANC_ACT_GELU, 1, 1, 64, 3, 32>(db, ds, dsc, dy, x, g, s, sc, 33, 12, 20);
}
KERNEL kan_bwd_x(float *dx, const float *dy, const float *x, const float *g, const float *b, const float *s,
                 const float *sc)
{
    kanc_kan_bwd_x<KancBSpline<5, 3>, KANC_ACT_RELU, 1, 1, 1, 64, 3, 32>(dx, dy, x, g, b, s, sc, 33, 12, 20);
}
/* the other bases, as the generator calls them: no base branch, no scaler */
KERNEL kan_fwd_chebyshev(float *y, const float *x, const float *g, const float *s)
{
    kanc_kan_fwd<KancChebyshev<4>, KANC_ACT_NONE, 0, 0, 64, 64, 3>(y, x, g, 0, s, 0, 33, 12, 20);
}
KERNEL kan_bwd_w_chebyshev(float *ds, const float *dy, const float *x, const float *g, const float *s)
{
    kanc_kan_bwd_w<KancChebyshev<3>, KANC_ACT_NONE, 0, 0, 64, 3, 32>(0, ds, 0, dy, x, g, s, 0, 33, 12, 20);
}
KERNEL kan_bwd_x_chebyshev(float *dx, const float *dy, const float *x, const float *g, const float *s)
{
    kanc_kan_bwd_x<KancChebyshev<4>, KANC_ACT_NONE, 0, 0, 1, 64, 3, 32>(dx, dy, x, g, 0, s, 0, 33, 12, 20);
}
KERNEL kan_fwd_rbf(float *y, const float *x, const float *g, const float *s)
{
    kanc_kan_fwd<KancRbf<8>, KANC_ACT_NONE, 0, 0, 64, 64, 3>(y, x, g, 0, s, 0, 33, 12, 20);
}
KERNEL kan_bwd_w_rbf(float *ds, const float *dy, const float *x, const float *g, const float *s)
{
    kanc_kan_bwd_w<KancRbf<8>, KANC_ACT_NONE, 0, 0, 64, 3, 32>(0, ds, 0, dy, x, g, s, 0, 33, 12, 20);
}
KERNEL kan_bwd_x_rbf(float *dx, const float *dy, const float *x, const float *g, const float *s)
{
    kanc_kan_bwd_x<KancRbf<8>, KANC_ACT_NONE, 0, 0, 0, 64, 3, 32>(dx, dy, x, g, 0, s, 0, 33, 12, 20);
}

/* the blocked KAN path: B-splines with base and scaler, Chebyshev without either */
KERNEL kan_blocked(float *wf, float *a, float *dw, float *dx, const float *x, const float *g, const float *b,
                   const float *s, const float *sc, float *db, float *ds, float *dsc)
{
    kanc_kan_fuse_w<KancBSpline<5, 3>, 1, 1, float>(wf, b, s, sc, 12, 20);
    kanc_kan_basis_rows<KancBSpline<5, 3>, KANC_ACT_SILU, 1, float>(a, x, g, 33, 12);
    kanc_kan_split_dw<KancBSpline<5, 3>, 1, 1>(db, ds, dsc, dw, s, sc, 12, 20);
    kanc_kan_dx_rows<KancBSpline<5, 3>, KANC_ACT_SILU, 1, 1>(dx, a, x, g, 33, 12);
}

KERNEL kan_blocked_chebyshev(float *wf, float *a, float *dw, float *dx, const float *x, const float *g,
                             const float *s, float *ds)
{
    kanc_kan_fuse_w<KancChebyshev<4>, 0, 0, float>(wf, 0, s, 0, 12, 20);
    kanc_kan_basis_rows<KancChebyshev<4>, KANC_ACT_NONE, 0, float>(a, x, g, 33, 12);
    kanc_kan_split_dw<KancChebyshev<4>, 0, 0>(0, ds, 0, dw, s, 0, 12, 20);
    kanc_kan_dx_rows<KancChebyshev<4>, KANC_ACT_NONE, 0, 0>(dx, a, x, g, 33, 12);
}

KERNEL layernorm(float *y, float *st, const float *x, const float *w, const float *b, float *dx, const float *dy,
                 float *dw, float *db)
{
    kanc_layernorm_fwd(y, st, x, w, b, 48, 1e-5f);
    kanc_layernorm_bwd_x<1>(dx, dy, x, st, w, 48);
    kanc_layernorm_bwd_wb_partial((double *)dx, dy, x, st, 16, 48, 4, 4);
}

KERNEL attention(float *y, float *P, const float *qkv, float *dqkv, const float *dy)
{
    kanc_attention_fwd<1>(y, P, qkv, 2, 8, 16, 2, 0.35f, 0.1, 1.f / 0.9f, 1, 2);
    kanc_attention_bwd_dv<1, 0>(dqkv, dy, P, 2, 8, 16, 2, 0.1, 1.f / 0.9f, 1, 2);
    kanc_attention_bwd_ds<1>(P, dy, qkv, 2, 8, 16, 2, 0.35f, 0.1, 1.f / 0.9f, 1, 2);
    kanc_attention_bwd_dqk<1, 1>(dqkv, P, qkv, 2, 8, 16, 2);
}

KERNEL cross_entropy(float *lse, float *loss, const float *logits, const int *tg, float *dl, const float *g)
{
    kanc_ce_lse(lse, logits, 65);
    kanc_ce_loss(loss, lse, logits, tg, 16, 65);
    kanc_ce_scale(dl, g, tg, 16);
    kanc_ce_bwd<0>(dl, g, logits, tg, lse, 16, 65);
}

KERNEL reductions(double *part, const float *x, float *out, const float *dy, const float *o)
{
    kanc_sum_partial<1>(part, x, 1000);
    part[0] = kanc_sum_parts(part, 16);
    kanc_col_partial<1>(part, dy, o, 16, 8, 8, 4);
    kanc_col_finish<1>(out, part, 8, 4, 0.5);
}

KERNEL softmax_and_axis_sums(float *y, const float *x, float *dx, const float *dy)
{
    kanc_softmax_fwd(y, x, 70);
    kanc_softmax_bwd<0>(dx, dy, y, 70);
    kanc_softmax_bwd<1>(dx, dy, y, 70);
    kanc_sum_axis(y, x, 3, 17, 5, 0.5);
    kanc_sum_rows(y, x, 300, 1.0);
    kanc_sum_axis_bwd<0>(dx, dy, 3, 17, 5, 0.5);
    kanc_sum_axis_bwd<1>(dx, dy, 3, 17, 5, 1.0);
}

KERNEL kan_reg(float *y, float *st, const float *w, float *dw)
{
    kanc_kan_reg_fwd(y, st, w, 35, 8, 1.f, 1.f);
    kanc_kan_reg_bwd(dw, y, w, st, 35, 8, 1.f, 1.f);
}

KERNEL adamw(float *p, const float *g, float *m, float *v)
{
    kanc_adamw(p, g, m, v, 100, 1.f, 0.99997f, 3e-4f, 0.05f, 0.9f, 0.95f, 1e-8f);
}

KERNEL embedding_bwd(float *dw, const int *idx, const float *dy) { kanc_embedding_bwd(dw, idx, dy, 16, 8, 65, 4); }

KERNEL core(const KancArgs *args, float *out)
{
    KancScalars *s = KANC_SCALARS(args);
    float v = kanc_block_sum(out[threadIdx.x]) + kanc_block_max(out[threadIdx.x]);
    out[0] = v + kanc_act_grad(KANC_ACT_GELU, s->lr) + kanc_drop(0.1, 1.f / 0.9f, s->seed, s->step, 3);
}
