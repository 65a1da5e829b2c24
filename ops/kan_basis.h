/* kan_basis.h: a KAN layer's basis family, behind one interface.
 *
 * A KAN layer (ops/kan.c) computes y = A(x) Wf^T where row n of A holds, per
 * input i, [act(x_ni), f_0(x_ni) .. f_{nf-1}(x_ni)]: the basis functions f_c
 * of one family, parameterised by (G, k) and by a per-input grid buffer.
 * Everything that knows what the functions and their grid are lives in the
 * family's files; the rest of kanc asks through KanBasis:
 *
 *   the kan() layer       the grid and spline_weight shapes, the option check
 *   init (runtime)        the grid's initial values, the spline-weight init
 *   model (runtime)       the check of a loaded grid
 *   CPU kernels           the values (and derivatives) at x, f32 and f64
 *   CUDA kernels          the basis type of the fused templates
 *   FLOPs                 nf columns per input
 *   the probe (runtime)   the grid range, for the out-of-grid fraction
 *   state_dict, checkpoint   the grid buffer's file dtype (F32, or I64)
 *
 * A family also says how its state is laid out (KanBasis.weight_in_major,
 * shared_grid): the fused layer reads spline weights [out, in, nf] or
 * [in, out, nf], and a grid [in, grid_len] or one row [grid_len] for every
 * input. What differs per family in the kan() layer itself (its options,
 * state_dict names, extra nodes such as FastKAN's LayerNorm) is in ops/kan.c,
 * one builder per family.
 *
 * Adding a basis family NAME (e.g. rbf, chebyshev):
 *   1. ops/kan_bases.def: a line BASIS(NAME_UPPER, name) (its GAttr.basis id);
 *   2. ops/kan_basis_<name>.c: `const KanBasis kan_basis_<name>` with every
 *      function below, and its CPU evaluation for REAL = float and double
 *      (the KanBasisCpu_f32/_f64 it points to);
 *   3. cuda/kanc_basis_<name>.cuh: a struct with NB, NG and a device eval()
 *      like KancBSpline (cuda/kanc_basis_bspline.cuh), included by
 *      cuda/kanc_lib.cuh;
 *   4. ops/kan.c: its kan() options and its layer builder (state_dict names,
 *      init), and the tests (a fixture and finite differences) and
 *      docs/language.md.
 * Nothing else changes: the fused layer, the planner, the emitters and the
 * checkpoint code take the basis from GAttr.basis.
 */
#ifndef KANC_KAN_BASIS_H
#define KANC_KAN_BASIS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
#define BASIS(ENUM, name) KAN_BASIS_##ENUM,
#include "kan_bases.def"
#undef BASIS
    KAN_N_BASES
} KanBasisId;

/* CPU evaluation in one precision, over inputs i0 .. i0+n-1 of one row x
   (input i at x[i], its grid row at grid + i * grid_len). A span of inputs
   per call keeps the fused layer's inner loops free of indirect calls.
     prepare()    summarises a layer's grid once per kernel call (NULL allowed
                  when there is nothing to summarise; released with free());
     fill()       A's entries: a + t * stride gets f_0 .. f_{nf-1}(x[i0+t])
                  (the caller zeroed it, so a sparse basis writes only its
                  non-zero functions);
     dot_deriv()  the input gradient's contraction: acc[t] += sum_c
                  f'_c(x[i0+t]) g[t * stride + c], over c in increasing order.
   scratch holds grid_len(G, k) + 2 nf(G, k) values. */
#define KAN_BASIS_CPU(REAL, SUFFIX)                                                                \
    typedef struct {                                                                               \
        void *(*prepare)(const REAL *grid, int64_t in, int G, int k);                              \
        void (*fill)(const void *prep, const REAL *grid, const REAL *x, int64_t i0, int n, int G,  \
                     int k, REAL *a, int64_t stride, REAL *scratch);                               \
        void (*dot_deriv)(const void *prep, const REAL *grid, const REAL *x, int64_t i0, int n,    \
                          int G, int k, const REAL *g, int64_t stride, REAL *acc, REAL *scratch);  \
    } KanBasisCpu##SUFFIX;
KAN_BASIS_CPU(float, _f32)
KAN_BASIS_CPU(double, _f64)
#undef KAN_BASIS_CPU

typedef struct {
    const char *name;
    /* functions per input: spline_weight is [out, in, nf] */
    int (*nf)(int G, int k);
    /* the grid buffer is [in, grid_len] */
    int (*grid_len)(int G, int k);
    /* NULL if (G, k, lo, hi) give a usable grid in float32, else why not */
    const char *(*check_options)(int G, int k, double lo, double hi);
    /* one input's initial grid row over [lo, hi] */
    void (*init_grid)(double *row, int G, int k, double lo, double hi);
    /* -1 if a loaded grid row is usable, else the index of the first bad value,
       with the reason in why */
    int64_t (*check_grid)(const double *row, int G, int k, char *why, size_t whylen);
    /* The spline-weight init (efficient-kan's curve2coeff): the m points at
       which noise is fitted by least squares, from one input's grid row; x
       holds grid_len values. Returns m. */
    int (*fit_points)(const double *row, int G, int k, double *x);
    /* all nf values at x in double, exactly as the PyTorch reference computes
       them (the spline-weight init fits with these); scratch: grid_len values */
    void (*reference)(const double *row, double x, int G, int k, double *v, double *scratch);
    /* The range of one input's grid row inside which the basis resolves x (the
       train log's out-of-grid fraction counts the samples outside it); a
       basis that maps every x inside (e.g. through tanh) gives -inf, +inf. */
    void (*grid_range)(const double *row, int G, int k, double *lo, double *hi);
    const KanBasisCpu_f32 *cpu_f32;
    const KanBasisCpu_f64 *cpu_f64;
    /* the CUDA basis type of the fused templates, printf'd with G and k */
    const char *cuda_type;
    /* 1: the weights are [in, out, nf] (ChebyKAN's cheby_coeffs); 0: [out, in, nf] */
    int weight_in_major;
    /* 1: one grid row of grid_len values serves every input (the buffer is
       [grid_len]); 0: a row per input ([in, grid_len]) */
    int shared_grid;
    /* 1: the grid holds integers and a state_dict stores it as I64 (ChebyKAN's arange) */
    int grid_i64;
} KanBasis;

/* The family of id, or NULL when id is not one. */
const KanBasis *kan_basis(int id);

/* Offset of input i's grid row in the grid buffer. */
static inline int64_t kan_basis_grid_row(const KanBasis *b, int64_t i, int G, int k)
{
    return b->shared_grid ? 0 : i * b->grid_len(G, k);
}

/* Offset of weight (o, i, 0) in a layer's [out, in, nf] or [in, out, nf] weights. */
static inline int64_t kan_basis_weight_at(const KanBasis *b, int64_t o, int64_t i, int64_t in, int64_t out, int nf)
{
    return (b->weight_in_major ? i * out + o : o * in + i) * nf;
}

#endif
