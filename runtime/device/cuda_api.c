/* cuda_api.c: the driver API and cuBLASLt table, from the real libraries or a mock.
 *
 * Real: dlopen("libcuda.so.1") and a cuBLASLt library, dlsym each entry under
 * the versioned name cuda.h would use. Mock: host memory, synchronous copies,
 * modules that are emulation builds (shared objects holding each kernel's
 * `NAME__host` entry), launches that call those entries, and a cuBLASLt
 * matmul done by OpenBLAS in column-major order, exactly as cuBLASLt reads
 * its descriptors (so the row-major operand swap in device_cuda.c is tested).
 */
#include "cuda_api.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bf16.h"
#include "dynlib.h"
#include "emu_launch.h"
#include "util.h"

/* ------------------------------------------------------------------ real */

static CudaApi real_api;
static int real_state; /* 0 not tried, 1 loaded, -1 failed */
static char real_err[1024];
static pthread_mutex_t real_lock = PTHREAD_MUTEX_INITIALIZER;

#define SYM(lib, field, name)                                                                  \
    do {                                                                                       \
        *(void **)&api->field = dlsym(lib, name);                                              \
        if (!api->field) {                                                                     \
            snprintf(err, errlen, "%s has no symbol %s (driver too old?)", libname, name);     \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

static int load_driver(CudaApi *api, char *err, size_t errlen)
{
    static const char *const names[] = {"libcuda.so.1", "libcuda.so", NULL};
    api->libcuda = dynlib_open("KANC_LIBCUDA", names, api->libcuda_path, sizeof api->libcuda_path);
    if (!api->libcuda) {
        snprintf(err, errlen, "%s", CUDA_NO_DRIVER_MSG);
        return -1;
    }
    void *l = api->libcuda;
    const char *libname = api->libcuda_path;
    SYM(l, cuInit, "cuInit");
    SYM(l, cuDriverGetVersion, "cuDriverGetVersion");
    SYM(l, cuDeviceGetCount, "cuDeviceGetCount");
    SYM(l, cuDeviceGet, "cuDeviceGet");
    SYM(l, cuDeviceGetName, "cuDeviceGetName");
    SYM(l, cuDeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(l, cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    SYM(l, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(l, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    SYM(l, cuCtxSetCurrent, "cuCtxSetCurrent");
    SYM(l, cuCtxSynchronize, "cuCtxSynchronize");
    SYM(l, cuMemGetInfo, "cuMemGetInfo_v2");
    SYM(l, cuStreamCreate, "cuStreamCreate");
    SYM(l, cuStreamDestroy, "cuStreamDestroy_v2");
    SYM(l, cuStreamSynchronize, "cuStreamSynchronize");
    SYM(l, cuEventCreate, "cuEventCreate");
    SYM(l, cuEventDestroy, "cuEventDestroy_v2");
    SYM(l, cuEventRecord, "cuEventRecord");
    SYM(l, cuEventSynchronize, "cuEventSynchronize");
    SYM(l, cuEventElapsedTime, "cuEventElapsedTime");
    SYM(l, cuMemAlloc, "cuMemAlloc_v2");
    SYM(l, cuMemFree, "cuMemFree_v2");
    SYM(l, cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    SYM(l, cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(l, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    SYM(l, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    SYM(l, cuMemsetD8Async, "cuMemsetD8Async");
    SYM(l, cuModuleLoadData, "cuModuleLoadData");
    SYM(l, cuModuleUnload, "cuModuleUnload");
    SYM(l, cuModuleGetFunction, "cuModuleGetFunction");
    SYM(l, cuFuncGetAttribute, "cuFuncGetAttribute");
    SYM(l, cuFuncSetAttribute, "cuFuncSetAttribute");
    SYM(l, cuLaunchKernel, "cuLaunchKernel");
    SYM(l, cuMemAllocHost, "cuMemAllocHost_v2");
    SYM(l, cuMemFreeHost, "cuMemFreeHost");
    SYM(l, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    SYM(l, cuStreamEndCapture, "cuStreamEndCapture");
    SYM(l, cuStreamIsCapturing, "cuStreamIsCapturing");
    SYM(l, cuGraphInstantiate, "cuGraphInstantiateWithFlags");
    SYM(l, cuGraphLaunch, "cuGraphLaunch");
    SYM(l, cuGraphExecDestroy, "cuGraphExecDestroy");
    SYM(l, cuGraphDestroy, "cuGraphDestroy");
    SYM(l, cuGetErrorString, "cuGetErrorString");
    SYM(l, cuGetErrorName, "cuGetErrorName");
    return 0;
}

static void load_cublaslt(CudaApi *api)
{
    static const char *const names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
                                        "/usr/local/cuda/lib64/libcublasLt.so.13",
                                        "/usr/local/cuda/lib64/libcublasLt.so.12", NULL};
    void *l = dynlib_open("KANC_CUBLASLT", names, api->liblt_path, sizeof api->liblt_path);
    if (!l) return;
    struct {
        void **field;
        const char *name;
    } syms[] = {
        {(void **)&api->cublasLtCreate, "cublasLtCreate"},
        {(void **)&api->cublasLtDestroy, "cublasLtDestroy"},
        {(void **)&api->cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate"},
        {(void **)&api->cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy"},
        {(void **)&api->cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute"},
        {(void **)&api->cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate"},
        {(void **)&api->cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy"},
        {(void **)&api->cublasLtMatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute"},
        {(void **)&api->cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate"},
        {(void **)&api->cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy"},
        {(void **)&api->cublasLtMatmulPreferenceSetAttribute,
         "cublasLtMatmulPreferenceSetAttribute"},
        {(void **)&api->cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic"},
        {(void **)&api->cublasLtMatmul, "cublasLtMatmul"},
        {(void **)&api->cublasLtGetStatusString, "cublasLtGetStatusString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].field = dlsym(l, syms[i].name);
        if (!*syms[i].field && strcmp(syms[i].name, "cublasLtGetStatusString")) {
            for (size_t j = 0; j < sizeof syms / sizeof *syms; j++) *syms[j].field = NULL;
            dlclose(l);
            api->liblt_path[0] = 0;
            return;
        }
    }
    api->liblt = l;
}

const CudaApi *cuda_api_real(char *err, size_t errlen)
{
    pthread_mutex_lock(&real_lock);
    if (!real_state) {
        CudaApi *api = &real_api;
        memset(api, 0, sizeof *api);
        api->kind = "cuda";
        if (load_driver(api, real_err, sizeof real_err)) {
            if (api->libcuda) dlclose(api->libcuda);
            real_state = -1;
        } else {
            CUresult r = api->cuInit(0);
            if (r != CUDA_SUCCESS) {
                const char *s = NULL;
                if (api->cuGetErrorString(r, &s) != CUDA_SUCCESS || !s) s = cuda_error_string(NULL, r);
                if (r == CUDA_ERROR_NO_DEVICE)
                    snprintf(real_err, sizeof real_err,
                             "the CUDA driver (%s) finds no GPU (cuInit: %s); use --device cpu",
                             api->libcuda_path, s ? s : "no device");
                else
                    snprintf(real_err, sizeof real_err, "cuInit failed: %s (error %d)",
                             s ? s : "unknown error", r);
                real_state = -1;
            } else {
                load_cublaslt(api);
                real_state = 1;
            }
        }
    }
    const CudaApi *res = real_state > 0 ? &real_api : NULL;
    if (!res) snprintf(err, errlen, "%.*s", (int)(errlen ? errlen - 1 : 0), real_err);
    pthread_mutex_unlock(&real_lock);
    return res;
}

int cuda_available(void)
{
    char err[1024];
    const CudaApi *api = cuda_api_real(err, sizeof err);
    int n = 0;
    return api && api->cuDeviceGetCount(&n) == CUDA_SUCCESS && n > 0;
}

const char *cuda_error_string(const CudaApi *api, CUresult r)
{
    if (api && api->cuGetErrorString) {
        const char *s = NULL;
        if (api->cuGetErrorString(r, &s) == CUDA_SUCCESS && s) return s;
    }
    switch (r) {
    case CUDA_SUCCESS: return "no error";
    case CUDA_ERROR_INVALID_VALUE: return "invalid argument";
    case CUDA_ERROR_OUT_OF_MEMORY: return "out of memory";
    case CUDA_ERROR_INVALID_IMAGE: return "device kernel image is invalid";
    case CUDA_ERROR_NOT_FOUND: return "named symbol not found";
    case 34: return "CUDA_ERROR_STUB_LIBRARY: the CUDA toolkit's stub libcuda.so, not a driver";
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: return "operation not permitted when stream is capturing";
    case CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: return "operation failed due to a previous error during capture";
    case CUDA_ERROR_STREAM_CAPTURE_UNMATCHED: return "capture was not initiated in this stream";
    default: return "unknown error";
    }
}

const char *cublas_status_string(const CudaApi *api, cublasStatus_t s)
{
    if (api && api->cublasLtGetStatusString) return api->cublasLtGetStatusString(s);
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

int cuda_device_info(const CudaApi *api, int ordinal, CudaDeviceInfo *info, char *err,
                     size_t errlen)
{
    memset(info, 0, sizeof *info);
    CUdevice d;
    CUresult r;
    if ((r = api->cuDeviceGet(&d, ordinal)) ||
        (r = api->cuDeviceGetName(info->name, (int)sizeof info->name, d)) ||
        (r = api->cuDeviceGetAttribute(&info->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                       d)) ||
        (r = api->cuDeviceGetAttribute(&info->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                       d)) ||
        (r = api->cuDeviceGetAttribute(&info->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                       d)) ||
        (r = api->cuDeviceTotalMem(&info->total_mem, d)) ||
        (r = api->cuDriverGetVersion(&info->driver_version))) {
        snprintf(err, errlen, "CUDA device %d: %s", ordinal, cuda_error_string(api, r));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ mock */

/* An emulation module: the generated source built by the emulator
   (runtime/device/emu), or a shared object given by path (tests). */
#define MOCK_SRC_MAGIC "KANCEMU:src:"
#define MOCK_SO_MAGIC "KANCEMU:so:"
typedef struct {
    EmuModule *em;
    void *so;
} MockModule;

char *cuda_mock_image(const char *source) { return xasprintf("%s%s", MOCK_SRC_MAGIC, source); }
char *cuda_mock_image_so(const char *so_path) { return xasprintf("%s%s", MOCK_SO_MAGIC, so_path); }

/* ---- streams, capture and graphs (CU_STREAM_CAPTURE_MODE_GLOBAL's rules) */

typedef enum { MN_KERNEL, MN_MEMSET, MN_COPY, MN_GEMM, MN_EVENT } MockNodeKind;
struct MockGemm;
typedef struct {
    MockNodeKind kind;
    EmuHostFn fn; /* kernel: entry, dimensions and both parameters by value */
    unsigned grid[3], block[3], smem;
    CUdeviceptr args;
    KancLaunchArgs la;
    void *dst; /* memset, copy */
    const void *src;
    size_t n;
    unsigned char value;
    struct MockGemm *gemm; /* cuBLASLt: descriptors and scalars by value */
    CUevent ev;
} MockNode;
struct CUgraph_st {
    MockNode *node;
    int n, cap;
};
struct CUgraphExec_st {
    MockNode *node;
    int n;
};
struct CUstream_st {
    int capturing, invalidated;
    int64_t refusals0; /* mock_refusals when the capture began */
    struct CUgraph_st *graph;
};

static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER;
static int mock_captures;          /* streams capturing now */
static int64_t mock_refusals;      /* calls refused because some stream captured: they invalidate every capture */
static int64_t mock_graph_launches;
typedef struct {
    char *p;
    size_t n;
} PinnedRange;
static PinnedRange *mock_pinned;   /* cuMemAllocHost's blocks */
static int mock_npinned, mock_cap_pinned;

static void mock_node_free(MockNode *nd);
static CUresult mock_node_run(const MockNode *nd);

static int capturing(CUstream s) { return s && s->capturing; }
static int invalidated(CUstream s)
{
    pthread_mutex_lock(&mock_lock);
    int inv = s->invalidated || s->refusals0 != mock_refusals;
    pthread_mutex_unlock(&mock_lock);
    return inv;
}

/* a call the driver refuses during capture: the capture becomes invalid */
static CUresult capture_refuse(CUstream s)
{
    if (s && s->capturing) s->invalidated = 1;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}
/* a call refused while any stream captures (global mode: synchronous copies,
   context synchronisation, allocation): every capture becomes invalid */
static int any_capture_refuse(void)
{
    pthread_mutex_lock(&mock_lock);
    int n = mock_captures;
    if (n) mock_refusals++;
    pthread_mutex_unlock(&mock_lock);
    return n;
}

static void record(CUstream s, const MockNode *nd)
{
    struct CUgraph_st *g = s->graph;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->node = xrealloc(g->node, sizeof *g->node * (size_t)g->cap);
    }
    g->node[g->n++] = *nd;
}

/* page-locked: the whole range [p, p + n) inside one cuMemAllocHost block */
static int is_pinned(const void *p, size_t n)
{
    pthread_mutex_lock(&mock_lock);
    int ok = 0;
    for (int i = 0; i < mock_npinned && !ok; i++)
        ok = (const char *)p >= mock_pinned[i].p && (const char *)p + n <= mock_pinned[i].p + mock_pinned[i].n;
    pthread_mutex_unlock(&mock_lock);
    return ok;
}
static CUresult m_alloc_host(void **p, size_t n)
{
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    if (any_capture_refuse()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    *p = xmalloc(n ? n : 1);
    memset(*p, 0xff, n);
    pthread_mutex_lock(&mock_lock);
    if (mock_npinned == mock_cap_pinned) {
        mock_cap_pinned = mock_cap_pinned ? 2 * mock_cap_pinned : 16;
        mock_pinned = xrealloc(mock_pinned, sizeof *mock_pinned * (size_t)mock_cap_pinned);
    }
    mock_pinned[mock_npinned++] = (PinnedRange){*p, n};
    pthread_mutex_unlock(&mock_lock);
    return CUDA_SUCCESS;
}
static CUresult m_free_host(void *p)
{
    pthread_mutex_lock(&mock_lock);
    int at = -1;
    for (int i = 0; i < mock_npinned; i++)
        if (mock_pinned[i].p == p) at = i;
    if (at >= 0) mock_pinned[at] = mock_pinned[--mock_npinned];
    pthread_mutex_unlock(&mock_lock);
    if (at < 0) return CUDA_ERROR_INVALID_VALUE;
    free(p);
    return CUDA_SUCCESS;
}

static CUresult m_begin_capture(CUstream s, int mode)
{
    if (!s) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; /* the legacy stream cannot capture */
    if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL) return CUDA_ERROR_NOT_SUPPORTED; /* the mock has global */
    if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    s->capturing = 1;
    s->invalidated = 0;
    s->graph = xcalloc(1, sizeof *s->graph);
    pthread_mutex_lock(&mock_lock);
    s->refusals0 = mock_refusals;
    mock_captures++;
    pthread_mutex_unlock(&mock_lock);
    return CUDA_SUCCESS;
}
static CUresult m_graph_destroy(CUgraph g)
{
    if (!g) return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < g->n; i++) mock_node_free(&g->node[i]);
    free(g->node);
    free(g);
    return CUDA_SUCCESS;
}
static CUresult m_end_capture(CUstream s, CUgraph *g)
{
    if (!g) return CUDA_ERROR_INVALID_VALUE;
    *g = NULL;
    if (!s || !s->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
    int inv = invalidated(s);
    s->capturing = 0;
    pthread_mutex_lock(&mock_lock);
    mock_captures--;
    pthread_mutex_unlock(&mock_lock);
    if (inv) {
        m_graph_destroy(s->graph);
        s->graph = NULL;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    *g = s->graph;
    s->graph = NULL;
    return CUDA_SUCCESS;
}
static CUresult m_is_capturing(CUstream s, int *status)
{
    if (!status) return CUDA_ERROR_INVALID_VALUE;
    *status = !s || !s->capturing ? CU_STREAM_CAPTURE_STATUS_NONE
              : invalidated(s)    ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                  : CU_STREAM_CAPTURE_STATUS_ACTIVE;
    return CUDA_SUCCESS;
}
static struct MockGemm *mock_gemm_copy(const struct MockGemm *g);
static CUresult m_graph_instantiate(CUgraphExec *e, CUgraph g, unsigned long long flags)
{
    if (!e || !g) return CUDA_ERROR_INVALID_VALUE;
    if (any_capture_refuse()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    struct CUgraphExec_st *x = xcalloc(1, sizeof *x);
    x->n = g->n;
    x->node = xmalloc(sizeof *x->node * (size_t)(g->n + 1));
    for (int i = 0; i < g->n; i++) {
        x->node[i] = g->node[i];
        if (g->node[i].gemm) x->node[i].gemm = mock_gemm_copy(g->node[i].gemm); /* the graph may go first */
    }
    *e = x;
    return CUDA_SUCCESS;
}
static CUresult m_graph_launch(CUgraphExec e, CUstream s)
{
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    if (capturing(s)) { /* a graph launched into a capture becomes its nodes */
        for (int i = 0; i < e->n; i++) {
            MockNode nd = e->node[i];
            if (nd.gemm) nd.gemm = mock_gemm_copy(nd.gemm);
            record(s, &nd);
        }
        return CUDA_SUCCESS;
    }
    for (int i = 0; i < e->n; i++) {
        CUresult r = mock_node_run(&e->node[i]);
        if (r != CUDA_SUCCESS) return r;
    }
    pthread_mutex_lock(&mock_lock);
    mock_graph_launches++;
    pthread_mutex_unlock(&mock_lock);
    return CUDA_SUCCESS;
}
static CUresult m_graph_exec_destroy(CUgraphExec e)
{
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < e->n; i++) mock_node_free(&e->node[i]);
    free(e->node);
    free(e);
    return CUDA_SUCCESS;
}

int cuda_mock_graph_nodes(CUgraph g) { return g ? g->n : -1; }
int64_t cuda_mock_graph_launches(void)
{
    pthread_mutex_lock(&mock_lock);
    int64_t n = mock_graph_launches;
    pthread_mutex_unlock(&mock_lock);
    return n;
}

static CUresult m_ctx_sync(void)
{
    return any_capture_refuse() ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
static CUresult m_init(unsigned f) { return CUDA_SUCCESS; }
static CUresult m_driver_version(int *v) { *v = 13000; return CUDA_SUCCESS; }
static CUresult m_count(int *n) { *n = 1; return CUDA_SUCCESS; }
static CUresult m_get(CUdevice *d, int i) { *d = i; return i == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
static CUresult m_name(char *s, int n, CUdevice d)
{
    snprintf(s, (size_t)n, "kanc emulated GPU (host CPU)");
    return CUDA_SUCCESS;
}
static CUresult m_attr(int *v, int a, CUdevice d)
{
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 48 << 10; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 227 << 10; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *v = 1000000; break;
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}
static CUresult m_total(size_t *b, CUdevice d) { *b = (size_t)16 << 30; return CUDA_SUCCESS; }
static CUresult m_ctx_retain(CUcontext *c, CUdevice d) { *c = (CUcontext)(uintptr_t)1; return CUDA_SUCCESS; }
static CUresult m_ctx_release(CUdevice d) { return CUDA_SUCCESS; }
static CUresult m_ctx_set(CUcontext c) { return CUDA_SUCCESS; }
static CUresult m_mem_info(size_t *f, size_t *t) { *f = *t = (size_t)16 << 30; return CUDA_SUCCESS; }
static CUresult m_stream_create(CUstream *s, unsigned f)
{
    *s = xcalloc(1, sizeof **s);
    return CUDA_SUCCESS;
}
static CUresult m_stream_destroy(CUstream s)
{
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    if (s->capturing) {
        pthread_mutex_lock(&mock_lock);
        mock_captures--;
        pthread_mutex_unlock(&mock_lock);
        m_graph_destroy(s->graph);
    }
    free(s);
    return CUDA_SUCCESS;
}
static CUresult m_stream_sync(CUstream s)
{
    if (capturing(s)) return capture_refuse(s);
    return CUDA_SUCCESS;
}

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}
static CUresult m_event_create(CUevent *e, unsigned f)
{
    *e = xcalloc(1, sizeof(double));
    return CUDA_SUCCESS;
}
static CUresult m_event_destroy(CUevent e) { free(e); return CUDA_SUCCESS; }
static CUresult m_event_record(CUevent e, CUstream s)
{
    if (capturing(s)) {
        record(s, &(MockNode){.kind = MN_EVENT, .ev = e});
        return CUDA_SUCCESS;
    }
    *(double *)e = mono_ms();
    return CUDA_SUCCESS;
}
static CUresult m_event_sync(CUevent e)
{
    return any_capture_refuse() ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
static CUresult m_event_elapsed(float *ms, CUevent a, CUevent b)
{
    *ms = (float)(*(double *)b - *(double *)a);
    return CUDA_SUCCESS;
}

/* Allocations are host memory, poisoned with 0xff bytes (float NaN) as a
   reminder that device memory starts with garbage. */
static CUresult m_alloc(CUdeviceptr *p, size_t n)
{
    if (any_capture_refuse()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    size_t sz = (n + 255) / 256 * 256;
    void *q = aligned_alloc(256, sz ? sz : 256);
    if (!q) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(q, 0xff, sz ? sz : 256);
    *p = (CUdeviceptr)(uintptr_t)q;
    return CUDA_SUCCESS;
}
static CUresult m_free(CUdeviceptr p) { free((void *)(uintptr_t)p); return CUDA_SUCCESS; }
static CUresult m_htod(CUdeviceptr d, const void *s, size_t n)
{
    if (any_capture_refuse()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if (!d && n) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy((void *)(uintptr_t)d, s, n);
    return CUDA_SUCCESS;
}
static CUresult m_dtoh(void *d, CUdeviceptr s, size_t n)
{
    if (any_capture_refuse()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if (!s && n) return CUDA_ERROR_INVALID_VALUE;
    if (n) memcpy(d, (const void *)(uintptr_t)s, n);
    return CUDA_SUCCESS;
}
/* async copies: inside a capture only from or to page-locked memory (a pageable
   one is staged by the host, which a capture cannot hold) */
static CUresult m_copy_async(void *dst, const void *src, size_t n, const void *host, CUstream st)
{
    if (!capturing(st)) {
        if ((!dst || !src) && n) return CUDA_ERROR_INVALID_VALUE;
        if (n) memcpy(dst, src, n);
        return CUDA_SUCCESS;
    }
    if (!is_pinned(host, n)) return capture_refuse(st);
    if ((!dst || !src) && n) {
        st->invalidated = 1;
        return CUDA_ERROR_INVALID_VALUE;
    }
    record(st, &(MockNode){.kind = MN_COPY, .dst = dst, .src = src, .n = n});
    return CUDA_SUCCESS;
}
static CUresult m_htod_async(CUdeviceptr d, const void *s, size_t n, CUstream st)
{
    return m_copy_async((void *)(uintptr_t)d, s, n, s, st);
}
static CUresult m_dtoh_async(void *d, CUdeviceptr s, size_t n, CUstream st)
{
    return m_copy_async(d, (const void *)(uintptr_t)s, n, d, st);
}
static CUresult m_memset8(CUdeviceptr d, unsigned char v, size_t n, CUstream st)
{
    if (!d && n) {
        if (capturing(st)) st->invalidated = 1;
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (capturing(st)) {
        record(st, &(MockNode){.kind = MN_MEMSET, .dst = (void *)(uintptr_t)d, .n = n, .value = v});
        return CUDA_SUCCESS;
    }
    if (n) memset((void *)(uintptr_t)d, v, n);
    return CUDA_SUCCESS;
}

static CUresult m_module_load(CUmodule *mod, const void *image)
{
    const char *s = image;
    MockModule m = {0};
    if (s && !strncmp(s, MOCK_SRC_MAGIC, strlen(MOCK_SRC_MAGIC))) {
        char err[512];
        if (!(m.em = emu_module_build(s + strlen(MOCK_SRC_MAGIC), err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            return CUDA_ERROR_INVALID_IMAGE;
        }
    } else if (s && !strncmp(s, MOCK_SO_MAGIC, strlen(MOCK_SO_MAGIC))) {
        if (!(m.so = dlopen(s + strlen(MOCK_SO_MAGIC), RTLD_NOW | RTLD_LOCAL))) {
            fprintf(stderr, "emu: cannot load %s: %s\n", s + strlen(MOCK_SO_MAGIC), dlerror());
            return CUDA_ERROR_INVALID_IMAGE;
        }
        char err[512];
        if (emu_register_shared(m.so, s + strlen(MOCK_SO_MAGIC), err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            dlclose(m.so);
            return CUDA_ERROR_INVALID_IMAGE;
        }
    } else {
        return CUDA_ERROR_INVALID_IMAGE; /* e.g. a real cubin: the mock cannot run it */
    }
    MockModule *p = xmalloc(sizeof *p);
    *p = m;
    *mod = (CUmodule)p;
    return CUDA_SUCCESS;
}
static CUresult m_module_unload(CUmodule mod)
{
    MockModule *m = (MockModule *)mod;
    if (!m) return CUDA_ERROR_INVALID_VALUE;
    if (m->em) emu_module_free(m->em);
    if (m->so) dlclose(m->so);
    free(m);
    return CUDA_SUCCESS;
}
static CUresult m_get_function(CUfunction *fn, CUmodule mod, const char *name)
{
    MockModule *m = (MockModule *)mod;
    EmuHostFn f = NULL;
    if (m && m->em) {
        f = emu_module_lookup(m->em, name);
    } else if (m && m->so) {
        char sym[160];
        snprintf(sym, sizeof sym, "%s__host", name);
        void *p = dlsym(m->so, sym);
        memcpy(&f, &p, sizeof f);
    }
    if (!f) return CUDA_ERROR_NOT_FOUND;
    memcpy(fn, &f, sizeof f);
    return CUDA_SUCCESS;
}
static CUresult m_func_get_attr(int *v, int a, CUfunction f) { *v = 0; return CUDA_SUCCESS; }
static CUresult m_func_set_attr(CUfunction f, int a, int v) { return CUDA_SUCCESS; }
static CUresult m_launch(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                         unsigned by, unsigned bz, unsigned smem, CUstream stream, void **params,
                         void **extra)
{
    if (!fn || !params || !params[0] || !params[1] || !gx || !gy || !gz || !bx || !by || !bz ||
        (uint64_t)bx * by * bz > 1024) {
        if (capturing(stream)) stream->invalidated = 1;
        return CUDA_ERROR_INVALID_VALUE;
    }
    EmuHostFn entry;
    memcpy(&entry, &fn, sizeof entry);
    /* kernelParams as the driver takes them: params[0] -> the device address of
       KancArgs (here a host pointer), params[1] -> the KancLaunchArgs; a
       captured launch keeps their values, as a graph's kernel node does */
    if (capturing(stream)) {
        MockNode nd = {.kind = MN_KERNEL, .fn = entry, .grid = {gx, gy, gz}, .block = {bx, by, bz}, .smem = smem};
        memcpy(&nd.args, params[0], sizeof nd.args);
        memcpy(&nd.la, params[1], sizeof nd.la);
        record(stream, &nd);
        return CUDA_SUCCESS;
    }
    entry((KancDim3){gx, gy, gz}, (KancDim3){bx, by, bz}, smem, params);
    return CUDA_SUCCESS;
}
static CUresult m_error_string(CUresult r, const char **s)
{
    *s = cuda_error_string(NULL, r);
    return CUDA_SUCCESS;
}

/* cuBLASLt, column-major as the library reads its descriptors, and strict:
   what a real cuBLASLt refuses is refused with the same status, and the reason
   (naming the descriptor and field) kept for cuda_mock_lt_error. */
struct KancLtDesc {
    int compute, scale, transa, transb, transc, pointer_mode;
    uint32_t epilogue;
};
struct KancLtLayout {
    int type, order;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};
struct KancLtPref {
    uint64_t max_ws;
    uint32_t align[4]; /* A, B, C, D promised alignment (bytes) */
};

enum { LT_ALGO_MAGIC = 0x6b616e63, LT_ALGO_WS = 1 << 20 };

/* a captured matmul: what the call passed, by value */
struct MockGemm {
    struct KancLtDesc desc;
    struct KancLtLayout l[4];
    const void *A, *B, *C;
    void *D;
    float alpha, beta;
    void *ws;
    uint64_t need_ws, m, n, k;
};
static void lt_compute(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t adesc, cublasLtMatrixLayout_t bdesc,
                       cublasLtMatrixLayout_t cdesc, cublasLtMatrixLayout_t ddesc, const void *A, const void *B,
                       const void *C, void *D, float al, float be, void *ws, uint64_t need_ws, uint64_t m,
                       uint64_t n, uint64_t k);

static char lt_err[512];
static cublasStatus_t lt_last = CUBLAS_STATUS_SUCCESS;

const char *cuda_mock_lt_error(void) { return lt_err; }

/* matmuls run, by A's type: [0] fp32, [1] bf16 (cuda_mock_lt_counts) */
static long lt_counts[2];

void cuda_mock_lt_counts(long *fp32, long *bf16)
{
    *fp32 = __atomic_load_n(&lt_counts[0], __ATOMIC_RELAXED);
    *bf16 = __atomic_load_n(&lt_counts[1], __ATOMIC_RELAXED);
}

static cublasStatus_t lt_fail(cublasStatus_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cublasStatus_t lt_fail(cublasStatus_t s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lt_err, sizeof lt_err, fmt, ap);
    va_end(ap);
    lt_last = s;
    return s;
}
static cublasStatus_t lt_ok(void)
{
    lt_err[0] = 0;
    lt_last = CUBLAS_STATUS_SUCCESS;
    return CUBLAS_STATUS_SUCCESS;
}

static const char *lt_type_name(int t)
{
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    default: return "an unknown type";
    }
}
static size_t lt_elem(int t) { return t == CUDA_R_32F ? 4 : 2; }

static cublasStatus_t lt_create(cublasLtHandle_t *h)
{
    if (!h) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: handle pointer is NULL");
    *h = (cublasLtHandle_t)(uintptr_t)3;
    return lt_ok();
}
static cublasStatus_t lt_destroy(cublasLtHandle_t h) { return 0; }
static cublasStatus_t lt_desc_create(cublasLtMatmulDesc_t *d, int compute, int scale)
{
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 &&
        compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "matmul desc: compute type %d (the mock has the 32F ones)",
                       compute);
    *d = xcalloc(1, sizeof **d);
    (*d)->compute = compute;
    (*d)->scale = scale;
    (*d)->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    return lt_ok();
}
static cublasStatus_t lt_desc_destroy(cublasLtMatmulDesc_t d) { free(d); return 0; }
static cublasStatus_t lt_desc_set(cublasLtMatmulDesc_t d, int attr, const void *buf, size_t size)
{
    if (!d || !buf) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matmul desc attribute %d: NULL", attr);
    int32_t v;
    if (size != sizeof v)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matmul desc attribute %d: %zu bytes, expected 4", attr, size);
    memcpy(&v, buf, sizeof v);
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_TRANSC:
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T && v != CUBLAS_OP_C)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "CUBLASLT_MATMUL_DESC_TRANS%c: %d is not an operation",
                           "ABC"[attr - CUBLASLT_MATMUL_DESC_TRANSA], v);
        if (attr == CUBLASLT_MATMUL_DESC_TRANSA) d->transa = v != CUBLAS_OP_N; /* C is T for real types */
        else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) d->transb = v != CUBLAS_OP_N;
        else d->transc = v;
        return lt_ok();
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: d->scale = v; return lt_ok();
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: d->pointer_mode = v; return lt_ok();
    case CUBLASLT_MATMUL_DESC_EPILOGUE: d->epilogue = (uint32_t)v; return lt_ok();
    default: return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matmul desc attribute %d: not one the mock knows", attr);
    }
}
static cublasStatus_t lt_layout_create(cublasLtMatrixLayout_t *l, int type, uint64_t rows,
                                       uint64_t cols, int64_t ld)
{
    if (!l) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matrix layout: NULL");
    *l = xcalloc(1, sizeof **l);
    **l = (struct KancLtLayout){type, CUBLASLT_ORDER_COL, rows, cols, ld, 1, 0};
    return lt_ok();
}
static cublasStatus_t lt_layout_destroy(cublasLtMatrixLayout_t l) { free(l); return 0; }
static cublasStatus_t lt_layout_set(cublasLtMatrixLayout_t l, int attr, const void *buf, size_t size)
{
    if (!l || !buf) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matrix layout attribute %d: NULL", attr);
    size_t want = attr == CUBLASLT_MATRIX_LAYOUT_ROWS || attr == CUBLASLT_MATRIX_LAYOUT_COLS ||
                          attr == CUBLASLT_MATRIX_LAYOUT_LD || attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET
                      ? 8
                      : 4;
    if (attr < CUBLASLT_MATRIX_LAYOUT_TYPE || attr > CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matrix layout attribute %d: not one the mock knows", attr);
    if (size != want)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matrix layout attribute %d: %zu bytes, expected %zu", attr,
                       size, want);
    int32_t v32 = 0;
    int64_t v64 = 0;
    if (want == 4) memcpy(&v32, buf, 4);
    else memcpy(&v64, buf, 8);
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: l->type = v32; break;
    case CUBLASLT_MATRIX_LAYOUT_ORDER: l->order = v32; break;
    case CUBLASLT_MATRIX_LAYOUT_ROWS: l->rows = (uint64_t)v64; break;
    case CUBLASLT_MATRIX_LAYOUT_COLS: l->cols = (uint64_t)v64; break;
    case CUBLASLT_MATRIX_LAYOUT_LD: l->ld = v64; break;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: l->batch = v32; break;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: l->stride = v64; break;
    }
    return lt_ok();
}
static cublasStatus_t lt_pref_create(cublasLtMatmulPreference_t *p)
{
    *p = xcalloc(1, sizeof **p);
    for (int i = 0; i < 4; i++) (*p)->align[i] = 256; /* cuBLASLt's default promise */
    return lt_ok();
}
static cublasStatus_t lt_pref_destroy(cublasLtMatmulPreference_t p) { free(p); return 0; }
static cublasStatus_t lt_pref_set(cublasLtMatmulPreference_t p, int attr, const void *buf, size_t size)
{
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        uint32_t a;
        char x = "ABCD"[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES];
        if (size != sizeof a)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES: %zu bytes, expected 4",
                           x, size);
        memcpy(&a, buf, sizeof a);
        if (!a || (a & (a - 1)))
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE,
                           "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES: %u is not a power of two", x, a);
        p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = a;
        return lt_ok();
    }
    if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "preference attribute %d: not one the mock knows", attr);
    if (size != sizeof(uint64_t))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: %zu bytes, expected 8",
                       size);
    memcpy(&p->max_ws, buf, sizeof p->max_ws);
    return lt_ok();
}

/* Every check a real cuBLASLt makes of the descriptors (heuristic and
   matmul); the shapes of op(A) (m x k), op(B) (k x n), C and D (m x n). */
static cublasStatus_t lt_check(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                               cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, uint64_t *m, uint64_t *n,
                               uint64_t *k)
{
    if (!d || !a || !b || !c || !dd)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "a NULL descriptor (%s)",
                       !d ? "computeDesc" : !a ? "Adesc" : !b ? "Bdesc" : !c ? "Cdesc" : "Ddesc");
    if (d->scale != CUDA_R_32F)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_SCALE_TYPE %s with a 32F compute type "
                       "(alpha and beta are CUDA_R_32F)", lt_type_name(d->scale));
    int ab32 = a->type == CUDA_R_32F && b->type == CUDA_R_32F, ab16 = a->type == CUDA_R_16BF && b->type == CUDA_R_16BF;
    int ok = d->compute == CUBLAS_COMPUTE_32F
                 ? (ab32 && c->type == CUDA_R_32F) || (ab16 && (c->type == CUDA_R_32F || c->type == CUDA_R_16BF))
                 : ab32 && c->type == CUDA_R_32F;
    if (!ok || dd->type != c->type)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED,
                       "no matmul for Atype %s, Btype %s, Ctype %s, Dtype %s with compute type %d (the mock has "
                       "32F/32F/32F/32F, 16BF/16BF/16BF/16BF and 16BF/16BF/32F/32F)",
                       lt_type_name(a->type), lt_type_name(b->type), lt_type_name(c->type), lt_type_name(dd->type),
                       d->compute);
    if (d->pointer_mode != CUBLASLT_POINTER_MODE_HOST)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_POINTER_MODE %d (the mock has host)",
                       d->pointer_mode);
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_EPILOGUE %u (the mock has the default)",
                       d->epilogue);
    if (d->transc != CUBLAS_OP_N)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "CUBLASLT_MATMUL_DESC_TRANSC must be CUBLAS_OP_N");
    cublasLtMatrixLayout_t l[4] = {a, b, c, dd};
    for (int i = 0; i < 4; i++) {
        char x = "ABCD"[i];
        if (l[i]->order != CUBLASLT_ORDER_COL)
            return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%cdesc: CUBLASLT_MATRIX_LAYOUT_ORDER %d (the mock has "
                           "CUBLASLT_ORDER_COL)", x, l[i]->order);
        if (l[i]->ld < (int64_t)(l[i]->rows ? l[i]->rows : 1))
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%cdesc: CUBLASLT_MATRIX_LAYOUT_LD %lld < rows %llu", x,
                           (long long)l[i]->ld, (unsigned long long)l[i]->rows);
        if (l[i]->rows > INT32_MAX || l[i]->cols > INT32_MAX || l[i]->ld > INT32_MAX)
            return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%cdesc: rows, columns or ld past int32", x);
        if (l[i]->batch < 1)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%cdesc: CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT %d < 1", x,
                           l[i]->batch);
        if (l[i]->stride < 0)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%cdesc: CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET %lld < 0",
                           x, (long long)l[i]->stride);
        if (l[i]->batch != a->batch)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%cdesc: CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT %d, Adesc's is %d",
                           x, l[i]->batch, a->batch);
    }
    uint64_t am = d->transa ? a->cols : a->rows, ak = d->transa ? a->rows : a->cols;
    uint64_t bk = d->transb ? b->cols : b->rows, bn = d->transb ? b->rows : b->cols;
    if (ak != bk)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "op(A) is %llu x %llu but op(B) is %llu x %llu (k differs)",
                       (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn);
    if (c->rows != am || c->cols != bn)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "Cdesc is %llu x %llu, op(A) op(B) is %llu x %llu",
                       (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)am,
                       (unsigned long long)bn);
    if (dd->rows != c->rows || dd->cols != c->cols)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "Ddesc is %llu x %llu, Cdesc %llu x %llu",
                       (unsigned long long)dd->rows, (unsigned long long)dd->cols, (unsigned long long)c->rows,
                       (unsigned long long)c->cols);
    *m = am, *n = bn, *k = ak;
    return lt_ok();
}

/* the alignment the mock's algorithm needs of matrix x: 16 bytes (vector loads)
   when every column and batch starts on 16 bytes and the caller promised it */
static uint32_t lt_need_align(cublasLtMatrixLayout_t l, uint32_t promised)
{
    size_t e = lt_elem(l->type);
    if ((l->ld * e) % 16 || (l->batch > 1 && (l->stride * e) % 16) || promised < 16) return (uint32_t)e;
    return 16;
}

/* a fingerprint of the configuration an algorithm was chosen for */
static uint64_t lt_config(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t l[4])
{
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    MIX(d->compute), MIX(d->transa), MIX(d->transb);
    for (int i = 0; i < 4; i++) MIX(l[i]->type), MIX(l[i]->rows), MIX(l[i]->cols), MIX(l[i]->ld), MIX(l[i]->batch);
#undef MIX
    return h;
}

static cublasStatus_t lt_heuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                   cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                   cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd,
                                   cublasLtMatmulPreference_t pref, int requested,
                                   cublasLtMatmulHeuristicResult_t *res, int *returned)
{
    uint64_t m, n, k;
    cublasStatus_t s;
    if (!pref || !res || !returned)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulAlgoGetHeuristic: a NULL argument");
    if (requested < 1) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "requestedAlgoCount %d < 1", requested);
    if ((s = lt_check(d, a, b, c, dd, &m, &n, &k))) return s;
    cublasLtMatrixLayout_t l[4] = {a, b, c, dd};
    memset(res, 0, sizeof *res);
    *returned = 0;
    for (int i = 0; i < 4; i++)
        if (pref->align[i] < lt_elem(l[i]->type))
            return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm for %c aligned to %u bytes (elements of %zu)",
                           "ABCD"[i], pref->align[i], lt_elem(l[i]->type));
    res->algo.data[0] = LT_ALGO_MAGIC;
    for (int i = 0; i < 4; i++) res->algo.data[1 + i] = lt_need_align(l[i], pref->align[i]);
    res->workspaceSize = pref->max_ws < LT_ALGO_WS ? (size_t)pref->max_ws : LT_ALGO_WS;
    res->algo.data[5] = res->workspaceSize;
    res->algo.data[6] = lt_config(d, l);
    res->wavesCount = 1;
    *returned = 1;
    return lt_ok();
}

/* stored matrix (rows x cols, ld, type) -> dense float (ld = rows) */
static void lt_load(const void *p, cublasLtMatrixLayout_t l, float *dst)
{
    for (uint64_t j = 0; j < l->cols; j++)
        for (uint64_t i = 0; i < l->rows; i++) {
            uint64_t at = i + j * (uint64_t)l->ld;
            dst[i + j * l->rows] = l->type == CUDA_R_16BF ? kanc_bf16_to_f32(((const uint16_t *)p)[at])
                                                           : ((const float *)p)[at];
        }
}

static cublasStatus_t lt_matmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
                                const void *A, cublasLtMatrixLayout_t adesc, const void *B,
                                cublasLtMatrixLayout_t bdesc, const void *beta, const void *C,
                                cublasLtMatrixLayout_t cdesc, void *D, cublasLtMatrixLayout_t ddesc,
                                const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsb,
                                CUstream stream)
{
    uint64_t m, n, k;
    cublasStatus_t s;
    if ((s = lt_check(d, adesc, bdesc, cdesc, ddesc, &m, &n, &k))) return s;
    cublasLtMatrixLayout_t l[4] = {adesc, bdesc, cdesc, ddesc};
    if (!alpha || !beta) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%s is NULL", !alpha ? "alpha" : "beta");
    float al = *(const float *)alpha, be = *(const float *)beta;
    /* no algorithm: cuBLASLt runs its heuristic with default preferences (256-byte
       promise, no workspace) */
    uint64_t need[4] = {16, 16, 16, 16}, need_ws = 0;
    for (int i = 0; i < 4 && !algo; i++) need[i] = lt_need_align(l[i], 256);
    if (algo) {
        if (algo->data[0] != LT_ALGO_MAGIC)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "algo: not one cublasLtMatmulAlgoGetHeuristic returned");
        if (algo->data[6] != lt_config(d, l))
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE,
                           "algo: chosen for another configuration (types, shapes, transposes or lds differ)");
        for (int i = 0; i < 4; i++) need[i] = algo->data[1 + i];
        need_ws = algo->data[5];
    }
    if (wsb < need_ws)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "workspaceSizeInBytes %zu < the algorithm's %llu", wsb,
                       (unsigned long long)need_ws);
    if (wsb && !ws) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "workspace is NULL with workspaceSizeInBytes %zu", wsb);
    const void *ptr[4] = {A, B, C, D};
    int empty = !m || !n;
    for (int i = 0; i < 4; i++) {
        if (!ptr[i] && !empty && (i == 3 || (i < 2 && k) || (i == 2 && be != 0)))
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "%c is NULL", "ABCD"[i]);
        if (ptr[i] && (uintptr_t)ptr[i] % need[i])
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE,
                           "%c (%p) is not aligned to the %llu bytes the algorithm needs (set "
                           "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES to the real alignment)",
                           "ABCD"[i], ptr[i], (unsigned long long)need[i], "ABCD"[i]);
    }
    if (C == D && C && (cdesc->ld != ddesc->ld || cdesc->stride != ddesc->stride))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE,
                       "C == D (in place) needs Cdesc == Ddesc: ld %lld vs %lld, batch stride %lld vs %lld",
                       (long long)cdesc->ld, (long long)ddesc->ld, (long long)cdesc->stride,
                       (long long)ddesc->stride);
    lt_ok();
    if (capturing(stream)) { /* a kernel node with these descriptors and scalars */
        struct MockGemm *g = xcalloc(1, sizeof *g);
        *g = (struct MockGemm){*d, {*adesc, *bdesc, *cdesc, *ddesc}, A, B, C, D, al, be, ws, need_ws, m, n, k};
        record(stream, &(MockNode){.kind = MN_GEMM, .gemm = g});
        return CUBLAS_STATUS_SUCCESS;
    }
    lt_compute(d, adesc, bdesc, cdesc, ddesc, A, B, C, D, al, be, ws, need_ws, m, n, k);
    return CUBLAS_STATUS_SUCCESS;
}

/* the product itself, on descriptors that passed lt_matmul's checks */
static void lt_compute(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t adesc, cublasLtMatrixLayout_t bdesc,
                       cublasLtMatrixLayout_t cdesc, cublasLtMatrixLayout_t ddesc, const void *A, const void *B,
                       const void *C, void *D, float al, float be, void *ws, uint64_t need_ws, uint64_t m,
                       uint64_t n, uint64_t k)
{
    __atomic_add_fetch(&lt_counts[adesc->type == CUDA_R_16BF], 1, __ATOMIC_RELAXED); /* products run, by A's type */
    if (need_ws) memset(ws, 0xff, (size_t)need_ws); /* a real algorithm's scratch */
    if (!m || !n) return;
    float *fa = xmalloc(sizeof(float) * (adesc->rows * adesc->cols + 1));
    float *fb = xmalloc(sizeof(float) * (bdesc->rows * bdesc->cols + 1));
    float *fd = xmalloc(sizeof(float) * m * n);
    for (int32_t q = 0; q < adesc->batch; q++) {
        const char *pa = (const char *)A + (size_t)q * adesc->stride * lt_elem(adesc->type);
        const char *pb = (const char *)B + (size_t)q * bdesc->stride * lt_elem(bdesc->type);
        const char *pc = (const char *)C + (size_t)q * cdesc->stride * lt_elem(cdesc->type);
        char *pd = (char *)D + (size_t)q * ddesc->stride * lt_elem(ddesc->type);
        if (be != 0)
            lt_load(pc, cdesc, fd);
        else /* C is not read: it may hold garbage (NaN) */
            memset(fd, 0, sizeof(float) * m * n);
        if (k) {
            lt_load(pa, adesc, fa);
            lt_load(pb, bdesc, fb);
            cblas_sgemm(CblasColMajor, d->transa ? CblasTrans : CblasNoTrans, d->transb ? CblasTrans : CblasNoTrans,
                        (int)m, (int)n, (int)k, al, fa, (int)(adesc->rows ? adesc->rows : 1), fb,
                        (int)(bdesc->rows ? bdesc->rows : 1), be, fd, (int)m);
        } else {
            for (uint64_t i = 0; i < m * n; i++) fd[i] *= be;
        }
        for (uint64_t j = 0; j < n; j++)
            for (uint64_t i = 0; i < m; i++) {
                uint64_t at = i + j * (uint64_t)ddesc->ld;
                if (ddesc->type == CUDA_R_16BF)
                    ((uint16_t *)pd)[at] = kanc_f32_to_bf16(fd[i + j * m]);
                else
                    ((float *)pd)[at] = fd[i + j * m];
            }
    }
    free(fa), free(fb), free(fd);
}

static struct MockGemm *mock_gemm_copy(const struct MockGemm *g)
{
    struct MockGemm *c = xmalloc(sizeof *c);
    *c = *g;
    return c;
}
static void mock_node_free(MockNode *nd) { free(nd->gemm); }

/* one node of a graph, run as the call it was captured from */
static CUresult mock_node_run(const MockNode *nd)
{
    switch (nd->kind) {
    case MN_KERNEL: {
        CUdeviceptr args = nd->args;
        KancLaunchArgs la = nd->la;
        void *params[2] = {&args, &la};
        nd->fn((KancDim3){nd->grid[0], nd->grid[1], nd->grid[2]},
               (KancDim3){nd->block[0], nd->block[1], nd->block[2]}, nd->smem, params);
        return CUDA_SUCCESS;
    }
    case MN_MEMSET: memset(nd->dst, nd->value, nd->n); return CUDA_SUCCESS;
    case MN_COPY: memcpy(nd->dst, nd->src, nd->n); return CUDA_SUCCESS;
    case MN_EVENT: *(double *)nd->ev = mono_ms(); return CUDA_SUCCESS;
    case MN_GEMM: {
        struct MockGemm *g = nd->gemm;
        lt_compute(&g->desc, &g->l[0], &g->l[1], &g->l[2], &g->l[3], g->A, g->B, g->C, g->D, g->alpha, g->beta,
                   g->ws, g->need_ws, g->m, g->n, g->k);
        return CUDA_SUCCESS;
    }
    }
    return CUDA_ERROR_INVALID_VALUE;
}
static const char *lt_status(cublasStatus_t s)
{
    static char buf[700];
    if (s == lt_last && lt_err[0]) {
        snprintf(buf, sizeof buf, "%s (mock cuBLASLt: %s)", cublas_status_string(NULL, s), lt_err);
        return buf;
    }
    return cublas_status_string(NULL, s);
}

static const CudaApi mock_api = {
    .kind = "emu",
    .mock = 1,
    .cuInit = m_init,
    .cuDriverGetVersion = m_driver_version,
    .cuDeviceGetCount = m_count,
    .cuDeviceGet = m_get,
    .cuDeviceGetName = m_name,
    .cuDeviceGetAttribute = m_attr,
    .cuDeviceTotalMem = m_total,
    .cuDevicePrimaryCtxRetain = m_ctx_retain,
    .cuDevicePrimaryCtxRelease = m_ctx_release,
    .cuCtxSetCurrent = m_ctx_set,
    .cuCtxSynchronize = m_ctx_sync,
    .cuMemGetInfo = m_mem_info,
    .cuStreamCreate = m_stream_create,
    .cuStreamDestroy = m_stream_destroy,
    .cuStreamSynchronize = m_stream_sync,
    .cuEventCreate = m_event_create,
    .cuEventDestroy = m_event_destroy,
    .cuEventRecord = m_event_record,
    .cuEventSynchronize = m_event_sync,
    .cuEventElapsedTime = m_event_elapsed,
    .cuMemAlloc = m_alloc,
    .cuMemFree = m_free,
    .cuMemcpyHtoD = m_htod,
    .cuMemcpyDtoH = m_dtoh,
    .cuMemcpyHtoDAsync = m_htod_async,
    .cuMemcpyDtoHAsync = m_dtoh_async,
    .cuMemsetD8Async = m_memset8,
    .cuModuleLoadData = m_module_load,
    .cuModuleUnload = m_module_unload,
    .cuModuleGetFunction = m_get_function,
    .cuFuncGetAttribute = m_func_get_attr,
    .cuFuncSetAttribute = m_func_set_attr,
    .cuLaunchKernel = m_launch,
    .cuMemAllocHost = m_alloc_host,
    .cuMemFreeHost = m_free_host,
    .cuStreamBeginCapture = m_begin_capture,
    .cuStreamEndCapture = m_end_capture,
    .cuStreamIsCapturing = m_is_capturing,
    .cuGraphInstantiate = m_graph_instantiate,
    .cuGraphLaunch = m_graph_launch,
    .cuGraphExecDestroy = m_graph_exec_destroy,
    .cuGraphDestroy = m_graph_destroy,
    .cuGetErrorString = m_error_string,
    .cuGetErrorName = m_error_string,
    .cublasLtCreate = lt_create,
    .cublasLtDestroy = lt_destroy,
    .cublasLtMatmulDescCreate = lt_desc_create,
    .cublasLtMatmulDescDestroy = lt_desc_destroy,
    .cublasLtMatmulDescSetAttribute = lt_desc_set,
    .cublasLtMatrixLayoutCreate = lt_layout_create,
    .cublasLtMatrixLayoutDestroy = lt_layout_destroy,
    .cublasLtMatrixLayoutSetAttribute = lt_layout_set,
    .cublasLtMatmulPreferenceCreate = lt_pref_create,
    .cublasLtMatmulPreferenceDestroy = lt_pref_destroy,
    .cublasLtMatmulPreferenceSetAttribute = lt_pref_set,
    .cublasLtMatmulAlgoGetHeuristic = lt_heuristic,
    .cublasLtMatmul = lt_matmul,
    .cublasLtGetStatusString = lt_status,
    .libcuda_path = "(mock)",
    .liblt_path = "(mock: OpenBLAS)",
};

const CudaApi *cuda_api_mock(void) { return &mock_api; }
