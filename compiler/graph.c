/* graph.c: building and printing the dataflow graph. */
#include "graph.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "ops.h"

void graph_init(Graph *g)
{
    memset(g, 0, sizeof *g);
    g->loss = g->output = -1;
}

void graph_free(Graph *g)
{
    for (int i = 0; i < g->n; i++) free(g->nodes[i].name);
    for (int i = 0; i < g->n_outputs; i++) free(g->output_names[i]);
    free(g->nodes);
    free(g->grad_of);
    for (int i = 0; i < g->n_alias; i++) free(g->alias_name[i]);
    free(g->alias_name);
    free(g->alias_param);
    memset(g, 0, sizeof *g);
}

void graph_add_alias(Graph *g, const char *name, int param)
{
    g->alias_name = xrealloc(g->alias_name, sizeof *g->alias_name * (size_t)(g->n_alias + 1));
    g->alias_param = xrealloc(g->alias_param, sizeof *g->alias_param * (size_t)(g->n_alias + 1));
    g->alias_name[g->n_alias] = xstrdup(name);
    g->alias_param[g->n_alias++] = param;
}

int graph_alias_param(const Graph *g, const char *name)
{
    for (int i = 0; i < g->n_alias; i++)
        if (!strcmp(g->alias_name[i], name)) return g->alias_param[i];
    return -1;
}

int graph_add(Graph *g, const GNode *proto)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->nodes = xrealloc(g->nodes, (size_t)g->cap * sizeof *g->nodes);
    }
    GNode *n = &g->nodes[g->n];
    *n = *proto;
    n->id = g->n;
    n->name = proto->name ? xstrdup(proto->name) : NULL;
    if (proto->op != OP_PARAM && proto->op != OP_BUFFER && proto->op != OP_INPUT &&
        proto->dtype != DT_I32)
        n->dtype = DT_REAL;
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n) die("graph: node %d input %d out of range", g->n, i);
    if (proto->fwd == 0 && !op_is_backward(proto->op)) n->fwd = -1;
    return g->n++;
}

int graph_op(Graph *g, GOp op, const int *in, int nin, GShape shape, const GAttr *attr)
{
    GNode n = {0};
    n.op = op;
    n.nin = nin;
    for (int i = 0; i < nin; i++) n.in[i] = in[i];
    n.shape = shape;
    n.dtype = DT_REAL;
    n.fwd = -1;
    n.init_ref = -1;
    if (attr) n.a = *attr;
    return graph_add(g, &n);
}

int graph_find(const Graph *g, GOp op, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == op && g->nodes[i].name && !strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

GShape shape_make(int nd, const int64_t *d)
{
    GShape s = {0};
    s.nd = nd;
    for (int i = 0; i < nd; i++) s.d[i] = d[i];
    return s;
}

GShape shape_of(int nd, ...)
{
    GShape s = {0};
    va_list ap;
    va_start(ap, nd);
    s.nd = nd;
    for (int i = 0; i < nd; i++) s.d[i] = va_arg(ap, int64_t);
    va_end(ap);
    return s;
}

int64_t shape_numel(const GShape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->nd; i++) n *= s->d[i];
    return n;
}

int shape_eq(const GShape *a, const GShape *b)
{
    if (a->nd != b->nd) return 0;
    for (int i = 0; i < a->nd; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

int shape_is_suffix(const GShape *a, const GShape *b)
{
    if (b->nd > a->nd) return 0;
    for (int i = 0; i < b->nd; i++)
        if (a->d[a->nd - b->nd + i] != b->d[i]) return 0;
    return 1;
}

const char *shape_str(const GShape *s, char *buf, size_t n)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < s->nd && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

int64_t shape_last(const GShape *s) { return s->nd ? s->d[s->nd - 1] : 1; }

int64_t shape_rows(const GShape *s)
{
    int64_t last = shape_last(s);
    return last ? shape_numel(s) / last : 0;
}

static const char *const OP_NAMES[OP__COUNT] = {
#define OP(kind, ENUM, name, family, flags) [OP_##ENUM] = #name,
#include "ops.def"
};

const char *op_name(GOp op)
{
    return (op >= 0 && op < OP__COUNT && OP_NAMES[op]) ? OP_NAMES[op] : "?";
}

void graph_dump(const Graph *g, FILE *f)
{
    char sb[96];
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        fprintf(f, "%%%d = %s", i, op_name(n->op));
        for (int j = 0; j < n->nin; j++) fprintf(f, "%s%%%d", j ? ", " : " ", n->in[j]);
        fprintf(f, " : %s%s", shape_str(&n->shape, sb, sizeof sb), n->dtype == DT_I32 ? " i32" : "");
        if (n->name) fprintf(f, "  \"%s\"", n->name);
        fputc('\n', f);
    }
}

int64_t graph_vocab(const Graph *g, int node)
{
    for (int i = 0; i < g->n_forward; i++) {
        const GNode *e = &g->nodes[i];
        if (e->op == OP_EMBEDDING && e->in[0] == node) return g->nodes[e->in[1]].shape.d[0];
        if (e->op == OP_CROSS_ENTROPY && e->in[1] == node) return shape_last(&g->nodes[e->in[0]].shape);
    }
    return -1;
}
