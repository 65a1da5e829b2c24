/* dist_mpi.c: Open MPI opened at run time, its collectives polled against a
 * deadline, and every reduction done here in rank order (dist.h).
 *
 * Only what kanrun needs of Open MPI's ABI is declared (as cuda_api.h does
 * for CUDA): handles are pointers to the library's objects, the predefined
 * ones (MPI_COMM_WORLD, MPI_BYTE, MPI_ERRORS_RETURN) are the addresses of
 * its globals ompi_mpi_*, MPI_STATUS_IGNORE is NULL. Data moves as bytes,
 * so no MPI datatype or reduction operation is needed.
 */
#include "dist.h"

#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

typedef struct ompi_communicator_t *MPI_Comm;
typedef struct ompi_datatype_t *MPI_Datatype;
typedef struct ompi_request_t *MPI_Request;
typedef struct ompi_errhandler_t *MPI_Errhandler;
#define MPI_SUCCESS 0
#define MPI_IN_PLACE ((void *)1) /* Open MPI's value */
#define MPI_MAX_ERROR_STRING 256
#define MPI_MAX_LIBRARY_VERSION_STRING 256

struct DistMpi {
    void *lib;
    MPI_Comm world;
    MPI_Datatype byte;
    int (*Init)(int *argc, char ***argv);
    int (*Initialized)(int *flag);
    int (*Finalize)(void);
    int (*Abort)(MPI_Comm comm, int code);
    int (*Comm_rank)(MPI_Comm comm, int *rank);
    int (*Comm_size)(MPI_Comm comm, int *size);
    int (*Comm_set_errhandler)(MPI_Comm comm, MPI_Errhandler h);
    int (*Error_string)(int code, char *s, int *len);
    int (*Get_library_version)(char *s, int *len);
    int (*Test)(MPI_Request *req, int *flag, void *status);
    int (*Ibcast)(void *buf, int count, MPI_Datatype t, int root, MPI_Comm comm, MPI_Request *req);
    int (*Iallgatherv)(const void *send, int scount, MPI_Datatype st, void *recv, const int *rcounts,
                       const int *displs, MPI_Datatype rt, MPI_Comm comm, MPI_Request *req);
    int (*Igatherv)(const void *send, int scount, MPI_Datatype st, void *recv, const int *rcounts,
                    const int *displs, MPI_Datatype rt, int root, MPI_Comm comm, MPI_Request *req);
    int (*Ialltoallv)(const void *send, const int *scounts, const int *sdispls, MPI_Datatype st, void *recv,
                      const int *rcounts, const int *rdispls, MPI_Datatype rt, MPI_Comm comm, MPI_Request *req);
    int *ia, *ib, *ic, *id; /* per-rank counts and displacements of one call */
};

/* The largest piece one collective moves per rank: MPI counts are int, and
   the staging buffer stays bounded. */
#define DIST_ROUND_BYTES ((size_t)1 << 28)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void mpi_message(DistMpi *m, int code, char *buf, size_t n)
{
    char s[MPI_MAX_ERROR_STRING + 1] = {0};
    int len = 0;
    if (m->Error_string(code, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", code);
    snprintf(buf, n, "%s", s);
}

/* Checks a start of a collective, then polls it until it completes or the
   deadline passes. */
static int finish(Dist *d, int rc, MPI_Request *req, const char *what, char *err, size_t errlen)
{
    DistMpi *m = d->mpi;
    char why[MPI_MAX_ERROR_STRING + 1];
    if (rc != MPI_SUCCESS) {
        mpi_message(m, rc, why, sizeof why);
        set_err(err, errlen, "%s at step %lld failed: %s", what, (long long)d->step, why);
        return -1;
    }
    double t0 = now_s();
    for (long spins = 0;; spins++) {
        int flag = 0;
        if ((rc = m->Test(req, &flag, NULL)) != MPI_SUCCESS) {
            mpi_message(m, rc, why, sizeof why);
            set_err(err, errlen, "%s at step %lld failed: %s (did another rank stop?)", what,
                    (long long)d->step, why);
            return -1;
        }
        if (flag) return 0;
        /* MPI_Test drives the transfer (each call moves it on): spin, yielding the
           core; after a second of waiting (rank 0 writing a checkpoint) sleep between tests */
        if ((spins & 1023) == 0) {
            double waited = now_s() - t0;
            if (waited > d->timeout_s) {
                set_err(err, errlen, "no answer from the other ranks within %g s in %s at step %lld: "
                        "a rank died or hangs (--dist-timeout)", d->timeout_s, what, (long long)d->step);
                return -1;
            }
            if (waited > 1) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
        }
        sched_yield();
    }
}

static int launched_by_mpi(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (int i = 0; i < 4; i++)
        if (getenv(vars[i]) && *getenv(vars[i])) return 1;
    return 0;
}

static int env_int(const char *name, int def)
{
    const char *s = getenv(name);
    return s && *s ? atoi(s) : def;
}

int dist_init(Dist *d, double timeout_s, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
    d->timeout_s = timeout_s;
    if (!launched_by_mpi()) return 0;
    const char *env = getenv("KANC_MPI_LIB");
    const char *names[] = {env && *env ? env : NULL, "libmpi.so.40", "libmpi.so"};
    void *lib = NULL;
    for (int i = 0; i < 3 && !lib; i++) {
        if (!names[i]) continue;
        /* RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve their symbols against libmpi */
        if ((lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL))) snprintf(d->mpi_lib, sizeof d->mpi_lib, "%s", names[i]);
    }
    if (!lib) {
        set_err(err, errlen, "launched under MPI (the environment has OMPI_COMM_WORLD_SIZE or PMI_*) but no Open "
                "MPI library opens (libmpi.so.40: %s); install libopenmpi3, or set KANC_MPI_LIB", dlerror());
        return -1;
    }
    DistMpi *m = xcalloc(1, sizeof *m);
    m->lib = lib;
    struct {
        const char *name;
        void **dst;
    } fns[] = {
#define FN(n) {"MPI_" #n, (void **)&m->n}
        FN(Init), FN(Initialized), FN(Finalize), FN(Abort), FN(Comm_rank), FN(Comm_size),
        FN(Comm_set_errhandler), FN(Error_string), FN(Get_library_version), FN(Test), FN(Ibcast),
        FN(Iallgatherv), FN(Igatherv), FN(Ialltoallv),
#undef FN
        {"ompi_mpi_comm_world", (void **)&m->world}, {"ompi_mpi_byte", (void **)&m->byte},
    };
    void *errors_return = NULL;
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        if (!(*fns[i].dst = dlsym(lib, fns[i].name))) {
            set_err(err, errlen, "%s: no symbol %s: kanrun speaks Open MPI's ABI (libmpi.so.40)", d->mpi_lib,
                    fns[i].name);
            goto fail;
        }
    if (!(errors_return = dlsym(lib, "ompi_mpi_errors_return"))) {
        set_err(err, errlen, "%s: no symbol ompi_mpi_errors_return", d->mpi_lib);
        goto fail;
    }
    char version[MPI_MAX_LIBRARY_VERSION_STRING + 1] = {0};
    int len = 0;
    m->Get_library_version(version, &len);
    if (strncmp(version, "Open MPI", 8) != 0) {
        set_err(err, errlen, "%s is not Open MPI (\"%.60s\"): kanrun speaks Open MPI's ABI", d->mpi_lib, version);
        goto fail;
    }
    int rc = m->Init(NULL, NULL);
    if (rc != MPI_SUCCESS) {
        set_err(err, errlen, "MPI_Init failed (error %d)", rc);
        goto fail;
    }
    /* errors come back to kanrun, which names them and stops every rank */
    m->Comm_set_errhandler(m->world, (MPI_Errhandler)errors_return);
    m->Comm_rank(m->world, &d->rank);
    m->Comm_size(m->world, &d->size);
    d->local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", d->rank));
    d->local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", d->size));
    size_t n = (size_t)d->size;
    m->ia = xcalloc(n, sizeof(int));
    m->ib = xcalloc(n, sizeof(int));
    m->ic = xcalloc(n, sizeof(int));
    m->id = xcalloc(n, sizeof(int));
    d->mpi = m;
    d->active = 1;
    return 0;
fail:
    free(m);
    dlclose(lib);
    return -1;
}

void dist_finalize(Dist *d)
{
    dist_nccl_free(d);
    if (d->mpi) {
        d->mpi->Finalize();
        free(d->mpi->ia);
        free(d->mpi->ib);
        free(d->mpi->ic);
        free(d->mpi->id);
        free(d->mpi);
        d->mpi = NULL; /* the library stays loaded: its atexit handlers live there */
    }
    free(d->buf);
    d->buf = NULL;
    d->active = 0;
}

static void abort_timeout(int sig)
{
    (void)sig;
    _exit(1);
}

_Noreturn void dist_abort(Dist *d, int status)
{
    fflush(stdout);
    fflush(stderr);
    if (d->mpi) {
        /* MPI_Abort asks the launcher to end the job; if it cannot reach it, exit anyway */
        signal(SIGALRM, abort_timeout);
        alarm(10);
        d->mpi->Abort(d->mpi->world, status);
    }
    _exit(status);
}

/* ------------------------------------------------------------ collectives */

int dist_bcast(Dist *d, void *buf, size_t bytes, int root, char *err, size_t errlen)
{
    if (!d->active || d->size == 1) return 0;
    for (size_t at = 0; at < bytes || (at == 0 && bytes == 0); at += DIST_ROUND_BYTES) {
        size_t n = bytes - at < DIST_ROUND_BYTES ? bytes - at : DIST_ROUND_BYTES;
        MPI_Request req;
        int rc = d->mpi->Ibcast((char *)buf + at, (int)n, d->mpi->byte, root, d->mpi->world, &req);
        if (finish(d, rc, &req, "a broadcast", err, errlen)) return -1;
        if (bytes == 0) break;
    }
    return 0;
}

/* counts/offs in bytes; rounds of at most DIST_ROUND_BYTES per rank's piece */
static int gatherv(Dist *d, int root, const void *mine, void *all, const size_t *counts, const size_t *offs,
                   const char *what, char *err, size_t errlen)
{
    DistMpi *m = d->mpi;
    size_t most = 0;
    for (int r = 0; r < d->size; r++)
        if (counts[r] > most) most = counts[r];
    for (size_t at = 0; at == 0 || at < most; at += DIST_ROUND_BYTES) {
        /* this round moves the windows [offs[r] + at, + ia[r]); displacements count from the
           lowest window start, so that they stay within MPI's int */
        size_t base = SIZE_MAX;
        for (int r = 0; r < d->size; r++) {
            size_t left = counts[r] > at ? counts[r] - at : 0;
            m->ia[r] = (int)(left < DIST_ROUND_BYTES ? left : DIST_ROUND_BYTES);
            if (offs[r] + at < base) base = offs[r] + at;
        }
        for (int r = 0; r < d->size; r++) {
            size_t disp = offs[r] + at - base;
            if (disp > INT_MAX) {
                set_err(err, errlen, "%s: a displacement of %zu bytes is past MPI's int", what,
                        disp);
                return -1;
            }
            m->ib[r] = (int)disp;
        }
        const char *send = (const char *)mine + at;
        char *recv = all ? (char *)all + base : NULL;
        if (all && mine == (const char *)all + offs[d->rank]) send = MPI_IN_PLACE; /* no aliasing allowed */
        MPI_Request req;
        int rc = root < 0 ? m->Iallgatherv(send, m->ia[d->rank], m->byte, recv, m->ia, m->ib, m->byte, m->world, &req)
                          : m->Igatherv(send, m->ia[d->rank], m->byte, recv, m->ia, m->ib, m->byte, root, m->world,
                                        &req);
        if (finish(d, rc, &req, what, err, errlen)) return -1;
        if (most == 0) break;
    }
    return 0;
}

int dist_allgatherv(Dist *d, const void *mine, void *all, const size_t *counts, const size_t *offs, char *err,
                    size_t errlen)
{
    if (!d->active) {
        memmove((char *)all + offs[0], mine, counts[0]);
        return 0;
    }
    return gatherv(d, -1, mine, all, counts, offs, "an all-gather", err, errlen);
}

int dist_gatherv(Dist *d, const void *mine, void *all, const size_t *counts, const size_t *offs, char *err,
                 size_t errlen)
{
    if (!d->active) {
        memmove((char *)all + offs[0], mine, counts[0]);
        return 0;
    }
    return gatherv(d, 0, mine, all, counts, offs, "a gather to rank 0", err, errlen);
}

int dist_allgather(Dist *d, const void *mine, void *all, size_t bytes, char *err, size_t errlen)
{
    size_t *c = xmalloc(sizeof *c * (size_t)d->size), *o = xmalloc(sizeof *o * (size_t)d->size);
    for (int r = 0; r < d->size; r++) {
        c[r] = bytes;
        o[r] = (size_t)r * bytes;
    }
    int rc;
    if (!d->active) {
        memcpy(all, mine, bytes);
        rc = 0;
    } else {
        rc = gatherv(d, -1, mine, all, c, o, "an all-gather", err, errlen);
    }
    free(c);
    free(o);
    return rc;
}

int dist_mean(Dist *d, double *v, int n, char *err, size_t errlen)
{
    if (!d->active || d->size == 1) return 0;
    double *all = xmalloc(sizeof *all * (size_t)n * (size_t)d->size);
    int rc = dist_allgather(d, v, all, sizeof *v * (size_t)n, err, errlen);
    if (!rc)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < d->size; r++) s += all[(size_t)r * (size_t)n + (size_t)i];
            v[i] = s / d->size;
        }
    free(all);
    return rc;
}

int dist_max_int(Dist *d, int *v, char *err, size_t errlen)
{
    if (!d->active || d->size == 1) return 0;
    int *all = xmalloc(sizeof *all * (size_t)d->size);
    int rc = dist_allgather(d, v, all, sizeof *v, err, errlen);
    if (!rc)
        for (int r = 0; r < d->size; r++)
            if (all[r] > *v) *v = all[r];
    free(all);
    return rc;
}

uint64_t dist_fingerprint(const void *p, size_t bytes)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 1099511628211ULL;
    }
    for (; i < bytes; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

int dist_check_same(Dist *d, uint64_t fingerprint, const char *what, char *err, size_t errlen)
{
    if (!d->active || d->size == 1) return 0;
    uint64_t *all = xmalloc(sizeof *all * (size_t)d->size);
    int rc = dist_allgather(d, &fingerprint, all, sizeof fingerprint, err, errlen);
    if (!rc) {
        char ranks[256] = "";
        size_t n = 0;
        for (int r = 1; r < d->size; r++)
            if (all[r] != all[0] && n + 16 < sizeof ranks) n += (size_t)snprintf(ranks + n, sizeof ranks - n, " %d", r);
        if (n) {
            set_err(err, errlen, "%s differ between the ranks after step %lld: rank 0 has fingerprint %016llx, "
                    "ranks%s differ", what, (long long)d->step, (unsigned long long)all[0], ranks);
            rc = -1;
        }
    }
    free(all);
    return rc;
}

void dist_slice(int64_t n, int r, int size, int64_t *lo, int64_t *hi)
{
    *lo = n * r / size;
    *hi = n * (r + 1) / size;
}

/* Reduce-scatter by all-to-all (rank s receives every rank's slice s and sums
   it in rank order), then all-gather of the summed slices: the bandwidth of a
   ring all-reduce, and a result that depends on nothing but N. Done in rounds
   of DIST_ROUND_BYTES per rank's slice. */
int dist_mpi_sum_floats(Dist *d, float *x, int64_t n, double scale, char *err, size_t errlen)
{
    if (!d->active) {
        if (scale != 1)
            for (int64_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * scale);
        return 0;
    }
    DistMpi *m = d->mpi;
    int N = d->size;
    int64_t round = (int64_t)(DIST_ROUND_BYTES / sizeof(float)) * N; /* elements per round */
    for (int64_t at = 0; at < n; at += round) {
        int64_t len = n - at < round ? n - at : round;
        float *seg = x + at;
        int64_t lo, hi;
        dist_slice(len, d->rank, N, &lo, &hi);
        size_t need = (size_t)(hi - lo) * (size_t)N;
        if (need > d->buf_elems) {
            free(d->buf);
            d->buf = xmalloc((need ? need : 1) * sizeof(float));
            d->buf_elems = need;
        }
        for (int r = 0; r < N; r++) {
            int64_t rlo, rhi;
            dist_slice(len, r, N, &rlo, &rhi);
            m->ia[r] = (int)((rhi - rlo) * 4); /* my piece of r's slice */
            m->ib[r] = (int)(rlo * 4);
            m->ic[r] = (int)((hi - lo) * 4); /* r's piece of my slice */
            m->id[r] = (int)((int64_t)r * (hi - lo) * 4);
        }
        MPI_Request req;
        int rc = m->Ialltoallv(seg, m->ia, m->ib, m->byte, d->buf, m->ic, m->id, m->byte, m->world, &req);
        if (finish(d, rc, &req, "the gradient all-to-all", err, errlen)) return -1;
        int64_t w = hi - lo;
#pragma omp parallel for schedule(static) if (w > 65536)
        for (int64_t i = 0; i < w; i++) {
            double s = 0;
            for (int r = 0; r < N; r++) s += (double)d->buf[(size_t)r * (size_t)w + (size_t)i];
            seg[lo + i] = (float)(s * scale);
        }
        for (int r = 0; r < N; r++) { /* the summed slices back to every rank, in place */
            int64_t rlo, rhi;
            dist_slice(len, r, N, &rlo, &rhi);
            m->ia[r] = (int)((rhi - rlo) * 4);
            m->ib[r] = (int)(rlo * 4);
        }
        rc = m->Iallgatherv(MPI_IN_PLACE, 0, m->byte, seg, m->ia, m->ib, m->byte, m->world, &req);
        if (finish(d, rc, &req, "the gradient all-gather", err, errlen)) return -1;
    }
    return 0;
}
