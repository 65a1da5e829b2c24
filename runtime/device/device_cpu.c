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

void device_log_push(Device *d, const DeviceStepLog *rec)
{
    if (d->log_len == d->log_cap) {
        d->log_cap = d->log_cap ? 2 * d->log_cap : 64;
        d->log = xrealloc(d->log, sizeof *d->log * (size_t)d->log_cap);
    }
    d->log[d->log_len++] = *rec;
}

void device_log_free(Device *d)
{
    free(d->log);
    d->log = NULL;
    d->log_len = d->log_cap = 0;
}

int device_read_log(Device *d, DeviceStepLog *out, int max)
{
    if (d->ops->sync) d->ops->sync(d);
    int n = d->log_len < max ? d->log_len : max;
    if (n <= 0) return 0;
    memcpy(out, d->log, sizeof *out * (size_t)n);
    memmove(d->log, d->log + n, sizeof *d->log * (size_t)(d->log_len - n));
    d->log_len -= n;
    return n;
}

static void cpu_run(Device *d, int from, int to)
{
    CpuExec *e = ex_of(d);
    e->seed = d->seed;
    e->step = d->step;
    e->training = d->training;
    e->opt = d->opt;
    int64_t step = d->step;
    cpu_exec_run(e, from, to);
    d->step = e->step;
    d->grad_norm = e->grad_norm;
    d->clip_scale = e->clip_scale;
    if (d->n_log_nodes > 0 && d->step > step) { /* an optimizer step: its record */
        DeviceStepLog rec = {.step = step, .grad_norm = e->grad_norm, .clip_scale = e->clip_scale};
        for (int i = 0; i < d->n_log_nodes && i < DEVICE_LOG_NODES; i++) {
            const void *v = cpu_exec_value(e, d->log_nodes[i]);
            rec.value[i] = d->plan->real_size == 8 ? *(const double *)v : *(const float *)v;
        }
        device_log_push(d, &rec);
    }
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
    device_log_free(d);
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
