/* device_cpu.c: the Device interface over the CPU executor. */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "util.h"

typedef struct {
    Device dev;
    CpuExec ex;
} CpuDevice;

static CpuExec *ex_of(Device *d) { return &((CpuDevice *)d)->ex; }

CpuExec *device_cpu_exec(Device *dev) { return ex_of(dev); }

int64_t device_area_elems(const Device *dev, KancArea area)
{
    return area == AREA_BUFFERS ? dev->plan->n_buffer_elems : dev->plan->n_param_elems;
}

static void cpu_run(Device *d, int from, int to)
{
    CpuExec *e = ex_of(d);
    e->seed = d->seed;
    e->step = d->step;
    e->training = d->training;
    e->opt = d->opt;
    cpu_exec_run(e, from, to);
    d->step = e->step;
    d->grad_norm = e->grad_norm;
    d->clip_scale = e->clip_scale;
}

static size_t value_bytes(Device *d, int node)
{
    const GNode *n = &d->plan->g->nodes[node];
    return (size_t)shape_numel(&n->shape) * (n->dtype == DT_I32 ? 4 : d->plan->real_size);
}

static void cpu_write_value(Device *d, int node, const void *host)
{
    memcpy(cpu_exec_value(ex_of(d), node), host, value_bytes(d, node));
}

static void cpu_read_value(Device *d, int node, void *host)
{
    memcpy(host, cpu_exec_value(ex_of(d), node), value_bytes(d, node));
}

static void cpu_read_grad(Device *d, int node, void *host)
{
    memcpy(host, cpu_exec_grad(ex_of(d), node), value_bytes(d, node));
}

static void *area_ptr(CpuExec *e, KancArea a)
{
    switch (a) {
    case AREA_PARAMS: return e->params;
    case AREA_GRADS: return e->grads;
    case AREA_M: return e->m;
    case AREA_V: return e->v;
    case AREA_BUFFERS: return e->buffers;
    default: die("cpu: area %s has no host copy", kanc_area_name(a));
    }
}

static void cpu_read_area(Device *d, KancArea a, void *host)
{
    memcpy(host, area_ptr(ex_of(d), a), (size_t)device_area_elems(d, a) * d->plan->real_size);
}

static void cpu_write_area(Device *d, KancArea a, const void *host)
{
    memcpy(area_ptr(ex_of(d), a), host, (size_t)device_area_elems(d, a) * d->plan->real_size);
}

static void cpu_destroy(Device *d)
{
    cpu_exec_free(ex_of(d));
    free(d);
}

static const DeviceOps CPU_OPS = {
    .run = cpu_run,
    .write_value = cpu_write_value,
    .read_value = cpu_read_value,
    .read_grad = cpu_read_grad,
    .read_area = cpu_read_area,
    .write_area = cpu_write_area,
    .destroy = cpu_destroy,
};

Device *device_cpu_new(Plan *plan)
{
    CpuDevice *c = xcalloc(1, sizeof *c);
    cpu_exec_init(&c->ex, plan);
    c->dev = (Device){.name = "cpu", .ops = &CPU_OPS, .plan = plan, .opt = c->ex.opt, .clip_scale = 1};
    return &c->dev;
}
