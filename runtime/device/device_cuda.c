/* device_cuda.c: the Device interface on a CUDA GPU (or on the mock driver: --device emu).
 *
 * One stream. Device allocations for the arena, the four parameter-sized
 * areas (params, grads, AdamW m and v), the buffers, the kernels' workspace,
 * the KancArgs block and the KancScalars block. A run of nodes [from, to):
 *
 *   write the settings (lr, betas, eps, decay, clip, seed, step, training)
 *     by async copies from page-locked memory;
 *   zero the gradient area when the range starts the backward (from <=
 *     n_forward < to: exec_cpu.c's rule, so run(adam, adam + 1) keeps them);
 *   launch every launch of nodes [from, to) in order: kernels with their two
 *     parameters (the device address of KancArgs, and the launch's
 *     KancLaunchArgs: its tensors' device addresses, resolved once at open),
 *     LAUNCH_GEMM through cuBLASLt (32 MiB workspace; row-major by swapping
 *     the operands); or, from the range's second run, replay it as a CUDA
 *     graph (captured then; KANC_CUDA_SYNC=1 or KANC_CUDA_GRAPH=0: never);
 *   read back grad_norm and clip_scale when the range holds OP_GRAD_NORM or
 *     OP_ADAMW, unless the run is deferred (device.h): then the step's record
 *     (log nodes, grad_norm, clip_scale) is copied into page-locked memory
 *     and read at device_read_log; count the optimizer step after OP_ADAMW
 *     (the CPU device's semantics).
 *
 * Token inputs go through page-locked staging (async, no synchronisation);
 * other values, gradients and areas move with synchronous copies.
 * Every driver and cuBLASLt call is checked; a failure names the call, the
 * file and line and the CUDA error string. Errors while opening the device
 * are returned; a failure inside a step is fatal (the Device interface has no
 * error path there, and a failed launch leaves the context unusable anyway).
 *
 * mode "emu" runs exactly this code over the mock table of cuda_api.c: the
 * program is built by the emulator (runtime/device/emu) instead of NVRTC.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen_cuda.h"
#include "cuda_api.h"
#include "emu_launch.h"
#include "nvrtc.h"
#include "util.h"

#define LT_WORKSPACE ((size_t)32 << 20)
#define STAGE_SLOTS 4   /* page-locked copies of one host value in flight */
#define MAX_GRAPHS 8    /* captured ranges kept */
#define MAX_RANGES 64   /* ranges whose runs are counted (a one-off range gives its place up) */
#define LOG_SLOTS 1024  /* step records on their way to the host */
#define LOG_FLOATS (DEVICE_LOG_NODES + 2) /* per record: the log nodes, grad_norm, clip_scale */

/* Page-locked copies of a host value, so that an async copy needs no
   synchronisation: a slot is reused once its copy (STAGE_SLOTS writes ago) ran. */
typedef struct {
    void *host[STAGE_SLOTS];
    CUevent done[STAGE_SLOTS];
    int used[STAGE_SLOTS];
    int next;
    size_t bytes;
} Staging;

/* A range of nodes run as a CUDA graph: captured at its second run (a range run
   once, as verify's node-by-node checks do, is not worth instantiating). */
typedef struct {
    int from, to;
    int64_t runs;
    CUgraphExec exec;
} RangeGraph;


typedef struct {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc; /* cuBLASLt's A (our B), B (our A), C */
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

typedef struct {
    Device dev;
    const CudaApi *api;
    CUdevice cudev;
    CUcontext ctx;
    int have_ctx;
    CUstream stream;
    CUmodule mod;
    CUdeviceptr area[KANC_N_AREAS];
    size_t area_bytes[KANC_N_AREAS];
    CUdeviceptr d_args, d_scalars, lt_ws;
    CudaProgram prog;
    int *owner;        /* per launch: the graph node it belongs to */
    CUfunction *fn;    /* per launch (kernels) */
    KancLaunchArgs *la; /* per launch (kernels): the second kernel parameter */
    GemmPlan *gemm;    /* per launch (GEMMs) */
    cublasLtHandle_t lt;
    int have_lt;
    KancScalars scal;  /* host copy */
    int64_t bytes;
    int sm;
    int sync_each;     /* $KANC_CUDA_SYNC=1: synchronise after every launch (debugging) */
    int use_graphs;    /* 0 with KANC_CUDA_SYNC=1 or KANC_CUDA_GRAPH=0 */
    RangeGraph graph[MAX_RANGES];
    int n_graphs, n_captured;
    Staging scal_stage;  /* KancScalars */
    Staging *in_stage;   /* per node: the inputs (tokens) */
    float *h_res;        /* page-locked grad_norm, clip_scale */
    float *h_log;        /* page-locked step records, LOG_SLOTS x LOG_FLOATS */
    int64_t log_step[LOG_SLOTS], log_head, log_tail; /* records [head, tail) not moved to the host log */
} CudaDevice;

static CudaDevice *cd_of(Device *d) { return (CudaDevice *)d; }

/* inside a step: fatal, naming the call */
#define CU_CHECK(c, call)                                                                      \
    do {                                                                                       \
        CUresult r_ = (c)->api->call;                                                          \
        if (r_ != CUDA_SUCCESS)                                                                \
            die("%s:%d: %s failed: %s (CUDA error %d)", __FILE__, __LINE__, #call,             \
                cuda_error_string((c)->api, r_), r_);                                          \
    } while (0)
#define LT_CHECK(c, call)                                                                      \
    do {                                                                                       \
        cublasStatus_t s_ = (c)->api->call;                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            die("%s:%d: %s failed: %s", __FILE__, __LINE__, #call,                              \
                cublas_status_string((c)->api, s_));                                           \
    } while (0)
/* while opening: an error message and `goto fail` */
#define CU_TRY(c, call)                                                                        \
    do {                                                                                       \
        CUresult r_ = (c)->api->call;                                                          \
        if (r_ != CUDA_SUCCESS) {                                                              \
            snprintf(err, errlen, "%s:%d: %s failed: %s (CUDA error %d)", __FILE__, __LINE__,   \
                     #call, cuda_error_string((c)->api, r_), r_);                              \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)
#define LT_TRY(c, call)                                                                        \
    do {                                                                                       \
        cublasStatus_t s_ = (c)->api->call;                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            snprintf(err, errlen, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,           \
                     cublas_status_string((c)->api, s_));                                      \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* ------------------------------------------------------------ storage */

static CUdeviceptr value_ptr(CudaDevice *c, int node)
{
    const Plan *p = c->dev.plan;
    const GNode *n = &p->g->nodes[node];
    if (n->op == OP_PARAM) return c->area[AREA_PARAMS] + (CUdeviceptr)p->pos[node] * 4;
    if (n->op == OP_BUFFER) return c->area[AREA_BUFFERS] + (CUdeviceptr)p->pos[node] * 4;
    if (p->off[node] < 0) die("cuda: node %d (%s) has no storage", node, op_name(n->op));
    return c->area[AREA_ARENA] + (CUdeviceptr)p->off[node];
}

static size_t value_bytes(CudaDevice *c, int node)
{
    const GNode *n = &c->dev.plan->g->nodes[node];
    return (size_t)shape_numel(&n->shape) * 4; /* float or int32 */
}

static void copy_in(CudaDevice *c, CUdeviceptr dst, const void *src, size_t n)
{
    if (!n) return;
    CU_CHECK(c, cuMemcpyHtoDAsync(dst, src, n, c->stream));
    CU_CHECK(c, cuStreamSynchronize(c->stream));
}

static void copy_out(CudaDevice *c, void *dst, CUdeviceptr src, size_t n)
{
    if (!n) return;
    CU_CHECK(c, cuMemcpyDtoHAsync(dst, src, n, c->stream));
    CU_CHECK(c, cuStreamSynchronize(c->stream));
}

static void *host_alloc(CudaDevice *c, size_t n)
{
    void *p = NULL;
    CU_CHECK(c, cuMemAllocHost(&p, n ? n : 1));
    return p;
}

/* a free page-locked slot of st for n bytes: the copy that last read it has run */
static void *stage_begin(CudaDevice *c, Staging *st, size_t n)
{
    if (!st->bytes) {
        for (int k = 0; k < STAGE_SLOTS; k++) {
            st->host[k] = host_alloc(c, n);
            CU_CHECK(c, cuEventCreate(&st->done[k], CU_EVENT_DEFAULT));
        }
        st->bytes = n;
    }
    if (n > st->bytes) die("cuda: a staged value grew from %zu to %zu bytes", st->bytes, n);
    int k = st->next;
    if (st->used[k]) CU_CHECK(c, cuEventSynchronize(st->done[k]));
    return st->host[k];
}
/* after the slot's copies are queued */
static void stage_end(CudaDevice *c, Staging *st)
{
    int k = st->next;
    CU_CHECK(c, cuEventRecord(st->done[k], c->stream));
    st->used[k] = 1;
    st->next = (k + 1) % STAGE_SLOTS;
}
static void stage_free(CudaDevice *c, Staging *st)
{
    for (int k = 0; st->bytes && k < STAGE_SLOTS; k++) {
        c->api->cuMemFreeHost(st->host[k]);
        c->api->cuEventDestroy(st->done[k]);
    }
    memset(st, 0, sizeof *st);
}

static void cuda_write_value(Device *d, int node, const void *host)
{
    CudaDevice *c = cd_of(d);
    size_t n = value_bytes(c, node);
    if (d->plan->g->nodes[node].op == OP_INPUT && n) { /* tokens, every step: no synchronisation */
        void *slot = stage_begin(c, &c->in_stage[node], n);
        memcpy(slot, host, n);
        CU_CHECK(c, cuMemcpyHtoDAsync(value_ptr(c, node), slot, n, c->stream));
        stage_end(c, &c->in_stage[node]);
        return;
    }
    copy_in(c, value_ptr(c, node), host, n);
}

static void cuda_read_value(Device *d, int node, void *host)
{
    CudaDevice *c = cd_of(d);
    copy_out(c, host, value_ptr(c, node), value_bytes(c, node));
}

static void cuda_read_grad(Device *d, int node, void *host)
{
    CudaDevice *c = cd_of(d);
    const Plan *p = d->plan;
    if (p->g->nodes[node].op != OP_PARAM) die("cuda: node %d is not a parameter", node);
    copy_out(c, host, c->area[AREA_GRADS] + (CUdeviceptr)p->pos[node] * 4, value_bytes(c, node));
}

static void cuda_read_area(Device *d, KancArea a, void *host)
{
    CudaDevice *c = cd_of(d);
    copy_out(c, host, c->area[a], (size_t)device_area_elems(d, a) * 4);
}

static void cuda_write_area(Device *d, KancArea a, const void *host)
{
    CudaDevice *c = cd_of(d);
    copy_in(c, c->area[a], host, (size_t)device_area_elems(d, a) * 4);
}

/* ------------------------------------------------------------ the step */

static void launch_gemm(CudaDevice *c, const CudaLaunch *l, const GemmPlan *gp)
{
    const GemmDesc *m = &l->gemm;
    if (!m->m || !m->n) return;
    CUdeviceptr A = c->area[m->area_a] + (CUdeviceptr)m->off_a,
                B = c->area[m->area_b] + (CUdeviceptr)m->off_b,
                C = c->area[m->area_c] + (CUdeviceptr)m->off_c;
    float alpha = m->alpha, beta = m->beta;
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B goes first */
    LT_CHECK(c, cublasLtMatmul(c->lt, gp->desc, &alpha, (const void *)(uintptr_t)B, gp->la,
                               (const void *)(uintptr_t)A, gp->lb, &beta, (const void *)(uintptr_t)C,
                               gp->lc, (void *)(uintptr_t)C, gp->lc, &gp->algo,
                               (void *)(uintptr_t)c->lt_ws, LT_WORKSPACE, c->stream));
}

/* the launches of nodes [from, to) in order, and the gradients' zeroing when
   the range starts the backward (as the CPU): what a graph of the range holds */
static void enqueue_range(CudaDevice *c, int from, int to)
{
    const Graph *g = c->dev.plan->g;
    if (from <= g->n_forward && to > g->n_forward)
        CU_CHECK(c, cuMemsetD8Async(c->area[AREA_GRADS], 0, c->area_bytes[AREA_GRADS], c->stream));
    for (int i = 0; i < c->prog.n_launch; i++) {
        if (c->owner[i] < from || c->owner[i] >= to) continue;
        const CudaLaunch *l = &c->prog.launch[i];
        if (l->kind == LAUNCH_GEMM) {
            launch_gemm(c, l, &c->gemm[i]);
        } else {
            void *params[2] = {&c->d_args, &c->la[i]};
            CUresult r = c->api->cuLaunchKernel(c->fn[i], l->grid[0], l->grid[1], l->grid[2], l->block[0],
                                                l->block[1], l->block[2], l->smem, c->stream, params, NULL);
            if (r != CUDA_SUCCESS)
                die("%s:%d: cuLaunchKernel(%s, grid %u,%u,%u, block %u,%u,%u, smem %u) for node %d (%s) "
                    "failed: %s (CUDA error %d)", __FILE__, __LINE__, l->name, l->grid[0], l->grid[1],
                    l->grid[2], l->block[0], l->block[1], l->block[2], l->smem, l->node,
                    l->node >= 0 ? op_name(g->nodes[l->node].op) : "-", cuda_error_string(c->api, r), r);
        }
        if (c->sync_each) { /* KANC_CUDA_SYNC=1: a fault is reported at the launch that made it */
            CUresult r = c->api->cuStreamSynchronize(c->stream);
            if (r != CUDA_SUCCESS) {
                /* kernels are shared between nodes: the launch (node, op, layer name) is the culprit */
                const GNode *nd = l->node >= 0 && l->node < g->n ? &g->nodes[l->node] : NULL;
                const char *label = nd ? nd->name : NULL;
                if (nd && !label && nd->fwd >= 0) label = g->nodes[nd->fwd].name;
                die("%s:%d: launch %d (%s, node %d %s%s%s) failed: %s (CUDA error %d)", __FILE__, __LINE__, i,
                    l->kind == LAUNCH_GEMM ? "cuBLASLt GEMM" : l->name, l->node, nd ? op_name(nd->op) : "-",
                    label ? " " : "", label ? label : "", cuda_error_string(c->api, r), r);
            }
        }
    }
}

/* the range's entry (NULL when graphs are off); when the table is full, a
   range not captured and run least often gives its place up */
static RangeGraph *range_graph(CudaDevice *c, int from, int to)
{
    if (!c->use_graphs) return NULL;
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graph[i].from == from && c->graph[i].to == to) return &c->graph[i];
    int at = -1;
    if (c->n_graphs < MAX_RANGES)
        at = c->n_graphs++;
    else
        for (int i = 0; i < MAX_RANGES; i++)
            if (!c->graph[i].exec && (at < 0 || c->graph[i].runs < c->graph[at].runs)) at = i;
    if (at < 0) return NULL;
    c->graph[at] = (RangeGraph){.from = from, .to = to};
    return &c->graph[at];
}

/* the step's record after an optimizer step: async copies of the log nodes'
   values and of grad_norm, clip_scale into a page-locked slot */
static void log_enqueue(CudaDevice *c, int64_t step)
{
    Device *d = &c->dev;
    if (!c->h_log) c->h_log = host_alloc(c, sizeof(float) * LOG_SLOTS * LOG_FLOATS);
    if (c->log_tail - c->log_head == LOG_SLOTS) d->ops->sync(d); /* the caller reads seldom: move them */
    int64_t k = c->log_tail % LOG_SLOTS;
    float *rec = c->h_log + k * LOG_FLOATS;
    for (int i = 0; i < d->n_log_nodes && i < DEVICE_LOG_NODES; i++) {
        int node = d->log_nodes[i];
        if (node < 0 || node >= d->plan->g->n || shape_numel(&d->plan->g->nodes[node].shape) != 1 ||
            d->plan->g->nodes[node].dtype == DT_I32)
            die("cuda: log node %d is not a float scalar", node);
        CU_CHECK(c, cuMemcpyDtoHAsync(&rec[i], value_ptr(c, node), sizeof(float), c->stream));
    }
    CU_CHECK(c, cuMemcpyDtoHAsync(&rec[DEVICE_LOG_NODES], c->d_scalars + offsetof(KancScalars, grad_norm),
                                  2 * sizeof(float), c->stream));
    c->log_step[k] = step;
    c->log_tail++;
}

static void cuda_sync(Device *d)
{
    CudaDevice *c = cd_of(d);
    CU_CHECK(c, cuStreamSynchronize(c->stream));
    for (; c->log_head < c->log_tail; c->log_head++) {
        int64_t k = c->log_head % LOG_SLOTS;
        const float *rec = c->h_log + k * LOG_FLOATS;
        DeviceStepLog r = {.step = c->log_step[k], .grad_norm = rec[DEVICE_LOG_NODES],
                           .clip_scale = rec[DEVICE_LOG_NODES + 1]};
        for (int i = 0; i < DEVICE_LOG_NODES; i++) r.value[i] = i < d->n_log_nodes ? rec[i] : 0;
        device_log_push(d, &r);
    }
}

static void cuda_run(Device *d, int from, int to)
{
    CudaDevice *c = cd_of(d);
    const Graph *g = d->plan->g;
    if (from < 0) from = 0;
    if (to > g->n) to = g->n;
    if (from >= to) return;
    /* the settings, from page-locked memory; grad_norm and clip_scale, which the
       device writes and AdamW reads, are left alone */
    KancScalars *s = stage_begin(c, &c->scal_stage, sizeof(KancScalars));
    *s = (KancScalars){.lr = (float)d->opt.lr, .beta1 = (float)d->opt.beta1, .beta2 = (float)d->opt.beta2,
                       .eps = (float)d->opt.eps, .weight_decay = (float)d->opt.weight_decay,
                       .clip = (float)d->opt.clip, .seed = d->seed, .step = (uint64_t)d->step,
                       .training = d->training};
    size_t mid = offsetof(KancScalars, grad_norm), rest = offsetof(KancScalars, seed);
    CU_CHECK(c, cuMemcpyHtoDAsync(c->d_scalars, s, mid, c->stream));
    CU_CHECK(c, cuMemcpyHtoDAsync(c->d_scalars + rest, (char *)s + rest, sizeof *s - rest, c->stream));
    stage_end(c, &c->scal_stage);
    int logged = 0, adamw = 0;
    for (int i = from; i < to; i++) {
        GOp op = g->nodes[i].op;
        logged |= op == OP_GRAD_NORM || op == OP_ADAMW;
        adamw += op == OP_ADAMW;
    }
    RangeGraph *rg = range_graph(c, from, to);
    if (rg && !rg->exec && rg->runs >= 1 && c->n_captured < MAX_GRAPHS) { /* its second run: capture it */
        CU_CHECK(c, cuStreamBeginCapture(c->stream, CU_STREAM_CAPTURE_MODE_GLOBAL));
        enqueue_range(c, from, to);
        CUgraph graph = NULL;
        CUresult r = c->api->cuStreamEndCapture(c->stream, &graph);
        if (r != CUDA_SUCCESS)
            die("%s:%d: cuStreamEndCapture of nodes [%d, %d) failed: %s (CUDA error %d): a call inside the "
                "step cannot be captured (a synchronisation or a pageable copy?); KANC_CUDA_GRAPH=0 runs "
                "launch by launch", __FILE__, __LINE__, from, to, cuda_error_string(c->api, r), r);
        CU_CHECK(c, cuGraphInstantiate(&rg->exec, graph, 0));
        CU_CHECK(c, cuGraphDestroy(graph));
        c->n_captured++;
    }
    if (rg && rg->exec)
        CU_CHECK(c, cuGraphLaunch(rg->exec, c->stream));
    else
        enqueue_range(c, from, to);
    if (rg) rg->runs++;
    if (logged && !d->deferred) {
        CU_CHECK(c, cuMemcpyDtoHAsync(c->h_res, c->d_scalars + offsetof(KancScalars, grad_norm),
                                      2 * sizeof(float), c->stream));
        CU_CHECK(c, cuStreamSynchronize(c->stream));
        d->grad_norm = c->h_res[0];
        d->clip_scale = c->h_res[1];
    } else if (logged) { /* deferred: the step's record has them */
        d->grad_norm = d->clip_scale = NAN;
    }
    if (adamw && d->n_log_nodes > 0) log_enqueue(c, d->step);
    d->step += adamw;
}

/* ------------------------------------------------------------ open and close */

static void cuda_destroy(Device *d)
{
    CudaDevice *c = cd_of(d);
    const CudaApi *api = c->api;
    if (api) {
        if (c->stream) api->cuStreamSynchronize(c->stream);
        for (int i = 0; i < c->n_graphs; i++)
            if (c->graph[i].exec) api->cuGraphExecDestroy(c->graph[i].exec);
        stage_free(c, &c->scal_stage);
        for (int i = 0; c->in_stage && i < c->dev.plan->g->n; i++) stage_free(c, &c->in_stage[i]);
        if (c->h_res) api->cuMemFreeHost(c->h_res);
        if (c->h_log) api->cuMemFreeHost(c->h_log);
        for (int i = 0; c->gemm && i < c->prog.n_launch; i++) {
            GemmPlan *gp = &c->gemm[i];
            if (gp->desc) api->cublasLtMatmulDescDestroy(gp->desc);
            if (gp->la) api->cublasLtMatrixLayoutDestroy(gp->la);
            if (gp->lb) api->cublasLtMatrixLayoutDestroy(gp->lb);
            if (gp->lc) api->cublasLtMatrixLayoutDestroy(gp->lc);
        }
        if (c->have_lt) api->cublasLtDestroy(c->lt);
        for (int i = 0; i < KANC_N_AREAS; i++)
            if (c->area[i]) api->cuMemFree(c->area[i]);
        if (c->d_args) api->cuMemFree(c->d_args);
        if (c->d_scalars) api->cuMemFree(c->d_scalars);
        if (c->lt_ws) api->cuMemFree(c->lt_ws);
        if (c->mod) api->cuModuleUnload(c->mod);
        if (c->stream) api->cuStreamDestroy(c->stream);
        if (c->have_ctx) api->cuDevicePrimaryCtxRelease(c->cudev);
    }
    free(c->owner);
    free(c->fn);
    free(c->la);
    free(c->gemm);
    free(c->in_stage);
    device_log_free(&c->dev);
    cuda_program_free(&c->prog);
    free(c);
}

static const DeviceOps CUDA_OPS = {
    .run = cuda_run,
    .write_value = cuda_write_value,
    .read_value = cuda_read_value,
    .read_grad = cuda_read_grad,
    .read_area = cuda_read_area,
    .write_area = cuda_write_area,
    .destroy = cuda_destroy,
    .sync = cuda_sync,
};

int64_t device_cuda_bytes(const Device *d)
{
    if (!d || !d->name || (strcmp(d->name, "cuda") && strcmp(d->name, "emu"))) return 0;
    return ((const CudaDevice *)d)->bytes;
}

int device_cuda_area(Device *d, KancArea area, CUdeviceptr *ptr, CUstream *stream, const CudaApi **api)
{
    if (!d || d->ops != &CUDA_OPS || area < 0 || area >= KANC_N_AREAS) return -1;
    CudaDevice *c = cd_of(d);
    *ptr = c->area[area];
    *stream = c->stream;
    *api = c->api;
    return 0;
}

static int alloc(CudaDevice *c, CUdeviceptr *p, size_t n, char *err, size_t errlen)
{
    size_t sz = n ? (n + 255) / 256 * 256 : 256;
    CUresult r = c->api->cuMemAlloc(p, sz);
    if (r != CUDA_SUCCESS) {
        snprintf(err, errlen, "cuMemAlloc(%zu bytes) failed: %s (device memory used so far: %.1f MiB)", sz,
                 cuda_error_string(c->api, r), (double)c->bytes / (1 << 20));
        *p = 0;
        return -1;
    }
    c->bytes += (int64_t)sz;
    return 0;
}

/* the largest power of two (<= 256) dividing a byte offset and a row stride of floats */
static uint32_t align_of(int64_t off, int64_t ld, int elem)
{
    uint64_t x = (uint64_t)off | (uint64_t)ld * (uint64_t)elem | 256;
    return (uint32_t)(x & -x);
}

/* a strided batch on the three layouts (cuBLASLt's A is our B, its B our A) */
static cublasStatus_t set_batch(const CudaApi *api, GemmPlan *gp, const GemmDesc *m)
{
    int32_t n = m->batch;
    int64_t st[3] = {m->stride_b, m->stride_a, m->stride_c};
    cublasLtMatrixLayout_t l[3] = {gp->la, gp->lb, gp->lc};
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    for (int i = 0; i < 3 && !s; i++)
        if (!(s = api->cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n)))
            s = api->cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st[i],
                                                      sizeof st[i]);
    return s;
}

/* the device, context and stream */
static CudaDevice *open_context(const CudaApi *api, Plan *plan, const char *mode, char *err, size_t errlen)
{
    CudaDevice *c = xcalloc(1, sizeof *c);
    c->api = api;
    c->dev = (Device){.name = mode, .ops = &CUDA_OPS, .plan = plan, .clip_scale = 1, .queued = 1};
    c->dev.opt = (AdamWConfig){.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                               .weight_decay = 0.1, .clip = 1.0};
    const char *sync = getenv("KANC_CUDA_SYNC");
    c->sync_each = sync && *sync == '1';
    const char *graphs = getenv("KANC_CUDA_GRAPH");
    c->use_graphs = !c->sync_each && !(graphs && !strcmp(graphs, "0"));
    c->in_stage = xcalloc((size_t)plan->g->n + 1, sizeof *c->in_stage);
    const char *ord = getenv("KANC_CUDA_DEVICE");
    int ordinal = ord ? atoi(ord) : 0, count = 0;
    CU_TRY(c, cuDeviceGetCount(&count));
    if (count < 1 || ordinal < 0 || ordinal >= count) {
        snprintf(err, errlen, "no CUDA device %d (the driver sees %d)", ordinal, count);
        goto fail;
    }
    CU_TRY(c, cuDeviceGet(&c->cudev, ordinal));
    CU_TRY(c, cuDeviceGetName(c->dev.gpu_name, (int)sizeof c->dev.gpu_name, c->cudev)); /* for the MFU's peak */
    int major = 0, minor = 0;
    CU_TRY(c, cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->cudev));
    CU_TRY(c, cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->cudev));
    c->sm = major * 10 + minor;
    CU_TRY(c, cuDevicePrimaryCtxRetain(&c->ctx, c->cudev));
    c->have_ctx = 1;
    CU_TRY(c, cuCtxSetCurrent(c->ctx));
    CU_TRY(c, cuStreamCreate(&c->stream, 0));
    return c;
fail:
    cuda_destroy(&c->dev);
    return NULL;
}

/* module, functions, GEMM plans, storage; takes prog */
static int finish_open(CudaDevice *c, CudaProgram *prog, const void *image, char *err, size_t errlen)
{
    const CudaApi *api = c->api;
    const Plan *p = c->dev.plan;
    const Graph *g = p->g;
    c->prog = *prog;
    memset(prog, 0, sizeof *prog);
    int n = c->prog.n_launch, ngemm = 0;
    c->owner = xmalloc(sizeof(int) * (size_t)(n + 1));
    c->fn = xcalloc((size_t)n + 1, sizeof *c->fn);
    c->la = xcalloc((size_t)n + 1, sizeof *c->la);
    c->gemm = xcalloc((size_t)n + 1, sizeof *c->gemm);
    for (int i = 0; i < n; i++) c->owner[i] = -1;
    for (int i = 0; c->prog.node_first && i < g->n; i++)
        for (int j = 0; j < c->prog.node_count[i]; j++) {
            int l = c->prog.node_first[i] + j;
            if (l < 0 || l >= n) {
                snprintf(err, errlen, "cuda: node %d's launches are outside the launch list", i);
                return -1;
            }
            c->owner[l] = i;
        }
    for (int i = 0; i < n; i++) {
        if (c->owner[i] < 0) c->owner[i] = c->prog.launch[i].node; /* not in the node table */
        ngemm += c->prog.launch[i].kind == LAUNCH_GEMM;
    }

    int64_t pb = p->n_param_elems * 4;
    int64_t ws = p->ws_elems * 4 > c->prog.ws_bytes ? p->ws_elems * 4 : c->prog.ws_bytes;
    c->area_bytes[AREA_ARENA] = (size_t)p->arena_bytes;
    c->area_bytes[AREA_PARAMS] = c->area_bytes[AREA_GRADS] = c->area_bytes[AREA_M] = c->area_bytes[AREA_V] = (size_t)pb;
    c->area_bytes[AREA_BUFFERS] = (size_t)(p->n_buffer_elems * 4);
    c->area_bytes[AREA_WS] = (size_t)ws;
    CU_TRY(c, cuModuleLoadData(&c->mod, image));
    int smem_optin = 0;
    CU_TRY(c, cuDeviceGetAttribute(&smem_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                                   c->cudev));
    for (int i = 0; i < n; i++) {
        const CudaLaunch *l = &c->prog.launch[i];
        if (l->kind != LAUNCH_KERNEL) continue;
        CUresult r = api->cuModuleGetFunction(&c->fn[i], c->mod, l->name);
        if (r != CUDA_SUCCESS) {
            snprintf(err, errlen, "cuModuleGetFunction(%s) failed: %s (the module and the launch list "
                     "disagree)", l->name, cuda_error_string(api, r));
            return -1;
        }
        if (l->smem > 48 * 1024) {
            if ((int)l->smem > smem_optin) {
                snprintf(err, errlen, "kernel %s needs %u bytes of shared memory; this GPU allows %d",
                         l->name, l->smem, smem_optin);
                return -1;
            }
            CU_TRY(c, cuFuncSetAttribute(c->fn[i], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                         (int)l->smem));
        }
    }

    if (ngemm) {
        if (!api->cublasLtCreate) {
            snprintf(err, errlen, "cuBLASLt not found (libcublasLt.so.13 or .12; set KANC_CUBLASLT to "
                     "its path): the step has %d GEMMs for it", ngemm);
            return -1;
        }
        LT_TRY(c, cublasLtCreate(&c->lt));
        c->have_lt = 1;
        if (alloc(c, &c->lt_ws, LT_WORKSPACE, err, errlen)) return -1;
        cublasLtMatmulPreference_t pref = NULL;
        LT_TRY(c, cublasLtMatmulPreferenceCreate(&pref));
        uint64_t wsb = LT_WORKSPACE;
        cublasStatus_t ps = api->cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
        for (int i = 0; i < n && ps == CUBLAS_STATUS_SUCCESS; i++) {
            const CudaLaunch *l = &c->prog.launch[i];
            if (l->kind != LAUNCH_GEMM) continue;
            const GemmDesc *m = &l->gemm;
            GemmPlan *gp = &c->gemm[i];
            if (m->area_a < 0 || m->area_a >= KANC_N_AREAS || m->area_b < 0 || m->area_b >= KANC_N_AREAS ||
                m->area_c < 0 || m->area_c >= KANC_N_AREAS) {
                snprintf(err, errlen, "GEMM %s: bad storage area", l->name);
                api->cublasLtMatmulPreferenceDestroy(pref);
                return -1;
            }
            if (!m->m || !m->n) continue;
            /* every operand inside its area (a damaged plan must not make the GPU stray) */
            int64_t ra = m->trans_a ? m->k : m->m, ca = m->trans_a ? m->m : m->k;
            int64_t rb = m->trans_b ? m->n : m->k, cb = m->trans_b ? m->k : m->n;
            int ea = gemm_type_size(m->type_a), eb = gemm_type_size(m->type_b);
            int64_t nb = m->batch > 1 ? m->batch - 1 : 0; /* a strided batch's last matrices */
            int64_t ends[3] = {m->off_a + ((ra - 1) * m->lda + ca + nb * m->stride_a) * ea,
                               m->off_b + ((rb - 1) * m->ldb + cb + nb * m->stride_b) * eb,
                               m->off_c + ((m->m - 1) * m->ldc + m->n + nb * m->stride_c) * 4};
            int areas[3] = {m->area_a, m->area_b, m->area_c};
            int bad = m->k < 1 || m->m < 0 || m->n < 0 || m->lda < ca || m->ldb < cb || m->ldc < m->n ||
                      m->stride_a < 0 || m->stride_b < 0 || m->stride_c < 0 ||
                      (m->type_a != GEMM_F32 && m->type_a != GEMM_BF16) ||
                      (m->type_b != GEMM_F32 && m->type_b != GEMM_BF16) || m->type_a != m->type_b;
            for (int q = 0; q < 3 && !bad; q++) bad = ends[q] > (int64_t)c->area_bytes[areas[q]];
            if (bad) {
                snprintf(err, errlen, "GEMM %s (m %lld n %lld k %lld, ld %lld %lld %lld, A %s, B %s) does not fit "
                         "its storage areas or has operand types cuBLASLt does not pair (fp32 or bf16, both "
                         "alike)", l->name, (long long)m->m, (long long)m->n, (long long)m->k, (long long)m->lda,
                         (long long)m->ldb, (long long)m->ldc, gemm_type_name(m->type_a),
                         gemm_type_name(m->type_b));
                api->cublasLtMatmulPreferenceDestroy(pref);
                return -1;
            }
            int32_t ta = m->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = m->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
            const char *tf32 = getenv("KANC_TF32");
            /* bf16 operands: fp32 compute and scale, C and D fp32 (TF32 concerns fp32 operands only) */
            int bf16 = m->type_a == GEMM_BF16;
            int compute = !bf16 && tf32 && *tf32 == '1' ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
            int dt_a = bf16 ? CUDA_R_16BF : CUDA_R_32F; /* our A and B, one type (checked above) */
            int nres = 0;
            cublasLtMatmulHeuristicResult_t res;
            /* the real alignment of each operand (cuBLASLt assumes 256 bytes unless told):
               its byte offset in a 256-byte aligned area, and its row stride */
            int64_t sa = nb ? m->stride_a * ea : 0, sb = nb ? m->stride_b * eb : 0, sc = nb ? m->stride_c * 4 : 0;
            uint32_t al[4] = {align_of(m->off_b | sb, m->ldb, eb), align_of(m->off_a | sa, m->lda, ea),
                              align_of(m->off_c | sc, m->ldc, 4), align_of(m->off_c | sc, m->ldc, 4)};
            for (int q = 0; q < 4 && ps == CUBLAS_STATUS_SUCCESS; q++)
                ps = api->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + q,
                                                               &al[q], sizeof al[q]);
            if (ps ||
                (ps = api->cublasLtMatmulDescCreate(&gp->desc, compute, CUDA_R_32F)) ||
                (ps = api->cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
                (ps = api->cublasLtMatmulDescSetAttribute(gp->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
                /* ours B: op(B)^T is n x k */
                (ps = api->cublasLtMatrixLayoutCreate(&gp->la, dt_a, m->trans_b ? m->k : m->n,
                                                      m->trans_b ? m->n : m->k, m->ldb)) ||
                /* ours A: op(A)^T is k x m */
                (ps = api->cublasLtMatrixLayoutCreate(&gp->lb, dt_a, m->trans_a ? m->m : m->k,
                                                      m->trans_a ? m->k : m->m, m->lda)) ||
                (ps = api->cublasLtMatrixLayoutCreate(&gp->lc, CUDA_R_32F, m->n, m->m, m->ldc)) ||
                (nb && (ps = set_batch(api, gp, m))) ||
                (ps = api->cublasLtMatmulAlgoGetHeuristic(c->lt, gp->desc, gp->la, gp->lb, gp->lc, gp->lc,
                                                          pref, 1, &res, &nres))) {
                snprintf(err, errlen, "cuBLASLt setup of GEMM %s (m %lld n %lld k %lld, trans %d %d, "
                         "ld %lld %lld %lld) failed: %s", l->name, (long long)m->m, (long long)m->n,
                         (long long)m->k, m->trans_a, m->trans_b, (long long)m->lda, (long long)m->ldb,
                         (long long)m->ldc, cublas_status_string(api, ps));
                api->cublasLtMatmulPreferenceDestroy(pref);
                return -1;
            }
            if (nres < 1) {
                snprintf(err, errlen, "cuBLASLt has no algorithm for GEMM %s (m %lld n %lld k %lld)",
                         l->name, (long long)m->m, (long long)m->n, (long long)m->k);
                api->cublasLtMatmulPreferenceDestroy(pref);
                return -1;
            }
            gp->algo = res.algo;
        }
        api->cublasLtMatmulPreferenceDestroy(pref);
        if (ps != CUBLAS_STATUS_SUCCESS) {
            snprintf(err, errlen, "cuBLASLt preference: %s", cublas_status_string(api, ps));
            return -1;
        }
    }

    for (int i = 0; i < KANC_N_AREAS; i++) {
        if (alloc(c, &c->area[i], c->area_bytes[i], err, errlen)) return -1;
        CU_TRY(c, cuMemsetD8Async(c->area[i], 0, c->area_bytes[i], c->stream));
    }
    if (alloc(c, &c->d_args, sizeof(KancArgs), err, errlen) ||
        alloc(c, &c->d_scalars, sizeof(KancScalars), err, errlen))
        return -1;
    KancArgs args = {.arena = c->area[AREA_ARENA], .params = c->area[AREA_PARAMS], .grads = c->area[AREA_GRADS],
                         .m = c->area[AREA_M], .v = c->area[AREA_V], .buffers = c->area[AREA_BUFFERS],
                         .ws = c->area[AREA_WS], .scalars = c->d_scalars};
    CU_TRY(c, cuMemcpyHtoDAsync(c->d_args, &args, sizeof args, c->stream));
    /* each kernel launch's arguments, inside their areas (a damaged plan must not make the GPU stray) */
    uint64_t base[KANC_N_AREAS];
    int64_t bytes[KANC_N_AREAS];
    for (int i = 0; i < KANC_N_AREAS; i++) base[i] = c->area[i], bytes[i] = (int64_t)c->area_bytes[i];
    for (int i = 0; i < n; i++)
        if (c->prog.launch[i].kind == LAUNCH_KERNEL &&
            cuda_launch_args(&c->prog.launch[i], base, bytes, &c->la[i], err, errlen))
            return -1;
    c->scal = (KancScalars){.clip_scale = 1};
    CU_TRY(c, cuMemcpyHtoDAsync(c->d_scalars, &c->scal, sizeof c->scal, c->stream));
    CU_TRY(c, cuMemAllocHost((void **)&c->h_res, 2 * sizeof(float)));
    CU_TRY(c, cuStreamSynchronize(c->stream));
    return 0;
fail:
    return -1;
}

Device *device_cuda_new(Plan *plan, const char *mode, char *err, size_t errlen)
{
    int emu = !strcmp(mode, "emu");
    if (!emu && strcmp(mode, "cuda")) {
        snprintf(err, errlen, "unknown CUDA device mode '%s' (cuda or emu)", mode);
        return NULL;
    }
    if (plan->real_size != 4) {
        snprintf(err, errlen, "the CUDA device computes in float (the plan is in double)");
        return NULL;
    }
    const CudaApi *api = emu ? cuda_api_mock() : cuda_api_real(err, errlen);
    if (!api) return NULL;
    CudaProgram prog;
    CudaOptions co;
    if (cuda_options_for_device(&co, mode, err, errlen) || codegen_cuda(plan, &co, &prog, err, errlen)) return NULL;
    CudaDevice *c = open_context(api, plan, emu ? "emu" : "cuda", err, errlen);
    if (!c) {
        cuda_program_free(&prog);
        return NULL;
    }
    void *image = NULL;
    if (emu) {
        image = cuda_mock_image(prog.source); /* built by the mock's cuModuleLoadData */
    } else {
        NvrtcOutput nv;
        if (!nvrtc_compile(prog.source, "step.cu", c->sm, &nv, stderr, err, errlen)) {
            image = nv.cubin;
            nv.cubin = NULL;
            nvrtc_output_free(&nv);
        }
    }
    if (!image || finish_open(c, &prog, image, err, errlen)) {
        free(image);
        cuda_program_free(&prog);
        cuda_destroy(&c->dev);
        return NULL;
    }
    free(image);
    return &c->dev;
}

/* A context on mode's table ("emu": the mock, else the driver) running image
   with prog's launches (takes prog). sm >= 0: the image's architecture, refused
   when this GPU cannot run it (label names the image). */
static Device *open_program(Plan *plan, const char *mode, CudaProgram *prog, const void *image, int sm,
                            const char *label, char *err, size_t errlen)
{
    int emu = !strcmp(mode, "emu");
    const CudaApi *api = emu ? cuda_api_mock() : cuda_api_real(err, errlen);
    CudaDevice *c = api ? open_context(api, plan, emu ? "emu" : "cuda", err, errlen) : NULL;
    if (!c) {
        cuda_program_free(prog);
        return NULL;
    }
    /* SASS runs on the same major version with an equal or newer minor */
    if (sm >= 0 && (sm / 10 != c->sm / 10 || sm % 10 > c->sm % 10))
        snprintf(err, errlen, "%s was compiled for sm_%d; this GPU is sm_%d: recompile it with "
                 "kanc --arch sm_%d (or run the .kdl, which compiles for the GPU it finds)",
                 label, sm, c->sm, c->sm);
    else if (!finish_open(c, prog, image, err, errlen))
        return &c->dev;
    cuda_program_free(prog);
    cuda_destroy(&c->dev);
    return NULL;
}

Device *device_cuda_new_prebuilt(Plan *plan, CudaProgram *prog, const void *image, int sm, const char *label,
                                 char *err, size_t errlen)
{
    return open_program(plan, "cuda", prog, image, sm, label, err, errlen);
}

Device *device_cuda_open_image(Plan *plan, const char *mode, CudaProgram *prog, const void *image,
                               char *err, size_t errlen)
{
    return open_program(plan, mode, prog, image, -1, "", err, errlen);
}

/* ------------------------------------------------------------ choosing a device */

const char *device_resolve(const char *name, size_t real_size)
{
    if (!name || !strcmp(name, "auto")) return real_size == 4 && cuda_available() ? "cuda" : "cpu";
    return name;
}

int device_gemm_bf16(const char *device, size_t real_size)
{
    const char *d = device_resolve(device, real_size);
    if (real_size != 4 || (strcmp(d, "cuda") && strcmp(d, "emu"))) return 0;
    CudaOptions o;
    char err[256];
    if (cuda_options_for_device(&o, d, err, sizeof err)) return 0; /* device_open says what is wrong */
    return o.precision == CUDA_BF16 && o.use_cublas;
}

int device_precision_request(const char *cmd, const char *precision, const char *device)
{
    CudaPrecision p;
    if (cuda_precision_parse(precision, &p)) {
        fprintf(stderr, "%s: error: --precision %s: expected fp32 or bf16\n", cmd, precision);
        return -1;
    }
    if (p == CUDA_BF16 && !strcmp(device_resolve(device, 4), "cpu")) {
        fprintf(stderr, "%s: error: --precision bf16 needs a CUDA device (--device cuda or emu): the CPU "
                "computes in fp32 only%s\n", cmd, device && strcmp(device, "auto") ? "" : " (--device auto found no GPU)");
        return -1;
    }
    setenv("KANC_PRECISION", precision, 1);
    return 0;
}

Device *device_open(Plan *plan, const char *name, char *err, size_t errlen)
{
    name = device_resolve(name, plan->real_size);
    if (plan->gemm_bf16 && strcmp(name, "cuda") && strcmp(name, "emu")) {
        snprintf(err, errlen, "the plan is laid out for a CUDA step with bf16 GEMM operands: device '%s' cannot "
                 "run it", name);
        return NULL;
    }
    if (!strcmp(name, "cpu")) return device_cpu_new(plan);
    if (!strcmp(name, "cuda") || !strcmp(name, "emu")) return device_cuda_new(plan, name, err, errlen);
    snprintf(err, errlen, "unknown device '%s' (cpu, cuda, emu or auto)", name);
    return NULL;
}

int cuda_print_status(FILE *f)
{
    char err[1024];
    int ma = 0, mi = 0;
    if (nvrtc_version(&ma, &mi, err, sizeof err))
        fprintf(f, "nvrtc:     %s\n", err);
    else
        fprintf(f, "nvrtc:     %d.%d (kanc -o targets %s)\n", ma, mi, NVRTC_ARCHS);
    const CudaApi *api = cuda_api_real(err, sizeof err);
    int n = 0;
    if (!api) {
        fprintf(f, "cuda:      %s\n", err);
    } else {
        api->cuDeviceGetCount(&n);
        fprintf(f, "cuda:      %s, %d device%s\n", api->libcuda_path, n, n == 1 ? "" : "s");
        for (int i = 0; i < n; i++) {
            CudaDeviceInfo di;
            if (cuda_device_info(api, i, &di, err, sizeof err))
                fprintf(f, "  device %d: %s\n", i, err);
            else
                fprintf(f, "  device %d: %s, sm_%d%d, %d multiprocessors, %.1f GiB, driver %d.%d\n", i,
                        di.name, di.cc_major, di.cc_minor, di.sm_count, (double)di.total_mem / (1 << 30),
                        di.driver_version / 1000, di.driver_version % 1000 / 10);
        }
        fprintf(f, "cublasLt:  %s\n", api->liblt ? api->liblt_path : "not found (set KANC_CUBLASLT)");
    }
    const char *prelude = emu_prelude_path();
    fprintf(f, "emu:       %s\n", prelude ? prelude : "prelude runtime/device/emu/cuda_emu.h not found (set KANC_ROOT)");
    fprintf(f, "--device auto means: %s\n", api && n > 0 ? "cuda" : "cpu");
    return 0;
}
