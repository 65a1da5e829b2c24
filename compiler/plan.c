/* plan.c: storage planning by liveness, FLOP counts and the --report text. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

int node_has_value(const GNode *n)
{
    if (n->op == OP_PARAM || n->op == OP_BUFFER || n->op == OP_ADAMW) return 0;
    if (op_is_backward(n->op) && n->gparam >= 0) return 0;
    return 1;
}

int64_t node_bytes(const GNode *n, size_t real_size)
{
    return shape_numel(&n->shape) * (int64_t)(n->dtype == DT_I32 ? 4 : real_size);
}

/* a backward op that reads its forward node's aux tensor */
static int reads_aux(GOp op) { return (op_info(op)->flags & OPF_READS_FWD_AUX) != 0; }

typedef struct {
    int64_t start, end; /* node index range during which the bytes are live */
    int64_t bytes;
    int64_t off;
} Interval;

static int by_size_desc(const void *a, const void *b)
{
    const Interval *x = *(Interval *const *)a, *y = *(Interval *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int by_off(const void *a, const void *b)
{
    const Interval *x = *(Interval *const *)a, *y = *(Interval *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int64_t align_up(int64_t x) { return (x + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN; }

/* First fit, largest first: each interval takes the lowest offset that does
   not collide with an already placed interval live at the same time. */
static int64_t place(Interval *iv, int n)
{
    Interval **order = xmalloc(sizeof *order * (size_t)(n ? n : 1));
    Interval **live = xmalloc(sizeof *live * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) order[i] = &iv[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    int64_t peak = 0;
    for (int i = 0; i < n; i++) {
        Interval *x = order[i];
        int nl = 0;
        for (int j = 0; j < i; j++)
            if (order[j]->start <= x->end && x->start <= order[j]->end) live[nl++] = order[j];
        qsort(live, (size_t)nl, sizeof *live, by_off);
        int64_t off = 0;
        for (int j = 0; j < nl; j++) {
            if (live[j]->off >= off + x->bytes) break;
            int64_t e = align_up(live[j]->off + live[j]->bytes);
            if (e > off) off = e;
        }
        x->off = off;
        if (off + x->bytes > peak) peak = off + x->bytes;
    }
    free(order);
    free(live);
    return align_up(peak);
}

void plan_build(Plan *p, Graph *g, size_t real_size) { plan_build_for(p, g, real_size, 0); }

void plan_build_for(Plan *p, Graph *g, size_t real_size, int gemm_bf16)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    p->real_size = real_size;
    p->gemm_bf16 = gemm_bf16;
    int n = g->n;
    p->off = xmalloc(sizeof(int64_t) * (size_t)n);
    p->aux_off = xmalloc(sizeof(int64_t) * (size_t)n);
    p->pos = xmalloc(sizeof(int64_t) * (size_t)n);
    int *root = xmalloc(sizeof(int) * (size_t)n);
    int64_t *end = xmalloc(sizeof(int64_t) * (size_t)n), *aux_end = xmalloc(sizeof(int64_t) * (size_t)n);

    for (int i = 0; i < n; i++) {
        GNode *x = &g->nodes[i];
        p->off[i] = p->aux_off[i] = p->pos[i] = -1;
        root[i] = i;
        end[i] = aux_end[i] = i;
        if (x->op == OP_PARAM) {
            p->pos[i] = p->n_param_elems;
            p->n_param_elems += shape_numel(&x->shape);
            p->n_params++;
        } else if (x->op == OP_BUFFER) {
            p->pos[i] = p->n_buffer_elems;
            p->n_buffer_elems += shape_numel(&x->shape);
            p->n_buffers++;
        }
        /* an accumulating node writes into its partial sum's storage */
        if (op_is_backward(x->op) && x->a.acc && x->gparam < 0 && x->nin > 0)
            root[i] = root[x->in[x->nin - 1]];
        int64_t ws = op_cpu_workspace(g, x, real_size);
        if (ws > p->ws_elems) p->ws_elems = ws;
    }
    /* last use of every storage root and aux tensor */
    for (int i = 0; i < n; i++) {
        GNode *x = &g->nodes[i];
        for (int j = 0; j < x->nin; j++) {
            int r = root[x->in[j]];
            if (end[r] < i) end[r] = i;
        }
        if (end[root[i]] < i) end[root[i]] = i;
        if (x->fwd >= 0 && reads_aux(x->op) && aux_end[x->fwd] < i) aux_end[x->fwd] = i;
    }
    /* values the runtime reads after the step (outputs, input gradients, the
       norm) and the inputs, which a caller may keep for several steps */
    for (int i = 0; i < g->n_outputs; i++) end[root[g->outputs[i]]] = n;
    for (int i = 0; i < n; i++)
        if (g->nodes[i].op == OP_INPUT) end[root[i]] = n;
    if (g->loss >= 0) end[root[g->loss]] = n;
    for (int i = 0; i < n; i++) {
        if (g->nodes[i].op == OP_GRAD_NORM) end[root[i]] = n;
        if (g->grad_of && g->nodes[i].op == OP_INPUT && g->grad_of[i] >= 0)
            end[root[g->grad_of[i]]] = n;
    }

    Interval *iv = xmalloc(sizeof *iv * (size_t)(2 * n + 1));
    int *slot = xmalloc(sizeof(int) * (size_t)n), *aux_slot = xmalloc(sizeof(int) * (size_t)n);
    int niv = 0;
    for (int i = 0; i < n; i++) {
        GNode *x = &g->nodes[i];
        slot[i] = aux_slot[i] = -1;
        if (node_has_value(x) && root[i] == i) {
            int64_t start = x->op == OP_INPUT ? 0 : i;
            int64_t bytes = node_bytes(x, real_size);
            /* an accumulation chain must hold its largest member */
            iv[niv] = (Interval){start, end[i], bytes, 0};
            slot[i] = niv++;
        }
        if (x->aux_numel > 0) {
            iv[niv] = (Interval){i, aux_end[i], op_aux_bytes(x, real_size, gemm_bf16), 0};
            aux_slot[i] = niv++;
        }
    }
    for (int i = 0; i < n; i++) { /* extend roots over their chains */
        GNode *x = &g->nodes[i];
        if (node_has_value(x) && root[i] != i) {
            Interval *r = &iv[slot[root[i]]];
            int64_t b = node_bytes(x, real_size);
            if (b > r->bytes) r->bytes = b;
            if (end[i] > r->end) r->end = end[i];
        }
    }
    p->arena_bytes = place(iv, niv);
    for (int i = 0; i < n; i++) {
        if (node_has_value(&g->nodes[i])) p->off[i] = iv[slot[root[i]]].off;
        if (aux_slot[i] >= 0) p->aux_off[i] = iv[aux_slot[i]].off;
    }
    free(iv);
    free(slot);
    free(aux_slot);
    free(root);
    free(end);
    free(aux_end);
}

void plan_free(Plan *p)
{
    free(p->off);
    free(p->aux_off);
    free(p->pos);
    memset(p, 0, sizeof *p);
}

void plan_flops(const Plan *p, int64_t tokens, double *fwd, double *step)
{
    const Graph *g = p->g;
    double f = 0, s = 0;
    for (int i = 0; i < g->n; i++) {
        double x = op_flops(g, &g->nodes[i]);
        if (i < g->n_forward) f += x;
        s += x;
    }
    if (tokens < 1) tokens = 1;
    *fwd = f / (double)tokens;
    *step = s / (double)tokens;
}

void plan_flop_split(const Plan *p, int64_t tokens, FlopSplit *s)
{
    const Graph *g = p->g;
    memset(s, 0, sizeof *s);
    double t = tokens < 1 ? 1 : (double)tokens;
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        double mm = op_flops(g, n) / t, ew = op_elementwise_flops(g, n) / t;
        FlopClass c = op_flop_class(n->op);
        if (i < g->n_forward) s->fwd[c] += mm, s->elementwise_fwd += ew;
        s->step[c] += mm;
        s->elementwise_step += ew;
    }
    /* an op whose products have no class (ops.def) still counts: as elementwise */
    s->elementwise_fwd += s->fwd[FLOPS_ELEMENTWISE];
    s->elementwise_step += s->step[FLOPS_ELEMENTWISE];
    s->fwd[FLOPS_ELEMENTWISE] = s->elementwise_fwd;
    s->step[FLOPS_ELEMENTWISE] = s->elementwise_step;
}

/* the split table of --report: each class's FLOPs per token and share of all */
static void report_split(const Plan *p, int64_t tokens, FILE *f)
{
    FlopSplit s;
    plan_flop_split(p, tokens, &s);
    static const FlopClass order[] = {FLOPS_KAN, FLOPS_GEMM, FLOPS_ATTENTION, FLOPS_ELEMENTWISE};
    static const char *const what[FLOPS__COUNT] = {
        [FLOPS_KAN] = "KAN layers' fused products",
        [FLOPS_GEMM] = "linear layers, lm_head",
        [FLOPS_ATTENTION] = "QK^T and PV",
        [FLOPS_ELEMENTWISE] = "norms, activations, softmax, losses, AdamW: not model FLOPs",
    };
    double all_f = 0, all_s = 0;
    for (int c = 0; c < FLOPS__COUNT; c++) all_f += s.fwd[c], all_s += s.step[c];
    fprintf(f, "FLOPs per token by kind:\n  %-12s %13s %6s %14s %6s\n", "", "forward", "share", "training step",
            "share");
    for (size_t k = 0; k < sizeof order / sizeof *order; k++) {
        FlopClass c = order[k];
        fprintf(f, "  %-12s %13.4g %5.1f%% %14.4g %5.1f%%  (%s)\n", flop_class_name(c), s.fwd[c],
                all_f > 0 ? 100 * s.fwd[c] / all_f : 0, s.step[c], all_s > 0 ? 100 * s.step[c] / all_s : 0,
                what[c]);
    }
    fprintf(f, "  %-12s %13.4g %6s %14.4g\n", "all", all_f, "", all_s);
}

static void human_bytes(double b, char *buf, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int i = 0;
    while (b >= 1024 && i < 3) b /= 1024, i++;
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

void plan_report(const Plan *p, int64_t tokens, FILE *f)
{
    const Graph *g = p->g;
    char b1[32], b2[32], sb[96];
    int64_t trainable = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_PARAM) trainable += shape_numel(&g->nodes[i].shape);
    double fwd, step;
    plan_flops(p, tokens, &fwd, &step);
    human_bytes((double)trainable * 4, b1, sizeof b1);
    fprintf(f, "parameters:      %lld (%s as f32) in %d tensors\n", (long long)trainable, b1,
            p->n_params);
    human_bytes((double)p->n_buffer_elems * 4, b1, sizeof b1);
    fprintf(f, "buffers:         %lld (%s) in %d tensors\n", (long long)p->n_buffer_elems, b1,
            p->n_buffers);
    human_bytes((double)p->arena_bytes, b1, sizeof b1);
    fprintf(f, "arena peak:      %lld bytes (%s): activations and their gradients\n",
            (long long)p->arena_bytes, b1);
    human_bytes((double)p->ws_elems * (double)p->real_size, b2, sizeof b2);
    fprintf(f, "kan workspace:   %lld bytes (%s): fused weight, its gradient, one row block\n",
            (long long)(p->ws_elems * (int64_t)p->real_size), b2);
    human_bytes((double)p->n_param_elems * 16 + (double)p->n_buffer_elems * 4, b1, sizeof b1);
    fprintf(f, "optimizer state: parameters + gradients + 2 AdamW moments = %s\n", b1);
    fprintf(f, "tokens per step: %lld\n", (long long)tokens);
    fprintf(f, "FLOPs per token: %.4g forward, %.4g training step (matrix products: the model FLOPs)\n",
            fwd, step);
    report_split(p, tokens, f);
    fprintf(f, "\nsteps (%d nodes; %d forward):\n", g->n, g->n_forward);
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op == OP_PARAM || n->op == OP_BUFFER) continue;
        fprintf(f, "  %4d %-15s %-16s", i, op_name(n->op),
                node_has_value(n) ? shape_str(&n->shape, sb, sizeof sb) : "-");
        if (n->gparam >= 0 && op_is_backward(n->op))
            fprintf(f, " -> grad %s", g->nodes[n->gparam].name);
        else if (n->name)
            fprintf(f, " %s", n->name);
        else if (n->fwd >= 0 && g->nodes[n->fwd].name)
            fprintf(f, " (of %s)", g->nodes[n->fwd].name);
        if (p->off[i] >= 0) fprintf(f, "  @%lld", (long long)p->off[i]);
        fputc('\n', f);
    }
}
