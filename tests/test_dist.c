/* test_dist.c: data-parallel training under mpirun (runtime/dist, cli/train_dist.c).
 *
 * Runs `mpirun --oversubscribe --allow-run-as-root -np 2 kanrun train ...` as a
 * user does, on a tiny kansformers model and a text the suite writes: 2 ranks
 * against one process with the doubled batch, 2 ranks twice, ZeRO-1 against
 * unsharded, a killed rank and a resume, a stopped rank and the timeout, a
 * NaN stop, the NCCL path through its mock (--device emu). Skipped, saying
 * why, only where mpirun is missing (CI installs Open MPI).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "rng.h"
#include "run_check.h"
#include "test_util.h"
#include "util.h"

/* under make sanitize the ranks unwind malloc stacks fully, so that Open MPI's
   leaks reach the suppressed libraries (scripts/lsan.supp); nothing otherwise */
#define MPIRUN "env ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\" " \
               "mpirun --oversubscribe --allow-run-as-root -np 2"
/* a tiny kansformers: 2 layers, 2 heads, 32 wide, context 32; --batch per rank */
#define TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --warmup 2 --lr 1e-3 " \
             "--eval-every 0 --threads 1"
/* the tolerance of N ranks against one process with N x the batch: the
   gradient sums in another order, float32 rounding grows over the steps
   (measured: at most 2e-7 relative over 50 steps, docs/scaling.md) */
#define SAME_AS_ONE_PROCESS 1e-5

static void need_mpirun(void)
{
    if (system("command -v mpirun >/dev/null 2>&1") != 0)
        cr_skip_test("mpirun is missing: install Open MPI (apt-get install libopenmpi-dev openmpi-bin; "
                     "scripts/setup.sh does)");
}

/* a text of 20000 words from a small vocabulary, seeded: ~100 KB of bytes */
static char *write_text(void)
{
    char *dir = test_tmpdir(), *path = xasprintf("%s/text.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    const char *words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and",
                           "then", "some", "more", "words", "appear", "here", "in", "this", "text"};
    uint64_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        fprintf(f, "%s%s", words[(x >> 33) % (sizeof words / sizeof *words)], i % 17 == 16 ? "\n" : " ");
    }
    fclose(f);
    free(dir);
    return path;
}

/* the two checkpoints hold the same parameters, moments and step, to the bit */
static void expect_same_state(const char *a, const char *b, const char *what)
{
    Model ma, mb;
    run_load_ckpt(a, &ma, NULL);
    run_load_ckpt(b, &mb, NULL);
    KancArea areas[] = {AREA_PARAMS, AREA_M, AREA_V};
    const char *names[] = {"parameters", "first moments", "second moments"};
    for (int i = 0; i < 3; i++) {
        size_t na, nb;
        void *x = run_read_area(&ma, areas[i], &na), *y = run_read_area(&mb, areas[i], &nb);
        cr_expect(na == nb && !memcmp(x, y, na), "%s: the %s differ", what, names[i]);
        free(x);
        free(y);
    }
    cr_expect_eq(ma.dev->step, mb.dev->step, "%s: step %lld vs %lld", what, (long long)ma.dev->step,
                 (long long)mb.dev->step);
    model_free(&ma);
    model_free(&mb);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The pid of rank `rank` among mpirun's children (its environment names the
   rank), or -1. */
static pid_t rank_pid(pid_t mpirun, int rank)
{
    DIR *d = opendir("/proc");
    cr_assert(d);
    struct dirent *e;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    while (found < 0 && (e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64], *stat;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        if (!(stat = read_file(path, NULL))) continue;
        char *close_paren = strrchr(stat, ')');
        int ppid = -1;
        if (close_paren) sscanf(close_paren + 2, "%*c %d", &ppid);
        free(stat);
        if (ppid != mpirun) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        size_t len;
        char *env = read_file(path, &len);
        if (!env) continue;
        for (size_t i = 0; i < len; i += strlen(env + i) + 1)
            if (!strcmp(env + i, want)) found = pid;
        free(env);
    }
    closedir(d);
    return found;
}

/* Starts cmd (exec mpirun ...) until marker, sends `sig` to rank 1, reads the
   rest of the output and waits: returns the exit status, the output in *out
   and the seconds from the signal to the end in *secs. */
static int signal_rank1_at(const char *cmd, const char *marker, int sig, char **out, double *secs)
{
    FILE *f;
    pid_t mpirun = test_start_until(cmd, marker, &f);
    pid_t r1 = -1;
    for (int i = 0; i < 100 && r1 < 0; i++) {
        r1 = rank_pid(mpirun, 1);
        if (r1 < 0) usleep(20000);
    }
    cr_assert(r1 > 0, "no rank 1 among mpirun's (pid %d) children", mpirun);
    double t0 = now_s();
    kill(r1, sig);
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    }
    buf[n] = 0;
    fclose(f);
    int st;
    waitpid(mpirun, &st, 0);
    *secs = now_s() - t0;
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(dist, two_ranks_equal_one_process_with_the_doubled_batch_and_repeat_bit_for_bit, .timeout = 300)
{
    need_mpirun();
    char *text = write_text(), *one = test_tmpdir(), *a = test_tmpdir(), *b = test_tmpdir(), *out = NULL;
    const char *flags = TINY " --steps 12 --log-every 1";
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s %s --batch 8", text, one,
                          flags), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s --batch 4 "
                          "--check-every 1", text, a, flags), 0, "%s", out);
    cr_expect(strstr(out, "data parallel: 2 ranks") && strstr(out, "global batch 2 x 4 = 8 sequences"), "%s", out);
    cr_expect(strstr(out, "kanrun: done") && !strstr(out, "rank 1:"), "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s --batch 4",
                          text, b, flags), 0, "%s", out);
    free(out);
    char l1[16][64], la[16][64], lb[16][64];
    double v1[16], va[16];
    cr_assert_eq(run_read_losses(one, l1, v1, 16), 12);
    cr_assert_eq(run_read_losses(a, la, va, 16), 12, "rank 0 alone writes metrics.jsonl, each step once");
    cr_assert_eq(run_read_losses(b, lb, NULL, 16), 12);
    for (int i = 0; i < 12; i++) {
        cr_expect_str_eq(la[i], lb[i], "2 ranks twice, step %d", i + 1);
        cr_expect(fabs(va[i] - v1[i]) <= SAME_AS_ONE_PROCESS * fabs(v1[i]),
                  "step %d: 2 ranks x 4 give %s, one process x 8 gives %s", i + 1, la[i], l1[i]);
    }
    expect_same_state(a, b, "2 ranks twice");
}

/* 2 ranks x batch against one process x 2 batch, loss by loss, for a model and objective */
static void expect_split_equals_one(const char *model, const char *data, const char *flags, int batch)
{
    char *one = test_tmpdir(), *two = test_tmpdir(), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train %s --data %s --out %s %s --batch %d", model, data, one, flags,
                          2 * batch), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train %s --data %s --out %s %s --batch %d", model, data, two,
                          flags, batch), 0, "%s", out);
    cr_expect(strstr(out, "data parallel: 2 ranks") && strstr(out, "kanrun: done"), "%s", out);
    free(out);
    char l1[16][64], l2[16][64];
    double v1[16], v2[16];
    int n = run_read_losses(one, l1, v1, 16);
    cr_assert(n >= 6 && run_read_losses(two, l2, v2, 16) == n, "%s: %d steps", model, n);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(v2[i] - v1[i]) <= SAME_AS_ONE_PROCESS * fabs(v1[i]),
                  "%s step %d: 2 ranks x %d give %s, one process x %d gives %s", model, i + 1, batch, l2[i],
                  2 * batch, l1[i]);
    test_run(NULL, "rm -rf %s %s", one, two);
    free(one), free(two);
}

/* the objectives beyond text split their rows across ranks as text does: a CSV table
   (kan-regression) and masked LM (kan-bert, masks drawn by the global row). Every
   position masked (--mask-prob 1), so that each rank's loss averages as many targets:
   with fewer, N ranks average the ranks' means, as PyTorch DDP does (docs/scaling.md) */
Test(dist, table_and_mlm_runs_on_two_ranks_equal_one_process, .timeout = 300)
{
    need_mpirun();
    char *dir = test_tmpdir(), *csv = xasprintf("%s/f.csv", dir);
    FILE *f = fopen(csv, "w");
    cr_assert(f);
    fprintf(f, "x0,x1,y\n");
    for (int i = 0; i < 400; i++) {
        double a = 2.0 * kanc_rng_uniform(8, 1, 2 * (uint64_t)i) - 1, b = 2.0 * kanc_rng_uniform(8, 1, 2 * (uint64_t)i + 1) - 1;
        fprintf(f, "%.7f,%.7f,%.7f\n", a, b, exp(sin(3.14159265 * a) + b * b));
    }
    fclose(f);
    expect_split_equals_one("models/kan-regression.kdl", csv,
                            "--steps 8 --lr 1e-2 --warmup 2 --eval-every 4 --log-every 1 --threads 1", 32);
    char *text = write_text();
    expect_split_equals_one("models/kan-bert.kdl", text,
                            "--objective mlm --mask-prob 1 --set n_layer=1 --set n_embd=16 --set n_head=2 --set block_size=16 "
                            "--steps 8 --lr 1e-3 --warmup 2 --eval-every 0 --log-every 1 --threads 1", 2);
    test_run(NULL, "rm -rf %s", dir);
    free(csv), free(dir), free(text);
}

Test(dist, zero1_gives_the_same_run_and_its_checkpoint_reads_anywhere, .timeout = 300)
{
    need_mpirun();
    char *text = write_text(), *a = test_tmpdir(), *z = test_tmpdir(), *out = NULL;
    const char *flags = TINY " --steps 8 --log-every 1 --batch 4";
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s", text, a,
                          flags), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s --zero 1 "
                          "--check-every 2", text, z, flags), 0, "%s", out);
    cr_expect(strstr(out, "ZeRO-1: rank 0 keeps the AdamW moments of 168608 of 337216 parameters"), "%s", out);
    free(out);
    char la[16][64], lz[16][64];
    cr_assert_eq(run_read_losses(a, la, NULL, 16), 8);
    cr_assert_eq(run_read_losses(z, lz, NULL, 16), 8);
    for (int i = 0; i < 8; i++) cr_expect_str_eq(la[i], lz[i], "ZeRO-1 vs unsharded, step %d", i + 1);
    /* the checkpoint holds the gathered moments: the same as unsharded */
    expect_same_state(a, z, "ZeRO-1 vs unsharded");
    /* a single process reads it, and resumes it (another N: the moments reshard) */
    cr_assert_eq(test_run(&out, "$KANRUN eval %s", z), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s --steps 9 --quiet", z), 0, "%s", out);
    free(out);
    char lr[16][64];
    cr_expect_eq(run_read_losses(z, lr, NULL, 16), 9);
}

Test(dist, a_killed_rank_stops_the_job_and_the_checkpoint_resumes_exactly, .timeout = 300)
{
    need_mpirun();
    char *text = write_text(), *a = test_tmpdir(), *b = test_tmpdir(), *out = NULL;
    const char *flags = TINY " --steps 10 --log-every 1 --batch 4 --save-every 5 --dist-timeout 30";
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s", text, a,
                          flags), 0, "%s", out);
    free(out);
    /* rank 1 SIGKILLed in step 7, after the checkpoint of step 5 */
    char *cmd = xasprintf("cd '%s' && exec " MPIRUN " %s train models/kansformers.kdl --data %s --out %s %s",
                          test_root(), test_bin("kanrun"), text, b, flags);
    double secs;
    int st = signal_rank1_at(cmd, "step      6/10", SIGKILL, &out, &secs);
    free(cmd);
    cr_expect_neq(st, 0, "the job ended well with a rank killed:\n%s", out);
    cr_expect(secs < 30, "the job took %.1f s to stop after the kill:\n%s", secs, out);
    cr_expect(strstr(out, "rank 0: stopped by a signal") && strstr(out, "the last good checkpoint is"),
              "rank 0 says why it stops and what it keeps:\n%s", out);
    free(out);
    /* the checkpoint is whole: it loads, a single process evaluates it */
    cr_assert_eq(test_run(&out, "$KANRUN eval %s", b), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train --resume %s --quiet", b), 0, "%s", out);
    free(out);
    char la[16][64], lb[16][64];
    cr_assert_eq(run_read_losses(a, la, NULL, 16), 10);
    cr_assert_eq(run_read_losses(b, lb, NULL, 16), 10, "the resumed run's metrics hold every step once");
    for (int i = 0; i < 10; i++) cr_expect_str_eq(la[i], lb[i], "resumed vs uninterrupted, step %d", i + 1);
    expect_same_state(a, b, "resumed vs uninterrupted");
}

Test(dist, a_hung_rank_is_stopped_by_the_timeout, .timeout = 120)
{
    need_mpirun();
    char *text = write_text(), *a = test_tmpdir(), *out = NULL;
    char *cmd = xasprintf("cd '%s' && exec " MPIRUN " %s train models/kansformers.kdl --data %s --out %s " TINY
                          " --steps 1000 --log-every 1 --batch 4 --save-every 5 --dist-timeout 3",
                          test_root(), test_bin("kanrun"), text, a);
    double secs;
    int st = signal_rank1_at(cmd, "step      6/1000", SIGSTOP, &out, &secs); /* alive, but answers nothing */
    free(cmd);
    cr_expect_neq(st, 0, "%s", out);
    cr_expect(strstr(out, "rank 0: error: no answer from the other ranks within 3 s"), "%s", out);
    cr_expect(secs < 3 + 30, "the job took %.1f s to stop", secs);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s", a), 0, "the last checkpoint is whole:\n%s", out);
    free(out);
}

Test(dist, every_rank_stops_on_a_nan_loss_and_a_refused_checkpoint, .timeout = 120)
{
    need_mpirun();
    char *text = write_text(), *a = test_tmpdir(), *out = NULL;
    int st = test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                      " --batch 4 --steps 30 --lr 1e16 --warmup 0 --clip 0 --save-every 1 --log-every 1", text, a);
    cr_expect_eq(st, 3, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "the loss is NaN at step 2") || strstr(out, "the loss is infinite at step 2"), "%s", out);
    cr_expect(!strstr(out, "MPI_ABORT"), "the ranks agreed; none aborted:\n%s", out);
    free(out);
    /* --lr 1e30: rank 0 alone sees that the weights cannot be saved; every rank stops with it */
    char *b = test_tmpdir();
    st = test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                  " --batch 4 --steps 30 --lr 1e30 --warmup 0 --clip 0 --save-every 1 --log-every 1", text, b);
    cr_expect_eq(st, 3, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "rank 1: stopping: rank 0 could not write the checkpoint of step 1"), "%s", out);
    cr_expect(!strstr(out, "MPI_ABORT"), "the ranks agreed; none aborted:\n%s", out);
    free(out);
}

/* --device emu: the CUDA path emulated, its gradients through dist_nccl.c's
   bootstrap and all-reduce over the NCCL mock */
Test(dist, nccl_path_through_the_mock_matches_cpu_ranks, .timeout = 300)
{
    need_mpirun();
    char *text = write_text(), *c = test_tmpdir(), *e = test_tmpdir(), *out = NULL;
    const char *flags = "--set n_layer=1 --set n_head=2 --set n_embd=16 --set block_size=16 --batch 2 --steps 3 "
                        "--warmup 1 --lr 1e-3 --eval-every 0 --threads 1 --log-every 1 --check-every 1";
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s", text, c,
                          flags), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, MPIRUN " $KANRUN train models/kansformers.kdl --data %s --out %s %s --device emu",
                          text, e, flags), 0, "%s", out);
    cr_expect(strstr(out, "gradients averaged by NCCL (mock"), "%s", out);
    free(out);
    char lc[8][64], le[8][64];
    double vc[8], ve[8];
    cr_assert_eq(run_read_losses(c, lc, vc, 8), 3);
    cr_assert_eq(run_read_losses(e, le, ve, 8), 3);
    for (int i = 0; i < 3; i++)
        cr_expect(fabs(vc[i] - ve[i]) <= 1e-5 * fabs(vc[i]), "step %d: cpu %s, emu %s", i + 1, lc[i], le[i]);
}

/* kanrun is not linked with MPI, and runs without it as before */
Test(dist, kanrun_needs_no_mpi_without_mpirun, .timeout = 60)
{
    char *out = NULL;
    cr_expect_eq(test_run(&out, "ldd $KANRUN | grep -c -i mpi"), 1, "kanrun links MPI:\n%s", out);
    free(out);
    char *text = write_text(), *a = test_tmpdir();
    cr_assert_eq(test_run(&out, "KANC_MPI_LIB=/nonexistent $KANRUN train models/kansformers.kdl --data %s --out %s "
                          TINY " --batch 4 --steps 2 --zero 1", text, a), 0, "%s", out);
    cr_expect(!strstr(out, "data parallel"), "%s", out);
    cr_expect(strstr(out, "--zero and --check-every act only under mpirun"), "%s", out);
    free(out);
}
