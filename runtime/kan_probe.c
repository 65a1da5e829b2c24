/* kan_probe.c: each KAN layer's input batch, read between pieces of the forward pass. */
#include "kan_probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "util.h"

static int is_layer(const GNode *n) { return n->op == OP_KAN; }

int kan_probe_init(KanProbe *p, const Model *m)
{
    const Graph *g = &m->g;
    memset(p, 0, sizeof *p);
    size_t names = 0;
    for (int i = 0; i < g->n_forward; i++)
        if (is_layer(&g->nodes[i])) p->n++, names += strlen(g->nodes[g->nodes[i].in[1]].name) + 1;
    if (!p->n) return 0;
    p->layers = xcalloc((size_t)p->n, sizeof *p->layers);
    p->names = xmalloc(names);
    char *at = p->names;
    for (int i = 0, l = 0; i < g->n_forward; i++) {
        const GNode *n = &g->nodes[i];
        if (!is_layer(n)) continue;
        KanProbeLayer *L = &p->layers[l++];
        const GShape *xs = &g->nodes[n->in[0]].shape;
        L->node = i, L->grid = n->in[1];
        L->rows = shape_rows(xs), L->in = shape_last(xs);
        /* "<prefix>grid" names the buffer: the layer is what comes before it */
        const char *gname = g->nodes[L->grid].name;
        size_t len = strlen(gname), tail = strlen(".grid");
        if (len >= tail && !strcmp(gname + len - tail, ".grid")) len -= tail;
        memcpy(at, gname, len);
        at[len] = 0;
        L->name = at;
        at += len + 1;
    }
    return p->n;
}

int kan_probe_collect(KanProbe *p, Model *m)
{
    Device *dev = m->dev;
    int training = dev->training;
    dev->training = 0;
    int from = 0;
    for (int l = 0; l < p->n; l++) {
        KanProbeLayer *L = &p->layers[l];
        dev->ops->run(dev, from, L->node);
        from = L->node;
        if (!L->x) L->x = xmalloc((size_t)(L->rows * L->in) * sizeof *L->x);
        model_read_value(m, m->g.nodes[L->node].in[0], L->x);
    }
    dev->training = training;
    return from;
}

double kan_probe_out_of_grid(const KanProbe *p, const Model *m, int i, const double *grid)
{
    const KanProbeLayer *L = &p->layers[i];
    const GNode *n = &m->g.nodes[L->node];
    const KanBasis *b = kan_basis(n->a.basis);
    int G = n->a.grid_size, k = n->a.spline_order;
    int64_t outside = 0;
    for (int64_t c = 0; c < L->in; c++) {
        double lo, hi;
        b->grid_range(grid + kan_basis_grid_row(b, c, G, k), G, k, &lo, &hi);
        for (int64_t r = 0; r < L->rows; r++) {
            double x = L->x[r * L->in + c];
            outside += x < lo || x > hi;
        }
    }
    int64_t total = L->rows * L->in;
    return total > 0 ? (double)outside / (double)total : 0;
}

void kan_probe_out_of_grid_all(const KanProbe *p, Model *m, double *frac)
{
    for (int i = 0; i < p->n; i++) {
        const KanProbeLayer *L = &p->layers[i];
        double *grid = xmalloc((size_t)shape_numel(&m->g.nodes[L->grid].shape) * sizeof *grid);
        model_read_value(m, L->grid, grid);
        frac[i] = kan_probe_out_of_grid(p, m, i, grid);
        free(grid);
    }
}

void kan_probe_report(const KanProbe *p, const double *frac, char *line, char *json, size_t n)
{
    line[0] = json[0] = 0;
    if (!p->n || n < 2) return;
    int worst = 0;
    double mean = 0;
    for (int i = 0; i < p->n; i++) {
        mean += frac[i] / p->n;
        if (frac[i] > frac[worst]) worst = i;
    }
    snprintf(line, n, "out of grid %.1f%% mean, %.1f%% max (%s)", 100 * mean, 100 * frac[worst],
             p->layers[worst].name);
    size_t at = (size_t)snprintf(json, n, "\"out_of_grid\":{");
    for (int i = 0; i < p->n && at < n; i++)
        at += (size_t)snprintf(json + at, n - at, "%s\"%s\":%.6f", i ? "," : "", p->layers[i].name, frac[i]);
    if (at + 3 < n)
        strcat(json, "},");
    else
        json[0] = 0; /* a cut member would break the line's JSON */
}

void kan_probe_free(KanProbe *p)
{
    for (int i = 0; i < p->n; i++) free(p->layers[i].x);
    free(p->layers);
    free(p->names);
    memset(p, 0, sizeof *p);
}
