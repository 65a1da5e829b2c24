/* dist_nccl.c: the gradient all-reduce of CUDA ranks with NCCL, on the device buffers.
 *
 * libnccl.so.2 is opened at run time ($KANC_NCCL names another file) and only
 * the few declarations kanrun uses are written here, as cuda_api.h does for
 * the driver: NCCL's headers need not be installed to build kanrun. Rank 0
 * makes the unique id and broadcasts it over MPI; each rank joins with
 * ncclCommInitRank. The all-reduce (ncclAvg, float32, in place on AREA_GRADS)
 * is queued on the device's stream, so the gradient norm that follows on the
 * same stream reads the averaged gradients. The wait for it is polled
 * (cuStreamQuery, ncclCommGetAsyncError) against the job's deadline, and a
 * communicator that times out is aborted (ncclCommAbort), so a dead rank
 * cannot hang the others.
 *
 * The "emu" device (the CUDA path emulated on the CPU, whose device memory is
 * host memory) gets a mock of the same five calls: the id is random bytes
 * from rank 0, ncclCommInitRank checks over MPI that every rank holds the
 * same id, and the all-reduce is dist_mpi_sum_floats on the buffer. Tests
 * thus run this file's bootstrap, launch and wait code under mpirun without
 * a GPU; what needs GPUs is only the real library's transport.
 */
#include "dist.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_api.h"
#include "util.h"

typedef struct ncclComm *ncclComm_t;
typedef struct {
    char internal[128];
} ncclUniqueId;
typedef int ncclResult_t; /* ncclSuccess 0 .. */
enum { ncclSuccess = 0, ncclInProgress = 7 };
enum { ncclFloat32 = 7 };            /* ncclDataType_t */
enum { ncclSum = 0, ncclAvg = 4 };   /* ncclRedOp_t; ncclAvg since NCCL 2.10 */
#define KANC_CUDA_ERROR_NOT_READY 600  /* cuStreamQuery: work still queued */

typedef struct {
    ncclResult_t (*GetVersion)(int *version);
    ncclResult_t (*GetUniqueId)(ncclUniqueId *id);
    ncclResult_t (*CommInitRank)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
    ncclResult_t (*AllReduce)(const void *send, void *recv, size_t count, int type, int op, ncclComm_t comm,
                              CUstream stream);
    ncclResult_t (*CommGetAsyncError)(ncclComm_t comm, ncclResult_t *async);
    ncclResult_t (*CommAbort)(ncclComm_t comm);
    ncclResult_t (*CommDestroy)(ncclComm_t comm);
    const char *(*GetErrorString)(ncclResult_t r);
} NcclApi;

struct DistNccl {
    NcclApi api;
    void *lib;
    int mock;
    ncclComm_t comm;
    CUresult (*stream_query)(CUstream s); /* from libcuda (real path) */
    char path[256];
};

/* ------------------------------------------------------------ the mock */

static Dist *mock_dist; /* the job the mock's collectives run on */

static ncclResult_t mock_version(int *v)
{
    *v = 0; /* "mock" */
    return ncclSuccess;
}

static ncclResult_t mock_unique_id(ncclUniqueId *id)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    uint64_t x = (uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 20) ^ 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < sizeof id->internal; i++) { /* splitmix64 bytes */
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        id->internal[i] = (char)((z ^ (z >> 27)) >> 56);
    }
    return ncclSuccess;
}

static ncclResult_t mock_init_rank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    Dist *d = mock_dist;
    char err[512];
    if (nranks != d->size || rank != d->rank) return 4; /* ncclInvalidArgument */
    /* the bootstrap worked when every rank holds rank 0's id */
    if (dist_check_same(d, dist_fingerprint(id.internal, sizeof id.internal), "the NCCL unique ids", err, sizeof err)) {
        fprintf(stderr, "kanrun: nccl mock: %s\n", err);
        return 3; /* ncclInternalError */
    }
    *comm = (ncclComm_t)(uintptr_t)(rank + 1);
    return ncclSuccess;
}

static ncclResult_t mock_all_reduce(const void *send, void *recv, size_t count, int type, int op, ncclComm_t comm,
                                    CUstream stream)
{
    (void)comm;
    (void)stream; /* the mock's launches are synchronous */
    char err[512];
    if (type != ncclFloat32 || (op != ncclAvg && op != ncclSum)) return 4;
    if (send != recv) memmove(recv, send, count * sizeof(float));
    /* emu device addresses are host addresses */
    if (dist_mpi_sum_floats(mock_dist, recv, (int64_t)count, op == ncclAvg ? 1.0 / mock_dist->size : 1.0, err,
                            sizeof err)) {
        fprintf(stderr, "kanrun: nccl mock: %s\n", err);
        return 6; /* ncclRemoteError */
    }
    return ncclSuccess;
}

static ncclResult_t mock_async_error(ncclComm_t comm, ncclResult_t *r)
{
    (void)comm;
    *r = ncclSuccess;
    return ncclSuccess;
}

static ncclResult_t mock_comm_done(ncclComm_t comm)
{
    (void)comm;
    return ncclSuccess;
}

static const char *mock_error_string(ncclResult_t r) { return r ? "nccl mock error" : "no error"; }

static const NcclApi MOCK_API = {mock_version, mock_unique_id, mock_init_rank, mock_all_reduce, mock_async_error,
                                 mock_comm_done, mock_comm_done, mock_error_string};

/* ------------------------------------------------------------ opening */

static int open_real(DistNccl *n, const CudaApi *cuda, char *err, size_t errlen)
{
    const char *env = getenv("KANC_NCCL");
    const char *names[] = {env && *env ? env : NULL, "libnccl.so.2", "libnccl.so"};
    for (int i = 0; i < 3 && !n->lib; i++)
        if (names[i] && (n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL))) snprintf(n->path, sizeof n->path, "%s", names[i]);
    if (!n->lib) {
        set_err(err, errlen, "CUDA ranks all-reduce with NCCL, and libnccl.so.2 does not open (%s): install NCCL "
                "(libnccl2) or set KANC_NCCL", dlerror());
        return -1;
    }
    struct {
        const char *name;
        void **dst;
    } fns[] = {
        {"ncclGetVersion", (void **)&n->api.GetVersion},
        {"ncclGetUniqueId", (void **)&n->api.GetUniqueId},
        {"ncclCommInitRank", (void **)&n->api.CommInitRank},
        {"ncclAllReduce", (void **)&n->api.AllReduce},
        {"ncclCommGetAsyncError", (void **)&n->api.CommGetAsyncError},
        {"ncclCommAbort", (void **)&n->api.CommAbort},
        {"ncclCommDestroy", (void **)&n->api.CommDestroy},
        {"ncclGetErrorString", (void **)&n->api.GetErrorString},
    };
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        if (!(*fns[i].dst = dlsym(n->lib, fns[i].name))) {
            set_err(err, errlen, "%s: no symbol %s", n->path, fns[i].name);
            return -1;
        }
    int version = 0;
    n->api.GetVersion(&version);
    if (version < 21000) { /* NCCL_VERSION(2,10,0) = 21000: ncclAvg */
        set_err(err, errlen, "%s is NCCL version code %d: kanrun needs 2.10 or newer (ncclAvg)", n->path, version);
        return -1;
    }
    if (!cuda->libcuda || !(n->stream_query = (CUresult(*)(CUstream))dlsym(cuda->libcuda, "cuStreamQuery"))) {
        set_err(err, errlen, "the CUDA driver has no cuStreamQuery");
        return -1;
    }
    return 0;
}

static const char *nccl_why(DistNccl *n, ncclResult_t r)
{
    const char *s = n->api.GetErrorString ? n->api.GetErrorString(r) : NULL;
    return s ? s : "?";
}

int dist_use_nccl(Dist *d, Device *dev, char *err, size_t errlen)
{
    CUdeviceptr grads;
    CUstream stream;
    const CudaApi *cuda;
    if (device_cuda_area(dev, AREA_GRADS, &grads, &stream, &cuda)) {
        set_err(err, errlen, "NCCL needs a CUDA device (this rank runs on %s)", dev->name);
        return -1;
    }
    DistNccl *n = xcalloc(1, sizeof *n);
    if (cuda->mock) {
        n->api = MOCK_API;
        n->mock = 1;
        mock_dist = d;
        snprintf(n->path, sizeof n->path, "(mock: MPI on the emulated device's memory)");
    } else if (open_real(n, cuda, err, errlen)) {
        goto fail;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (d->rank == 0 && (r = n->api.GetUniqueId(&id)) != ncclSuccess) {
        set_err(err, errlen, "ncclGetUniqueId failed: %s", nccl_why(n, r));
        goto fail; /* the other ranks time out in the broadcast, or are stopped by dist_abort */
    }
    if (dist_bcast(d, &id, sizeof id, 0, err, errlen)) goto fail;
    if ((r = n->api.CommInitRank(&n->comm, d->size, id, d->rank)) != ncclSuccess) {
        set_err(err, errlen, "ncclCommInitRank(%d ranks) failed: %s", d->size, nccl_why(n, r));
        goto fail;
    }
    d->nccl = n;
    return 0;
fail:
    if (n->lib) dlclose(n->lib);
    free(n);
    return -1;
}

const char *dist_nccl_name(const Dist *d) { return d->nccl ? d->nccl->path : NULL; }

void dist_nccl_free(Dist *d)
{
    DistNccl *n = d->nccl;
    if (!n) return;
    if (n->comm) n->api.CommDestroy(n->comm);
    /* the library stays loaded: NCCL's threads may still be winding down */
    free(n);
    d->nccl = NULL;
}

/* ------------------------------------------------------------ the all-reduce */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int nccl_average(Dist *d, Device *dev, char *err, size_t errlen)
{
    DistNccl *n = d->nccl;
    CUdeviceptr grads;
    CUstream stream;
    const CudaApi *cuda;
    if (device_cuda_area(dev, AREA_GRADS, &grads, &stream, &cuda)) {
        set_err(err, errlen, "NCCL: the device is not a CUDA device");
        return -1;
    }
    size_t count = (size_t)device_area_elems(dev, AREA_GRADS);
    void *p = (void *)(uintptr_t)grads;
    ncclResult_t r = n->api.AllReduce(p, p, count, ncclFloat32, ncclAvg, n->comm, stream);
    if (r != ncclSuccess && r != ncclInProgress) {
        set_err(err, errlen, "ncclAllReduce of %zu gradients at step %lld failed: %s", count,
                (long long)d->step, nccl_why(n, r));
        return -1;
    }
    if (n->mock) return 0;
    double t0 = now_s();
    for (;;) { /* the stream drains, or NCCL reports, or the deadline passes */
        CUresult q = n->stream_query(stream);
        if (q == CUDA_SUCCESS) return 0;
        if (q != KANC_CUDA_ERROR_NOT_READY) {
            set_err(err, errlen, "the stream failed during the NCCL all-reduce at step %lld: %s",
                    (long long)d->step, cuda_error_string(cuda, q));
            return -1;
        }
        ncclResult_t async = ncclSuccess;
        n->api.CommGetAsyncError(n->comm, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            set_err(err, errlen, "NCCL failed at step %lld: %s (did another rank stop?)",
                    (long long)d->step, nccl_why(n, async));
            n->api.CommAbort(n->comm);
            n->comm = NULL;
            return -1;
        }
        if (now_s() - t0 > d->timeout_s) {
            set_err(err, errlen, "the NCCL all-reduce did not finish within %g s at step %lld: a rank died "
                    "or hangs (--dist-timeout)", d->timeout_s, (long long)d->step);
            n->api.CommAbort(n->comm);
            n->comm = NULL;
            return -1;
        }
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

int dist_average_grads(Dist *d, Device *dev, char *err, size_t errlen)
{
    if (d->nccl) return nccl_average(d, dev, err, errlen);
    if (!d->active) return 0;
    /* MPI through host memory: the device's gradient area, averaged, back */
    int64_t n = device_area_elems(dev, AREA_GRADS);
    if (dev->plan->real_size != sizeof(float)) {
        set_err(err, errlen, "distributed training runs in float32 (this plan stores %zu-byte reals)",
                dev->plan->real_size);
        return -1;
    }
    if (!strcmp(dev->name, "cpu")) /* host memory already: in place */
        return dist_mpi_sum_floats(d, (float *)device_cpu_exec(dev)->grads, n, 1.0 / d->size, err, errlen);
    float *g = xmalloc((size_t)(n ? n : 1) * sizeof *g);
    dev->ops->read_area(dev, AREA_GRADS, g);
    int rc = dist_mpi_sum_floats(d, g, n, 1.0 / d->size, err, errlen);
    if (!rc) dev->ops->write_area(dev, AREA_GRADS, g);
    free(g);
    return rc;
}
