/* dist_zero.c: ZeRO stage 1, the AdamW moments sharded across the ranks (dist_zero.h). */
#include "dist_zero.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu_kernels.h"
#include "util.h"

/* the counts and offsets (bytes) of every rank's slice of n floats */
static void slices(const Dist *d, int64_t n, size_t *counts, size_t *offs)
{
    for (int r = 0; r < d->size; r++) {
        int64_t lo, hi;
        dist_slice(n, r, d->size, &lo, &hi);
        counts[r] = (size_t)(hi - lo) * sizeof(float);
        offs[r] = (size_t)lo * sizeof(float);
    }
}

void dist_zero_release(DistZero *z, Device *dev)
{
    if (!z->active) return;
    CpuExec *e = device_cpu_exec(dev);
    long page = sysconf(_SC_PAGESIZE);
    void *areas[2] = {e->m, e->v};
    for (int i = 0; i < 2; i++) { /* whole pages inside the area: zero-filled if touched again */
        uintptr_t a = ((uintptr_t)areas[i] + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
        uintptr_t b = ((uintptr_t)areas[i] + (uintptr_t)z->n * sizeof(float)) & ~((uintptr_t)page - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
}

int dist_zero_init(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen)
{
    memset(z, 0, sizeof *z);
    if (strcmp(dev->name, "cpu") || dev->plan->real_size != sizeof(float)) {
        set_err(err, errlen, "--zero 1 runs on CPU ranks (float32) for now; this rank runs on %s", dev->name);
        return -1;
    }
    z->n = dev->plan->n_param_elems;
    dist_slice(z->n, d->rank, d->size, &z->lo, &z->hi);
    size_t w = (size_t)(z->hi - z->lo);
    z->m = xmalloc((w ? w : 1) * sizeof(float));
    z->v = xmalloc((w ? w : 1) * sizeof(float));
    /* the slice of the moments the device holds: zeros, or a checkpoint's (any N wrote it) */
    CpuExec *e = device_cpu_exec(dev);
    memcpy(z->m, (float *)e->m + z->lo, w * sizeof(float));
    memcpy(z->v, (float *)e->v + z->lo, w * sizeof(float));
    z->active = 1;
    dist_zero_release(z, dev);
    return 0;
}

void dist_zero_free(DistZero *z)
{
    free(z->m);
    free(z->v);
    memset(z, 0, sizeof *z);
}

int dist_zero_step(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen)
{
    CpuExec *e = device_cpu_exec(dev);
    const Graph *g = dev->plan->g;
    /* the clip scale of cpu_run_adamw (ops/optim_cpu.inc), from the norm every rank shares */
    double s = 1;
    if (dev->opt.clip > 0) {
        double f = dev->opt.clip / (dev->grad_norm + 1e-6);
        if (f < 1) s = f;
    }
    float *p = e->params;
    const float *gr = e->grads;
    for (int j = 0; j < g->n; j++) {
        const GNode *pn = &g->nodes[j];
        if (pn->op != OP_PARAM || !pn->trainable) continue;
        int64_t off = dev->plan->pos[j], len = shape_numel(&pn->shape);
        int64_t a = off > z->lo ? off : z->lo, b = off + len < z->hi ? off + len : z->hi;
        if (a >= b) continue;
        /* the same elementwise update as the whole-area kernel: the same bits */
        adamw_f32(p + a, gr + a, z->m + (a - z->lo), z->v + (a - z->lo), b - a, s, dev->opt.lr, dev->opt.beta1,
                  dev->opt.beta2, dev->opt.eps, pn->decay ? dev->opt.weight_decay : 0, dev->step + 1);
    }
    size_t *counts = xmalloc(sizeof *counts * (size_t)d->size), *offs = xmalloc(sizeof *offs * (size_t)d->size);
    slices(d, z->n, counts, offs);
    int rc = dist_allgatherv(d, (char *)p + offs[d->rank], p, counts, offs, err, errlen);
    free(counts);
    free(offs);
    if (rc) return -1;
    dev->clip_scale = s;
    dev->step++;
    return 0;
}

int dist_zero_gather(Dist *d, DistZero *z, Device *dev, char *err, size_t errlen)
{
    CpuExec *e = device_cpu_exec(dev);
    size_t *counts = xmalloc(sizeof *counts * (size_t)d->size), *offs = xmalloc(sizeof *offs * (size_t)d->size);
    slices(d, z->n, counts, offs);
    int root = d->rank == 0;
    int rc = dist_gatherv(d, z->m, root ? e->m : NULL, counts, offs, err, errlen) ||
             dist_gatherv(d, z->v, root ? e->v : NULL, counts, offs, err, errlen);
    free(counts);
    free(offs);
    return rc ? -1 : 0;
}
