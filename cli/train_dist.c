/* train_dist.c: kanrun train as one rank of a data-parallel job (train_dist.h). */
#include "train_dist.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_api.h"
#include "util.h"

/* The line a rank prints when the launcher ends the job (SIGTERM: mpirun does
   so when another rank died), written by the handler with write(2). Two
   buffers, so that the handler never reads one being rewritten. */
static char stop_text[2][1024];
static volatile sig_atomic_t stop_which;

static void on_stop_signal(int sig)
{
    const char *t = stop_text[stop_which];
    ssize_t w = write(2, t, strlen(t));
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

void train_dist_note_checkpoint(const Dist *d, const char *kept)
{
    if (!d->active) return;
    int next = !stop_which;
    snprintf(stop_text[next], sizeof stop_text[next],
             "kanrun train: rank %d: stopped by a signal (the launcher ends the job: did another rank fail?); %s\n",
             d->rank, kept);
    stop_which = next;
}

int train_dist_setup_rank(Dist *d, TrainArgs *a, char *err, size_t errlen)
{
    train_dist_note_checkpoint(d, "no checkpoint was written yet");
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    if (d->rank > 0) { /* rank 0 alone logs */
        a->quiet = 1;
        if (!freopen("/dev/null", "w", stdout)) {
            set_err(err, errlen, "rank %d: cannot silence stdout", d->rank);
            return -1;
        }
    }
    if (a->threads == 0 && d->local_size > 1) { /* the ranks on a machine share its cores */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        a->threads = cores / d->local_size > 1 ? cores / d->local_size : 1;
    }
    const char *ord = getenv("KANC_CUDA_DEVICE");
    int emu = a->device && !strcmp(a->device, "emu"); /* the mock has one device */
    if ((!ord || !*ord) && !emu) { /* one rank per GPU */
        char s[16];
        snprintf(s, sizeof s, "%d", d->local_rank);
        setenv("KANC_CUDA_DEVICE", s, 1);
    }
    return 0;
}

int train_dist_setup_model(Dist *d, DistZero *z, const TrainArgs *a, Model *m, char *err, size_t errlen)
{
    if (!d->active) {
        if (a->zero || a->check_every)
            fprintf(stderr, "kanrun train: note: --zero and --check-every act only under mpirun (one process here)\n");
        return 0;
    }
    Device *dev = m->dev;
    if (dev->plan->real_size != sizeof(float)) {
        set_err(err, errlen, "data-parallel training runs in float32");
        return -1;
    }
    if (!strcmp(dev->name, "cuda") || !strcmp(dev->name, "emu")) {
        if (dist_use_nccl(d, dev, err, errlen)) return -1;
    }
    if (a->zero == 1 && dist_zero_init(d, z, dev, err, errlen)) return -1;
    return 0;
}

void train_dist_print_start(const Dist *d, const DistZero *z, const Model *m, int64_t batch, int64_t block)
{
    printf("kanrun: data parallel: %d rank%s (Open MPI, %s), gradients averaged by %s%s; global batch %d x %lld "
           "= %lld sequences of %lld tokens\n",
           d->size, d->size > 1 ? "s" : "", d->mpi_lib, d->nccl ? "NCCL " : "MPI (in rank order)",
           d->nccl ? dist_nccl_name(d) : "", d->size,
           (long long)batch, (long long)batch * d->size, (long long)block);
    if (z->active) {
        double full = 8.0 * (double)z->n / (1 << 20), mine = 8.0 * (double)(z->hi - z->lo) / (1 << 20);
        printf("kanrun: ZeRO-1: rank 0 keeps the AdamW moments of %lld of %lld parameters: %.2f MiB instead of "
               "%.2f MiB per rank\n", (long long)(z->hi - z->lo), (long long)z->n, mine, full);
    }
    (void)m;
}

void train_dist_print_end(const Dist *d, int zero_active, double comm_s, double wait_s, int64_t steps)
{
    if (steps > 0)
        printf("kanrun: data parallel: %d rank%s, per step %.3f ms in the gradient all-reduce%s, %.3f ms waiting "
               "for the slowest rank\n", d->size, d->size > 1 ? "s" : "", 1e3 * comm_s / (double)steps,
               zero_active ? " and ZeRO-1's all-gather" : "", 1e3 * wait_s / (double)steps);
}

int train_dist_rank0_outcome(Dist *d, int code, char *err, size_t errlen)
{
    /* not bounded by --dist-timeout: tokenizing a corpus or writing a
       checkpoint takes what it takes (a rank that dies is ended by mpirun) */
    double timeout = d->timeout_s;
    if (d->timeout_s < 86400) d->timeout_s = 86400;
    int v = d->rank == 0 ? code : 0;
    int rc = dist_max_int(d, &v, err, errlen);
    d->timeout_s = timeout;
    return rc ? -1 : v;
}

int train_dist_check_weights(Dist *d, Device *dev, char *err, size_t errlen)
{
    int64_t n = device_area_elems(dev, AREA_PARAMS);
    size_t bytes = (size_t)n * dev->plan->real_size;
    void *p = xmalloc(bytes ? bytes : 1);
    dev->ops->read_area(dev, AREA_PARAMS, p);
    uint64_t fp = dist_fingerprint(p, bytes);
    free(p);
    return dist_check_same(d, fp, "the weights", err, errlen);
}
