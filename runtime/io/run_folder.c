/* run_folder.c: run folders: which one a path names, its lock, an existing run moved aside. */
#define _GNU_SOURCE
#include "run_folder.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "checkpoint.h"
#include "config.h"
#include "safetensors.h"
#include "util.h"

char *run_dir_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    if (S_ISDIR(st.st_mode)) return xstrdup(path);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (!S_ISREG(st.st_mode) || strcmp(base, "model.safetensors")) return NULL;
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xasprintf("%.*s", (int)(slash - path), path);
}

int run_same_path(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* the PID the holder wrote (it may not have written it yet: wait a little) */
static long holder_pid(int fd)
{
    for (int tries = 0; tries < 20; tries++) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            long pid = strtol(buf, NULL, 10);
            if (pid > 0) return pid;
        }
        usleep(10000);
    }
    return -1;
}

int run_lock(const char *dir, char *err, size_t errlen)
{
    char *path = xasprintf("%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open the run's lock file: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            long pid = holder_pid(fd);
            char who[48] = "PID unknown";
            if (pid > 0) snprintf(who, sizeof who, "PID %ld", pid);
            set_err(err, errlen,
                    "%s is in use by another kanrun train (%s, see %s): wait for it to end or stop it",
                    dir, who, path);
        } else {
            set_err(err, errlen, "%s: cannot lock: %s", path, strerror(e));
        }
        close(fd);
        free(path);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        free(path);
        return -1;
    }
    free(path);
    return fd;
}

int run_holds_run(const char *dir, int64_t *step, int64_t *metrics_step)
{
    *step = -1;
    *metrics_step = 0;
    char *model = xasprintf("%s/model.safetensors", dir), *mpath = xasprintf("%s/metrics.jsonl", dir);
    struct stat st;
    int has_model = lstat(model, &st) == 0;
    int has_metrics = stat(mpath, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    if (has_model) {
        CkptInfo info;
        char err[512];
        if (ckpt_info(dir, &info, err, sizeof err) == 0) {
            *step = info.step;
            ckpt_info_free(&info);
        }
    }
    char *text = has_metrics ? read_file(mpath, NULL) : NULL;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        double s = j ? config_number(j, "step", 0) : 0;
        if (s > (double)*metrics_step) *metrics_step = (int64_t)s;
        cJSON_Delete(j);
    }
    free(text);
    free(model);
    free(mpath);
    return has_model || has_metrics;
}

char *run_move_aside(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--; /* "runs/x/" -> "runs/x.old-..." */
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tm));
    for (int k = 1; k < 10000; k++) {
        char *to = k == 1 ? xasprintf("%.*s.old-%s", (int)n, dir, stamp)
                          : xasprintf("%.*s.old-%s-%d", (int)n, dir, stamp, k);
        struct stat st;
        if (lstat(to, &st) == 0) { /* taken: never replace another old run */
            free(to);
            continue;
        }
        if (rename(dir, to) == 0) return to;
        set_err(err, errlen, "%s: cannot move the old run aside to %s: %s", dir, to, strerror(errno));
        free(to);
        return NULL;
    }
    set_err(err, errlen, "%s: cannot move the old run aside: every %.*s.old-%s-N is taken", dir, (int)n, dir,
            stamp);
    return NULL;
}

/* "optimizer-<digits>.safetensors.tmp.<digits>": the length of the target's name, else 0 */
static size_t optimizer_tmp(const char *name)
{
    const char *p = name;
    if (strncmp(p, "optimizer-", 10)) return 0;
    p += 10;
    size_t d = strspn(p, "0123456789");
    if (!d || strncmp(p + d, ".safetensors.tmp.", 17)) return 0;
    return (size_t)(p + d + 12 - name);
}

void run_remove_stale(const char *dir)
{
    const char *names[] = {"model.safetensors", "metrics.jsonl"};
    for (int i = 0; i < 2; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        atomic_remove_stale(p);
        free(p);
    }
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = optimizer_tmp(e->d_name);
        if (!len) continue;
        char *p = xasprintf("%s/%.*s", dir, (int)len, e->d_name);
        atomic_remove_stale(p); /* only dead writers' files (it checks the pid) */
        free(p);
    }
    closedir(d);
}

int run_recorded_data(const char *dir, int64_t step, char **data, char **val, char *err,
                      size_t errlen)
{
    *data = *val = NULL;
    char *path = ckpt_optimizer_path(dir, step);
    StFile f;
    int rc = -1;
    if (st_open(&f, path, err, errlen)) goto out;
    const char *text = st_meta(&f, "kanc_train");
    cJSON *state = text ? cJSON_Parse(text) : NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(state, "data");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(state, "val");
    if (!cJSON_IsString(d) || !*d->valuestring) {
        set_err(err, errlen, "%s records no training data (kanc_train has no \"data\")", path);
    } else {
        *data = xstrdup(d->valuestring);
        if (cJSON_IsString(v)) *val = xstrdup(v->valuestring);
        rc = 0;
    }
    cJSON_Delete(state);
    st_close(&f);
out:
    free(path);
    return rc;
}
