/* test_lt_mock.c: the mock cuBLASLt (runtime/device/cuda_api.c) computes bf16
 * GEMMs as a GPU would and refuses what a real cuBLASLt refuses.
 *
 *   - ragged bf16 GEMMs (C and D in bf16 or fp32), all four transpose
 *     combinations, padded leading dimensions, against a double reference at a
 *     tolerance derived from bf16's unit roundoff 2^-8 and k;
 *   - strided batched GEMMs (CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT and
 *     _STRIDED_BATCH_OFFSET), the gaps between matrices untouched;
 *   - every refused descriptor: its status and the message naming the field.
 *
 * Column-major throughout, as cuBLASLt reads its operands.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cuda_api.h"
#include "util.h"

TestSuite(lt_mock, .timeout = 120);

static const CudaApi *api;

typedef struct {
    int compute, scale, ta, tb;
    int type_ab, type_c, type_d;
    int64_t m, n, k, lda, ldb, ldc, ldd;
    int32_t batch;
    int64_t sa, sb, sc, sd; /* batch strides (elements) */
    uint64_t max_ws;
    uint32_t align[4]; /* 0: the default promise */
} Shape;

typedef struct {
    cublasLtMatmulDesc_t d;
    cublasLtMatrixLayout_t a, b, c, dd;
    cublasLtMatmulPreference_t p;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
} Lt;

static void set_batch(cublasLtMatrixLayout_t l, int32_t batch, int64_t stride)
{
    cr_assert(api->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch) == 0);
    cr_assert(api->cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                    sizeof stride) == 0);
}

/* descriptors for s (no heuristic yet) */
static void lt_make(Lt *g, const Shape *s)
{
    api = cuda_api_mock();
    memset(g, 0, sizeof *g);
    int32_t ta = s->ta, tb = s->tb;
    cr_assert(api->cublasLtMatmulDescCreate(&g->d, s->compute, s->scale) == 0, "%s", cuda_mock_lt_error());
    cr_assert(api->cublasLtMatmulDescSetAttribute(g->d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == 0);
    cr_assert(api->cublasLtMatmulDescSetAttribute(g->d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == 0);
    cr_assert(api->cublasLtMatrixLayoutCreate(&g->a, s->type_ab, ta ? s->k : s->m, ta ? s->m : s->k, s->lda) == 0);
    cr_assert(api->cublasLtMatrixLayoutCreate(&g->b, s->type_ab, tb ? s->n : s->k, tb ? s->k : s->n, s->ldb) == 0);
    cr_assert(api->cublasLtMatrixLayoutCreate(&g->c, s->type_c, s->m, s->n, s->ldc) == 0);
    cr_assert(api->cublasLtMatrixLayoutCreate(&g->dd, s->type_d, s->m, s->n, s->ldd) == 0);
    if (s->batch > 1) {
        set_batch(g->a, s->batch, s->sa);
        set_batch(g->b, s->batch, s->sb);
        set_batch(g->c, s->batch, s->sc);
        set_batch(g->dd, s->batch, s->sd);
    }
    cr_assert(api->cublasLtMatmulPreferenceCreate(&g->p) == 0);
    cr_assert(api->cublasLtMatmulPreferenceSetAttribute(g->p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &s->max_ws,
                                                        sizeof s->max_ws) == 0);
    for (int q = 0; q < 4; q++)
        if (s->align[q])
            cr_assert(api->cublasLtMatmulPreferenceSetAttribute(g->p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + q,
                                                                &s->align[q], sizeof s->align[q]) == 0);
}

static cublasStatus_t lt_plan(Lt *g)
{
    cublasLtMatmulHeuristicResult_t r;
    int n = 0;
    cublasStatus_t st = api->cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)1, g->d, g->a, g->b, g->c, g->dd, g->p,
                                                            1, &r, &n);
    if (st == 0) {
        cr_assert(n == 1);
        g->algo = r.algo;
        g->ws = r.workspaceSize;
    }
    return st;
}

static void lt_free(Lt *g)
{
    api->cublasLtMatmulDescDestroy(g->d);
    api->cublasLtMatrixLayoutDestroy(g->a);
    api->cublasLtMatrixLayoutDestroy(g->b);
    api->cublasLtMatrixLayoutDestroy(g->c);
    api->cublasLtMatrixLayoutDestroy(g->dd);
    api->cublasLtMatmulPreferenceDestroy(g->p);
}

static uint64_t rng_state = 7;
static float uniform(void) /* [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) * 0x1p-52 - 1.0);
}

/* a matrix buffer of `elems` elements of type t: values v (floats), stored
   rounded to bf16 when t is bf16; the rest poisoned (0xff: NaN) */
static void *store(int t, const float *v, size_t elems)
{
    size_t e = t == CUDA_R_16BF ? 2 : 4, bytes = (elems * e + 255) / 256 * 256;
    unsigned char *p = aligned_alloc(256, bytes);
    memset(p, 0xff, bytes);
    for (size_t i = 0; i < elems; i++)
        if (!isnan(v[i])) {
            if (t == CUDA_R_16BF) ((uint16_t *)p)[i] = kanc_f32_to_bf16(v[i]);
            else ((float *)p)[i] = v[i];
        }
    return p;
}
static double load(int t, const void *p, size_t i)
{
    return t == CUDA_R_16BF ? kanc_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* One GEMM of shape s with alpha, beta through the mock, against a double
   reference from the operands as stored (bf16 values are exact in float, so
   products are exact). The bound: fp32 accumulation of k terms and the alpha,
   beta epilogue err by at most (k + 2) 2^-24 (|alpha| S + |beta c|), S =
   sum |a b|; rounding D to bf16 adds u = 2^-8 of the result (bf16's unit
   roundoff, round to nearest). A D truncated instead of rounded, or operands
   rounded twice, exceed it. Returns the largest error as a fraction of its
   bound. */
static double check_gemm(const Shape *s, float alpha, float beta, int inplace)
{
    Lt g;
    lt_make(&g, s);
    cr_assert(lt_plan(&g) == 0, "%s", cuda_mock_lt_error());
    int64_t ac = s->ta ? s->m : s->k, bc = s->tb ? s->k : s->n;
    int32_t nb = s->batch > 1 ? s->batch : 1;
    size_t na = (size_t)(s->sa * (nb - 1) + s->lda * ac), nbb = (size_t)(s->sb * (nb - 1) + s->ldb * bc);
    size_t nc = (size_t)(s->sc * (nb - 1) + s->ldc * s->n), nd = (size_t)(s->sd * (nb - 1) + s->ldd * s->n);
    float *va = xmalloc(sizeof(float) * na), *vb = xmalloc(sizeof(float) * nbb), *vc = xmalloc(sizeof(float) * nc);
    float *nand = xmalloc(sizeof(float) * nd);
    for (size_t i = 0; i < na; i++) va[i] = uniform();
    for (size_t i = 0; i < nbb; i++) vb[i] = uniform();
    for (size_t i = 0; i < nc; i++) { /* NaN outside the matrices; beta 0: C's garbage must not leak in */
        int64_t q = s->sc ? (int64_t)i / s->sc : 0, off = (int64_t)i - q * s->sc;
        vc[i] = beta != 0 && q < nb && off % s->ldc < s->m && off / s->ldc < s->n ? uniform() : NAN;
    }
    for (size_t i = 0; i < nd; i++) nand[i] = NAN;
    /* the reference uses the values the GEMM sees: the operands as stored */
    if (s->type_ab == CUDA_R_16BF) {
        for (size_t i = 0; i < na; i++) va[i] = kanc_bf16_round(va[i]);
        for (size_t i = 0; i < nbb; i++) vb[i] = kanc_bf16_round(vb[i]);
    }
    if (s->type_c == CUDA_R_16BF)
        for (size_t i = 0; i < nc; i++) vc[i] = kanc_bf16_round(vc[i]);
    void *A = store(s->type_ab, va, na), *B = store(s->type_ab, vb, nbb), *C = store(s->type_c, vc, nc);
    void *D = inplace ? C : store(s->type_d, nand, nd), *ws = g.ws ? aligned_alloc(256, g.ws) : NULL;
    cublasStatus_t st = api->cublasLtMatmul((cublasLtHandle_t)1, g.d, &alpha, A, g.a, B, g.b, &beta, C, g.c, D, g.dd,
                                            &g.algo, ws, g.ws, NULL);
    cr_assert(st == 0, "matmul: %s", api->cublasLtGetStatusString(st));
    const double u = 0x1p-8, gk = (double)(s->k + 2) * 0x1p-24;
    double worst = 0;
    int bad = 0;
    for (int32_t q = 0; q < nb; q++)
        for (int64_t j = 0; j < s->n; j++)
            for (int64_t i = 0; i < s->m; i++) {
                double ref = 0, S = 0;
                for (int64_t l = 0; l < s->k; l++) {
                    double x = va[q * s->sa + (s->ta ? l + i * s->lda : i + l * s->lda)];
                    double y = vb[q * s->sb + (s->tb ? j + l * s->ldb : l + j * s->ldb)];
                    ref += x * y;
                    S += fabs(x * y);
                }
                double c = beta == 0 ? 0 : vc[q * s->sc + i + j * s->ldc];
                ref = alpha * ref + beta * c;
                double tol = gk * (fabs(alpha) * S + fabs(beta * c));
                if (s->type_d == CUDA_R_16BF) tol += u * (fabs(ref) + tol);
                double got = load(s->type_d, D, (size_t)(q * s->sd + i + j * s->ldd));
                double err = fabs(got - ref);
                if (!(err <= tol) && bad++ < 3)
                    cr_expect(0, "trans %d %d batch %d: D[%lld,%lld] = %.9g, want %.9g (bound %.3g)", s->ta, s->tb, q,
                              (long long)i, (long long)j, got, ref, tol);
                if (tol > 0 && err / tol > worst) worst = err / tol;
            }
    /* nothing outside the matrices written: padding rows and the gaps between batches */
    size_t outside = 0;
    for (size_t i = 0; i < nd; i++) {
        int64_t q = s->sd ? (int64_t)i / s->sd : 0, off = (int64_t)i - q * s->sd;
        int inside = q < nb && off % s->ldd < s->m && off / s->ldd < s->n;
        if (!inside) outside += !isnan(load(s->type_d, D, i));
    }
    cr_expect(outside == 0, "%zu elements outside D written", outside);
    cr_expect(bad == 0, "trans %d %d: %d elements outside the bound", s->ta, s->tb, bad);
    if (ws) { /* the algorithm's workspace was used */
        cr_expect(((unsigned char *)ws)[0] == 0xff && ((unsigned char *)ws)[g.ws - 1] == 0xff);
        free(ws);
    }
    if (!inplace) free(D);
    free(A), free(B), free(C), free(va), free(vb), free(vc), free(nand);
    lt_free(&g);
    return worst;
}

static Shape bf16_shape(int ta, int tb, int type_cd)
{
    Shape s = {.compute = CUBLAS_COMPUTE_32F, .scale = CUDA_R_32F, .ta = ta, .tb = tb, .type_ab = CUDA_R_16BF,
               .type_c = type_cd, .type_d = type_cd, .m = 37, .n = 29, .k = 301, .batch = 1, .max_ws = 1 << 22};
    s.lda = (ta ? s.k : s.m) + 3;
    s.ldb = (tb ? s.n : s.k) + 8;
    s.ldc = s.m + 5;
    s.ldd = s.m + 5;
    return s;
}

Test(lt_mock, bf16_gemms_in_every_transpose)
{
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        int types[2] = {CUDA_R_16BF, CUDA_R_32F};
        for (int c = 0; c < 2; c++) {
            Shape s = bf16_shape(t & 1, t >> 1, types[c]);
            double w1 = check_gemm(&s, 0.75f, t == 2 ? 0.0f : -0.5f, 0);
            if (w1 > worst) worst = w1;
            s.ldd = s.ldc; /* in place: D is C */
            double w2 = check_gemm(&s, 1.0f, 1.0f, 1);
            if (w2 > worst) worst = w2;
        }
    }
    /* the bound is not vacuous: bf16 rounding uses a fair part of it */
    cr_expect(worst > 0.2, "largest error only %.3g of its bound", worst);
}

Test(lt_mock, fp32_gemm_is_still_exact_to_fp32)
{
    Shape s = bf16_shape(1, 0, CUDA_R_32F);
    s.type_ab = CUDA_R_32F;
    check_gemm(&s, 2.0f, 0.5f, 0);
}

Test(lt_mock, strided_batched_gemms)
{
    for (int t = 0; t < 4; t++) {
        Shape s = bf16_shape(t & 1, t >> 1, t & 1 ? CUDA_R_32F : CUDA_R_16BF);
        s.k = 40;
        s.lda = (s.ta ? s.k : s.m) + 3;
        s.ldb = (s.tb ? s.n : s.k) + 8;
        s.batch = 3;
        s.sa = s.lda * (s.ta ? s.m : s.k) + 8; /* gaps between the matrices */
        s.sb = s.ldb * (s.tb ? s.k : s.n) + 16;
        s.sc = s.ldc * s.n + 24;
        s.sd = s.ldd * s.n + 40;
        check_gemm(&s, 1.25f, t == 3 ? 0.0f : 0.5f, 0);
    }
}

/* ------------------------------------------------------------ refusals */

#define REFUSED(expr, status, text)                                                                                \
    do {                                                                                                           \
        cublasStatus_t st_ = (expr);                                                                               \
        cr_expect(st_ == (status), "%s: status %d, want %d (%s)", #expr, st_, (status), cuda_mock_lt_error());     \
        cr_expect(strstr(cuda_mock_lt_error(), text), "%s: message \"%s\" lacks \"%s\"", #expr,                   \
                  cuda_mock_lt_error(), text);                                                                     \
        if (st_) cr_expect(strstr(api->cublasLtGetStatusString(st_), text), "status string %s",                  \
                           api->cublasLtGetStatusString(st_));                                                    \
    } while (0)

static cublasStatus_t plan_of(Shape s)
{
    Lt g;
    lt_make(&g, &s);
    cublasStatus_t st = lt_plan(&g);
    lt_free(&g);
    return st;
}

Test(lt_mock, refused_descriptors_name_the_field)
{
    api = cuda_api_mock();
    Shape s = bf16_shape(0, 0, CUDA_R_16BF), t;
    cr_assert(plan_of(s) == 0, "%s", cuda_mock_lt_error());
    /* type combinations */
    t = s, t.type_c = CUDA_R_32F; /* C fp32, D bf16 */
    REFUSED(plan_of(t), CUBLAS_STATUS_NOT_SUPPORTED, "Ctype CUDA_R_32F, Dtype CUDA_R_16BF");
    t = s, t.type_ab = CUDA_R_16F;
    REFUSED(plan_of(t), CUBLAS_STATUS_NOT_SUPPORTED, "Atype CUDA_R_16F");
    t = s, t.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    REFUSED(plan_of(t), CUBLAS_STATUS_NOT_SUPPORTED, "compute type 77");
    t = s, t.scale = CUDA_R_16BF;
    REFUSED(plan_of(t), CUBLAS_STATUS_NOT_SUPPORTED, "SCALE_TYPE CUDA_R_16BF");
    cublasLtMatmulDesc_t d;
    REFUSED(api->cublasLtMatmulDescCreate(&d, 64 /* CUBLAS_COMPUTE_16F */, CUDA_R_32F), CUBLAS_STATUS_NOT_SUPPORTED,
            "compute type 64");
    /* leading dimensions, shapes */
    t = s, t.lda = t.m - 1;
    REFUSED(plan_of(t), CUBLAS_STATUS_INVALID_VALUE, "Adesc: CUBLASLT_MATRIX_LAYOUT_LD 36 < rows 37");
    t = s, t.ldd = t.m - 2;
    REFUSED(plan_of(t), CUBLAS_STATUS_INVALID_VALUE, "Ddesc: CUBLASLT_MATRIX_LAYOUT_LD 35 < rows 37");
    {
        Lt g;
        lt_make(&g, &s);
        uint64_t rows = 30; /* op(B) now 30 x 29 against op(A) 37 x 301 */
        cr_assert(api->cublasLtMatrixLayoutSetAttribute(g.b, CUBLASLT_MATRIX_LAYOUT_ROWS, &rows, sizeof rows) == 0);
        REFUSED(lt_plan(&g), CUBLAS_STATUS_INVALID_VALUE, "k differs");
        rows = 301;
        api->cublasLtMatrixLayoutSetAttribute(g.b, CUBLASLT_MATRIX_LAYOUT_ROWS, &rows, sizeof rows);
        uint64_t cols = 28;
        api->cublasLtMatrixLayoutSetAttribute(g.dd, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
        REFUSED(lt_plan(&g), CUBLAS_STATUS_INVALID_VALUE, "Ddesc is 37 x 28");
        cols = 29;
        api->cublasLtMatrixLayoutSetAttribute(g.dd, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
        int32_t order = CUBLASLT_ORDER_ROW;
        api->cublasLtMatrixLayoutSetAttribute(g.c, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order);
        REFUSED(lt_plan(&g), CUBLAS_STATUS_NOT_SUPPORTED, "Cdesc: CUBLASLT_MATRIX_LAYOUT_ORDER 1");
        order = CUBLASLT_ORDER_COL;
        api->cublasLtMatrixLayoutSetAttribute(g.c, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order);
        /* transposes */
        int32_t op = 7;
        REFUSED(api->cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSA, &op, sizeof op),
                CUBLAS_STATUS_INVALID_VALUE, "CUBLASLT_MATMUL_DESC_TRANSA: 7");
        int16_t small = 1;
        REFUSED(api->cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSB, &small, sizeof small),
                CUBLAS_STATUS_INVALID_VALUE, "2 bytes, expected 4");
        op = CUBLAS_OP_T;
        api->cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSC, &op, sizeof op);
        REFUSED(lt_plan(&g), CUBLAS_STATUS_NOT_SUPPORTED, "TRANSC");
        op = CUBLAS_OP_N;
        api->cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSC, &op, sizeof op);
        uint32_t three = 3;
        REFUSED(api->cublasLtMatmulPreferenceSetAttribute(g.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &three,
                                                          sizeof three),
                CUBLAS_STATUS_INVALID_VALUE, "MIN_ALIGNMENT_B_BYTES: 3 is not a power of two");
        cr_expect(lt_plan(&g) == 0, "%s", cuda_mock_lt_error());
        lt_free(&g);
    }
    /* batches */
    t = s, t.batch = 2, t.sa = 20000, t.sb = 20000, t.sc = 2000, t.sd = 2000;
    cr_expect(plan_of(t) == 0, "%s", cuda_mock_lt_error());
    {
        Lt g;
        lt_make(&g, &t);
        int32_t three = 3;
        api->cublasLtMatrixLayoutSetAttribute(g.c, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &three, sizeof three);
        REFUSED(lt_plan(&g), CUBLAS_STATUS_INVALID_VALUE, "Cdesc: CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT 3, Adesc's is 2");
        lt_free(&g);
    }
    t.sb = -1;
    REFUSED(plan_of(t), CUBLAS_STATUS_INVALID_VALUE, "Bdesc: CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET -1 < 0");
    /* an alignment promise below the element size has no algorithm */
    t = s, t.align[0] = 1;
    REFUSED(plan_of(t), CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm for A aligned to 1 bytes");
}

/* what only the matmul call can see: pointers, the workspace, the algorithm */
Test(lt_mock, matmul_checks_pointers_workspace_and_algorithm)
{
    api = cuda_api_mock();
    Shape s = bf16_shape(0, 1, CUDA_R_16BF);
    s.lda = 40, s.ldb = 32, s.ldc = s.ldd = 48; /* 16-byte columns: the algorithm wants 16-byte pointers */
    s.max_ws = 1 << 20;
    Lt g;
    lt_make(&g, &s);
    cr_assert(lt_plan(&g) == 0, "%s", cuda_mock_lt_error());
    cr_expect(g.ws == 1 << 20);
    size_t big = 1 << 20;
    unsigned char *A = aligned_alloc(256, big), *B = aligned_alloc(256, big), *C = aligned_alloc(256, big),
                  *D = aligned_alloc(256, big), *ws = aligned_alloc(256, 2 * big);
    memset(A, 0, big), memset(B, 0, big), memset(C, 0, big), memset(D, 0, big);
    float one = 1, zero = 0;
#define MM(pa, pc, pd, palgo, pw, pwsb) \
    api->cublasLtMatmul((cublasLtHandle_t)1, g.d, &one, pa, g.a, B, g.b, &one, pc, g.c, pd, g.dd, palgo, pw, pwsb, NULL)
    cr_expect(MM(A, C, D, &g.algo, ws, g.ws) == 0, "%s", cuda_mock_lt_error());
    /* A two bytes off: a bf16 element boundary, but not the 16 bytes the algorithm needs */
    REFUSED(MM(A + 2, C, D, &g.algo, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE,
            "is not aligned to the 16 bytes the algorithm needs");
    REFUSED(MM(A, C, D + 8, &g.algo, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "D (");
    /* told the truth, the heuristic picks an algorithm that takes it */
    uint32_t two = 2;
    api->cublasLtMatmulPreferenceSetAttribute(g.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &two, sizeof two);
    cublasLtMatmulAlgo_t strict = g.algo;
    cr_assert(lt_plan(&g) == 0);
    cr_expect(MM(A + 2, C, D, &g.algo, ws, g.ws) == 0, "%s", cuda_mock_lt_error());
    /* the workspace the algorithm was chosen with */
    REFUSED(MM(A, C, D, &strict, ws, 1000), CUBLAS_STATUS_INVALID_VALUE,
            "workspaceSizeInBytes 1000 < the algorithm's 1048576");
    REFUSED(MM(A, C, D, &strict, NULL, g.ws), CUBLAS_STATUS_INVALID_VALUE, "workspace is NULL");
    memset(ws, 0, 2 * big);
    cr_expect(MM(A, C, D, &strict, ws, 2 * big) == 0);
    cr_expect(ws[0] == 0xff && ws[(1 << 20) - 1] == 0xff && ws[1 << 20] == 0, "the algorithm's workspace, no more");
    /* NULL operands; beta 0 leaves C unread */
    REFUSED(MM(NULL, C, D, &strict, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "A is NULL");
    REFUSED(MM(A, C, NULL, &strict, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "D is NULL");
    cr_expect(api->cublasLtMatmul((cublasLtHandle_t)1, g.d, &one, A, g.a, B, g.b, &zero, NULL, g.c, D, g.dd, &strict,
                                  ws, g.ws, NULL) == 0,
              "%s", cuda_mock_lt_error());
    /* in place needs equal C and D layouts */
    int64_t ld = 56;
    api->cublasLtMatrixLayoutSetAttribute(g.dd, CUBLASLT_MATRIX_LAYOUT_LD, &ld, sizeof ld);
    cr_assert(lt_plan(&g) == 0);
    REFUSED(MM(A, C, C, &g.algo, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "C == D (in place) needs Cdesc == Ddesc: ld 48 vs 56");
    cr_expect(MM(A, C, D, &g.algo, ws, g.ws) == 0, "%s", cuda_mock_lt_error());
    /* an algorithm from another configuration */
    REFUSED(MM(A, C, D, &strict, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "chosen for another configuration");
    cublasLtMatmulAlgo_t junk = {{0}};
    REFUSED(MM(A, C, D, &junk, ws, g.ws), CUBLAS_STATUS_INVALID_VALUE, "not one cublasLtMatmulAlgoGetHeuristic returned");
#undef MM
    lt_free(&g);
    free(A), free(B), free(C), free(D), free(ws);
}
