/* exec_cpu.c: the CPU target: storage for a plan and a loop over its nodes, each run by
 * its op's runner (ops/<family>_cpu.inc). */
#include "exec_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_node.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

static void *alloc_area(int64_t bytes)
{
    /* 64-byte aligned, zeroed */
    size_t n = (size_t)((bytes + 63) / 64 * 64);
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) die("out of memory allocating %lld bytes", (long long)bytes);
    memset(p, 0, n ? n : 64);
    return p;
}

void cpu_exec_init(CpuExec *e, Plan *p)
{
    memset(e, 0, sizeof *e);
    e->plan = p;
    e->g = p->g;
    e->rs = p->real_size;
    e->arena = alloc_area(p->arena_bytes);
    int64_t pb = p->n_param_elems * (int64_t)e->rs;
    e->params = alloc_area(pb);
    e->grads = alloc_area(pb);
    e->m = alloc_area(pb);
    e->v = alloc_area(pb);
    e->buffers = alloc_area(p->n_buffer_elems * (int64_t)e->rs);
    e->ws = alloc_area(p->ws_elems * (int64_t)e->rs);
    e->opt = (AdamWConfig){.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                           .weight_decay = 0.1, .clip = 1.0};
    e->clip_scale = 1;
}

void cpu_exec_free(CpuExec *e)
{
    free(e->arena);
    free(e->params);
    free(e->grads);
    free(e->m);
    free(e->v);
    free(e->buffers);
    free(e->ws);
    memset(e, 0, sizeof *e);
}

void *cpu_exec_value(CpuExec *e, int i)
{
    const GNode *n = &e->g->nodes[i];
    if (n->op == OP_PARAM) return (char *)e->params + e->plan->pos[i] * (int64_t)e->rs;
    if (n->op == OP_BUFFER) return (char *)e->buffers + e->plan->pos[i] * (int64_t)e->rs;
    if (e->plan->off[i] < 0) die("cpu: node %d (%s) has no storage", i, op_name(n->op));
    return e->arena + e->plan->off[i];
}

void *cpu_exec_grad(CpuExec *e, int i)
{
    if (e->g->nodes[i].op != OP_PARAM) die("cpu: node %d is not a parameter", i);
    return (char *)e->grads + e->plan->pos[i] * (int64_t)e->rs;
}

double cpu_exec_scalar(CpuExec *e, int i)
{
    void *p = cpu_exec_value(e, i);
    return e->rs == 8 ? *(double *)p : (double)*(float *)p;
}

/* The runners, one per op of ops/ops.def (cpu_run_<name>_f32/_f64 in ops/<family>_cpu.inc). */
#define OP(kind, ENUM, name, family, flags) \
    void cpu_run_##name##_f32(const CpuNode *c); \
    void cpu_run_##name##_f64(const CpuNode *c);
#include "ops.def"
#define OP(kind, ENUM, name, family, flags) [OP_##ENUM] = cpu_run_##name##_f32,
static const CpuRunner RUNNERS_F32[] = {
#include "ops.def"
};
#define OP(kind, ENUM, name, family, flags) [OP_##ENUM] = cpu_run_##name##_f64,
static const CpuRunner RUNNERS_F64[] = {
#include "ops.def"
};
#undef OP
_Static_assert(sizeof RUNNERS_F32 / sizeof *RUNNERS_F32 == OP__COUNT, "a CPU runner per op");
_Static_assert(sizeof RUNNERS_F64 / sizeof *RUNNERS_F64 == OP__COUNT, "a CPU runner per op");

int cpu_exec_has_runner(GOp op) { return op >= 0 && op < OP__COUNT && RUNNERS_F32[op] && RUNNERS_F64[op]; }

static void run_node(CpuExec *e, int i)
{
    const Graph *g = e->g;
    const GNode *n = &g->nodes[i];
    const GNode *f = n->fwd >= 0 ? &g->nodes[n->fwd] : NULL;
    const int64_t *aux_off = e->plan->aux_off;
    CpuNode c = {
        .e = e,
        .g = g,
        .n = n,
        .a = &n->a,
        .f = f,
        /* the output: this node's value, or the gradient of the parameter it targets */
        .y = op_is_backward(n->op) && n->gparam >= 0 ? cpu_exec_grad(e, n->gparam)
             : node_has_value(n)                    ? cpu_exec_value(e, i)
                                                    : NULL,
        .aux = aux_off[i] >= 0 ? e->arena + aux_off[i] : NULL,
        .faux = f && aux_off[f->id] >= 0 ? e->arena + aux_off[f->id] : NULL,
        .acc = n->a.acc,
        .numel = shape_numel(&n->shape),
        .stream = kanc_dropout_stream((uint64_t)e->step, (uint32_t)(f ? f->id : i)),
        .p_drop = e->training ? n->a.p : 0,
    };
    (e->rs == 8 ? RUNNERS_F64 : RUNNERS_F32)[n->op](&c);
}

void cpu_exec_run(CpuExec *e, int from, int to)
{
    if (from <= e->g->n_forward && to > e->g->n_forward) /* the range starts the backward */
        memset(e->grads, 0, (size_t)(e->plan->n_param_elems * (int64_t)e->rs));
    for (int i = from; i < to; i++) {
        struct timespec t0, t1;
        if (e->op_seconds) clock_gettime(CLOCK_MONOTONIC, &t0);
        run_node(e, i);
        if (e->op_seconds) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            e->op_seconds[e->g->nodes[i].op] +=
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        }
    }
}
