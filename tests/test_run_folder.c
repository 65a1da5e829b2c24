/* test_run_folder.c: a run folder is created, claimed and kept: nothing lost, nothing crashes.
 *
 * kanrun train's --out (parents created, an existing run refused unless
 * --resume or --force, one writer at a time, metrics write errors, stale
 * temporary files) and kanrun eval's use of a run (its token cache left alone,
 * RUN or RUN/model.safetensors, the recorded data, absolute data paths).
 * Runs the built binary on the tiny settings of test_train.c.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "test_util.h"
#include "util.h"

#define TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4"
#define QUICK TINY " --warmup 1 --eval-every 0 --quiet --threads 2"

/* a small text (the corpus's first 200 KB) in dir/text.txt; returns its path */
static char *small_text(const char *dir)
{
    const char *corpus = test_corpus();
    char *path = xasprintf("%s/text.txt", dir);
    char *cmd = xasprintf("head -c 200000 '%s' > '%s'", corpus, path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    free(cmd);
    return path;
}

/* trains models/kansformers.kdl for steps steps into run; fails the test otherwise */
static void train(const char *data, const char *run, int steps)
{
    char *out = NULL;
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps %d " QUICK,
                      data, run, steps);
    cr_assert_eq(st, 0, "training into %s exited %d:\n%s", run, st, out);
    free(out);
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char *path = xasprintf("%s/%s", dir, name);
    char *text = read_file(path, len);
    cr_assert(text, "cannot read %s", path);
    free(path);
    return text;
}

static int exists(const char *dir, const char *name)
{
    char *path = xasprintf("%s/%s", dir, name);
    struct stat st;
    int ok = lstat(path, &st) == 0;
    free(path);
    return ok;
}

/* the same bytes as before */
static void expect_unchanged(const char *dir, const char *name, const char *before, size_t len)
{
    size_t n;
    char *now = slurp(dir, name, &n);
    cr_expect(n == len && !memcmp(now, before, len), "%s/%s changed", dir, name);
    free(now);
}

Test(run_folder, out_creates_missing_parents, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir);
    char *run = xasprintf("%s/a/b/c", dir);
    train(data, run, 1);
    cr_expect(exists(run, "model.safetensors") && exists(run, "metrics.jsonl"), "a run in %s", run);
    /* the checkpoint writer makes its own parents too */
    Model m;
    CkptInfo info;
    char err[512];
    cr_assert_eq(ckpt_info(run, &info, err, sizeof err), 0, "%s", err);
    ConfigSets cs;
    ckpt_sets(&info, &cs);
    cr_assert_eq(model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4, "cpu",
                               stderr), 0);
    char *deep = xasprintf("%s/x/y/z", dir);
    cr_expect_eq(ckpt_save(deep, &m, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect(exists(deep, "model.safetensors"));
    model_free(&m);
    config_sets_free(&cs);
    ckpt_info_free(&info);
}

Test(run_folder, an_existing_run_is_refused_and_left_untouched, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    train(data, run, 2);
    size_t nm, nw;
    char *metrics = slurp(run, "metrics.jsonl", &nm), *model = slurp(run, "model.safetensors", &nw);
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps 3 " QUICK, data,
                      run);
    cr_expect(st != 0 && st < 128, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "already holds a run at step 2") && strstr(out, "--resume") &&
                  strstr(out, "--force"),
              "%s", out);
    free(out);
    expect_unchanged(run, "metrics.jsonl", metrics, nm);
    expect_unchanged(run, "model.safetensors", model, nw);
    /* a folder without a run is fine to use */
    char *empty = xasprintf("%s/empty", dir);
    mkdir(empty, 0777);
    train(data, empty, 1);
}

Test(run_folder, force_moves_the_old_run_aside, .timeout = 200)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    train(data, run, 2);
    size_t nm, nw;
    char *metrics = slurp(run, "metrics.jsonl", &nm), *model = slurp(run, "model.safetensors", &nw);
    for (int k = 0; k < 2; k++) { /* twice: the second lands beside the first, maybe in the same second */
        int st = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps 1 --force " QUICK,
                          data, run);
        cr_assert_eq(st, 0, "exit status %d:\n%s", st, out);
        cr_expect(strstr(out, ".old-") != NULL, "says where the old run went:\n%s", out);
        free(out);
    }
    char *pat = xasprintf("%s.old-*", run);
    glob_t g;
    cr_assert_eq(glob(pat, 0, NULL, &g), 0, "no %s", pat);
    cr_assert_eq(g.gl_pathc, 2, "two runs moved aside");
    /* the first one moved aside is the 2-step run, whole */
    int found = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        CkptInfo info;
        char err[512];
        cr_assert_eq(ckpt_info(g.gl_pathv[i], &info, err, sizeof err), 0, "%s", err);
        if (info.step == 2) {
            found = 1;
            expect_unchanged(g.gl_pathv[i], "metrics.jsonl", metrics, nm);
            expect_unchanged(g.gl_pathv[i], "model.safetensors", model, nw);
            cr_expect(exists(g.gl_pathv[i], "optimizer-2.safetensors"));
            cr_expect(exists(g.gl_pathv[i], "tokens/tokens.json"));
        }
        ckpt_info_free(&info);
    }
    cr_expect(found, "the step-2 run is among the moved ones");
    globfree(&g);
    CkptInfo info;
    char err[512];
    cr_assert_eq(ckpt_info(run, &info, err, sizeof err), 0, "%s", err);
    cr_expect_eq(info.step, 1, "a fresh run in %s", run);
    ckpt_info_free(&info);
}

Test(run_folder, a_second_writer_is_refused_naming_the_pid, .timeout = 200)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    /* exec: the shell's pid is kanrun's */
    char *cmd = xasprintf("cd '%s' && exec %s train models/kansformers.kdl --data %s --out %s "
                          "--steps 1000000 --save-every 1 --log-every 1 " TINY " --warmup 1 --eval-every 0 "
                          "--threads 1",
                          test_root(), test_bin("kanrun"), data, run);
    FILE *f;
    pid_t pid = test_start_until(cmd, "step      2/", &f);
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "PID %d", (int)pid);
    char *second[] = {
        xasprintf("$KANRUN train models/kansformers.kdl --data %s --out %s --steps 3 " QUICK, data, run),
        xasprintf("$KANRUN train models/kansformers.kdl --data %s --out %s --steps 3 --force " QUICK, data, run),
        /* more steps than the running one has: only the lock can refuse it */
        xasprintf("$KANRUN train --resume %s --steps 2000000 --quiet", run),
    };
    for (int i = 0; i < 3; i++) {
        char *c = second[i];
        int st = test_run(&out, "%s", c);
        cr_expect(st != 0 && st < 128, "'%s' exited %d:\n%s", c, st, out);
        cr_expect(strstr(out, pidtext) != NULL, "'%s' should name %s:\n%s", c, pidtext, out);
        free(out);
        free(c);
    }
    char *pat = xasprintf("%s.old-*", run);
    glob_t g;
    cr_expect_eq(glob(pat, 0, NULL, &g), GLOB_NOMATCH, "--force moved a run in use aside");
    globfree(&g);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fclose(f);
    /* the killed writer's lock is gone with it */
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s --steps 3 --quiet", run), 0, "%s", out);
    free(out);
}

Test(run_folder, a_metrics_write_error_stops_the_run, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    char *cmd = xasprintf("mkdir -p %s && ln -s /dev/full %s/metrics.jsonl", run, run);
    cr_assert_eq(system(cmd), 0);
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps 3 " QUICK, data,
                      run);
    cr_expect_eq(st, 1, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "metrics.jsonl") && strstr(out, "No space left on device"), "%s", out);
    free(out);
}

/* a pid that was alive and is not any more */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

Test(run_folder, stale_temporary_files_are_removed_at_the_next_start, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    train(data, run, 1);
    int dead = (int)dead_pid(), live = (int)getpid();
    const char *names[] = {"model.safetensors", "optimizer-1.safetensors", "optimizer-7.safetensors",
                           "metrics.jsonl", "tokens/train.bin", "tokens/val.bin", "tokens/tokens.json"};
    int n = sizeof names / sizeof *names;
    for (int i = 0; i < n; i++) {
        char *c = xasprintf("echo junk > %s/%s.tmp.%d && echo junk > %s/%s.tmp.%d", run, names[i], dead, run,
                            names[i], live);
        cr_assert_eq(system(c), 0);
        free(c);
    }
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s --steps 2 --quiet", run), 0, "%s", out);
    free(out);
    for (int i = 0; i < n; i++) {
        char *stale = xasprintf("%s.tmp.%d", names[i], dead), *alive = xasprintf("%s.tmp.%d", names[i], live);
        cr_expect(!exists(run, stale), "%s/%s is left", run, stale);
        cr_expect(exists(run, alive), "%s/%s of a live process was removed", run, alive);
        free(stale);
        free(alive);
    }
}

Test(run_folder, eval_on_other_data_leaves_the_runs_token_cache, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    train(data, run, 1);
    const char *files[] = {"tokens/tokens.json", "tokens/train.bin", "tokens/val.bin"};
    char *before[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) before[i] = slurp(run, files[i], &len[i]);
    char *other = xasprintf("%s/other.txt", dir);
    char *cmd = xasprintf("tail -c 100000 '%s' > %s", test_corpus(), other);
    cr_assert_eq(system(cmd), 0);
    for (int k = 0; k < 2; k++) { /* the second time from its own cache */
        cr_assert_eq(test_run(&out, "$KANRUN eval %s --data %s --batches 2", run, other), 0, "%s", out);
        cr_expect(strstr(out, "perplexity") != NULL, "%s", out);
        free(out);
    }
    /* and the run's own data, and a --val of its own */
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --data %s --batches 2", run, data), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --data %s --val %s --batches 2", run, data, other), 0, "%s",
                 out);
    free(out);
    for (int i = 0; i < 3; i++) expect_unchanged(run, files[i], before[i], len[i]);
    /* the run still finds its cache */
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s --steps 2", run), 0, "%s", out);
    cr_expect(strstr(out, "reused cache") != NULL, "%s", out);
    free(out);
}

/* "val loss ..." of kanrun eval's output */
static char *eval_line(const char *args)
{
    char *out = NULL;
    int st = test_run(&out, "$KANRUN eval %s --batches 2", args);
    cr_assert_eq(st, 0, "eval %s exited %d:\n%s", args, st, out);
    char *p = strstr(out, "val loss ");
    cr_assert(p, "%s", out);
    char *line = xstrdup(p);
    line[strcspn(line, "\n")] = 0;
    free(out);
    return line;
}

Test(run_folder, eval_takes_the_run_or_its_model_file, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir);
    train(data, run, 1);
    char *a = xasprintf("%s --data %s", run, data), *b = xasprintf("%s/model.safetensors --data %s", run, data);
    char *la = eval_line(a), *lb = eval_line(b);
    cr_expect_str_eq(la, lb, "the folder and its model file evaluate alike");
}

Test(run_folder, eval_without_data_uses_the_runs_data, .timeout = 120)
{
    char *dir = test_tmpdir(), *data = small_text(dir), *run = xasprintf("%s/run", dir), *out = NULL;
    train(data, run, 1);
    char *with = xasprintf("%s --data %s", run, data);
    char *la = eval_line(with), *lb = eval_line(run);
    cr_expect_str_eq(la, lb, "eval RUN evaluates on the run's data");
    char *file = xasprintf("%s/model.safetensors", run);
    char *lc = eval_line(file);
    cr_expect_str_eq(la, lc);
    /* a checkpoint file outside any run records no data: a clear error */
    char *cmd = xasprintf("cp %s/model.safetensors %s/lone.safetensors", run, dir);
    cr_assert_eq(system(cmd), 0);
    int st = test_run(&out, "$KANRUN eval %s/lone.safetensors", dir);
    cr_expect(st != 0 && st < 128, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "--data") != NULL, "%s", out);
    free(out);
}

Test(run_folder, a_run_with_relative_data_resumes_from_another_folder, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL;
    char *data = small_text(dir);
    (void)data;
    char root[PATH_MAX];
    cr_assert(realpath(test_root(), root), "realpath %s", test_root());
    cr_assert_eq(test_run(&out, "cd %s && $KANRUN train %s/models/kansformers.kdl --data text.txt "
                                "--val ./text.txt --out run --steps 1 " QUICK,
                          dir, root),
                 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "cd / && $KANRUN train --resume %s/run --steps 2 --quiet", dir), 0,
                 "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "cd / && $KANRUN eval %s/run --batches 2", dir), 0, "%s", out);
    cr_expect(strstr(out, "perplexity") != NULL, "%s", out);
    free(out);
}
