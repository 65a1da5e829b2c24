/* graph_build.h: small helpers for tests that build graphs by hand. */
#ifndef KANC_TEST_GRAPH_BUILD_H
#define KANC_TEST_GRAPH_BUILD_H

#include <criterion/criterion.h>
#include <string.h>

#include "autodiff.h"
#include "exec_cpu.h"
#include "graph.h"
#include "kan_basis.h"

typedef struct {
    Graph g;
    uint64_t seed; /* for the values the test fills in */
} Case;

/* an input, parameter or buffer; parameters are trainable with weight decay */
static inline int leaf(Case *c, GOp op, const char *name, GShape s, GDtype dt)
{
    GNode n = {0};
    n.op = op;
    n.name = (char *)name;
    n.shape = s;
    n.dtype = dt;
    n.trainable = op == OP_PARAM;
    n.decay = op == OP_PARAM;
    n.fwd = -1;
    n.init_ref = -1;
    n.gparam = -1;
    return graph_add(&c->g, &n);
}

static inline int param(Case *c, const char *name, GShape s)
{
    return leaf(c, OP_PARAM, name, s, DT_REAL);
}

/* a value computed from a parameter (so gradients flow through the arena) */
static inline int value(Case *c, const char *name, GShape s)
{
    int p = param(c, name, s);
    GAttr a = {.scale = 1.0};
    return graph_op(&c->g, OP_SCALE, &p, 1, s, &a);
}

static inline int op(Case *c, GOp o, const int *in, int nin, GShape s, GAttr a)
{
    return graph_op(&c->g, o, in, nin, s, &a);
}

/* an op that saves an auxiliary tensor for its backward rule */
static inline int with_aux(Case *c, GOp o, const int *in, int nin, GShape s, GAttr a, GShape aux)
{
    GNode n = {0};
    n.op = o;
    n.nin = nin;
    memcpy(n.in, in, sizeof(int) * (size_t)nin);
    n.shape = s;
    n.a = a;
    n.aux = aux;
    n.aux_numel = shape_numel(&aux);
    n.fwd = -1;
    n.gparam = -1;
    n.init_ref = -1;
    return graph_add(&c->g, &n);
}

/* Knot j of input row r of a B-spline KAN grid (G, k): uniform on [-1, 1],
   then warped on odd rows, so that tests see non-uniform grids too. */
static inline double test_knot(int64_t r, int j, int G, int k)
{
    int nk = G + 2 * k + 1;
    return -1 + 2.0 * (j - k) / G + (r % 2) * 0.3 * (j * j) / (nk * nk) / G;
}

/* Fills every KAN grid of g in e's storage (float or double): B-spline grids
   with test_knot, other families' grids with their initial values. */
static inline void test_fill_kan_grids(const Graph *g, CpuExec *e)
{
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_KAN) continue;
        const GNode *grid = &g->nodes[n->in[1]];
        const KanBasis *b = kan_basis(n->a.basis);
        int G = n->a.grid_size, k = n->a.spline_order, nk = b->grid_len(G, k);
        double row[nk];
        b->init_grid(row, G, k, grid->init_a, grid->init_b);
        void *t = cpu_exec_value(e, grid->id);
        for (int64_t r = 0; r < shape_numel(&grid->shape) / nk; r++)
            for (int j = 0; j < nk; j++) {
                double v = n->a.basis == KAN_BASIS_BSPLINE ? test_knot(r, j, G, k) : row[j];
                if (e->rs == 8)
                    ((double *)t)[r * nk + j] = v;
                else
                    ((float *)t)[r * nk + j] = (float)v;
            }
    }
}

/* loss = sum(out * R), R a fixed random buffer the test fills; then autodiff */
static inline void finish(Case *c, int out)
{
    Graph *g = &c->g;
    int r = leaf(c, OP_BUFFER, "R", g->nodes[out].shape, DT_REAL);
    int prod = op(c, OP_MUL, (int[]){out, r}, 2, g->nodes[out].shape, (GAttr){0});
    int loss = op(c, OP_SUM, &prod, 1, shape_of(0), (GAttr){0});
    g->loss = loss;
    g->n_forward = g->n;
    char err[256];
    cr_assert_eq(autodiff(g, loss, -1, 0, err, sizeof err), 0, "%s", err);
}

#endif
