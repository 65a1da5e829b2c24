/* atomic_file.c: write to "<path>.tmp.<pid>", fsync, rename over path, fsync dir. */
#define _POSIX_C_SOURCE 200809L
#include "atomic_file.h"

#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static void put_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* Record the first failure on af (later ones are consequences of it). */
static void record(AtomicFile *af, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void record(AtomicFile *af, int errnum, const char *fmt, ...)
{
    if (af->failed) return;
    af->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(af->first_err, sizeof af->first_err, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof af->first_err && errnum)
        snprintf(af->first_err + n, sizeof af->first_err - (size_t)n, ": %s", strerror(errnum));
}

static void release(AtomicFile *af)
{
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->fp = NULL;
}

int atomic_open(AtomicFile *af, const char *path, char *err, size_t errlen)
{
    memset(af, 0, sizeof *af);
    if (!path || !*path) {
        put_err(err, errlen, "atomic write: empty path");
        return -1;
    }
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot create temporary file '%s': %s", path, tmp, strerror(e));
        free(tmp);
        return -1;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        if (err && errlen) snprintf(err, errlen, "%s: fdopen of '%s' failed: %s", path, tmp, strerror(e));
        free(tmp);
        return -1;
    }
    af->path = xstrdup(path);
    af->tmp_path = tmp;
    af->fp = fp;
    return 0;
}

int atomic_write(AtomicFile *af, const void *buf, size_t n)
{
    if (af->failed) return -1;
    if (!af->fp) {
        record(af, 0, "atomic write: file is not open");
        return -1;
    }
    if (n == 0) return 0;
    errno = 0;
    size_t got = fwrite(buf, 1, n, af->fp);
    if (got != n) {
        int e = errno ? errno : EIO;
        record(af, e, "%s: writing '%s' failed after %zu of %zu bytes", af->path, af->tmp_path, got, n);
        return -1;
    }
    return 0;
}

int atomic_printf(AtomicFile *af, const char *fmt, ...)
{
    if (af->failed) return -1;
    if (!af->fp) {
        record(af, 0, "atomic write: file is not open");
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int r = vfprintf(af->fp, fmt, ap);
    va_end(ap);
    if (r < 0) {
        int e = errno ? errno : EIO;
        record(af, e, "%s: writing '%s' failed", af->path, af->tmp_path);
        return -1;
    }
    return 0;
}

const char *atomic_error(const AtomicFile *af)
{
    return af->failed ? af->first_err : "";
}

void atomic_abort(AtomicFile *af)
{
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp_path) unlink(af->tmp_path);
    release(af);
}

/* The directory holding path ("." when path has no slash). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    size_t n = (size_t)(slash - path);
    char *d = xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

int atomic_commit(AtomicFile *af, char *err, size_t errlen)
{
    if (!af->fp && !af->failed) record(af, 0, "atomic write: file is not open");
    if (!af->failed) {
        if (ferror(af->fp)) record(af, EIO, "%s: writing '%s' failed", af->path, af->tmp_path);
        else if (fflush(af->fp) != 0) record(af, errno, "%s: writing '%s' failed", af->path, af->tmp_path);
        else if (fsync(fileno(af->fp)) != 0) record(af, errno, "%s: fsync of '%s' failed", af->path, af->tmp_path);
    }
    if (af->fp) {
        FILE *fp = af->fp;
        af->fp = NULL;
        if (fclose(fp) != 0) record(af, errno, "%s: closing '%s' failed", af->path, af->tmp_path);
    }
    if (!af->failed && rename(af->tmp_path, af->path) != 0)
        record(af, errno, "%s: cannot rename '%s' over it", af->path, af->tmp_path);
    if (af->failed) {
        put_err(err, errlen, af->first_err);
        atomic_abort(af);
        return -1;
    }
    /* The rename is done; make it durable. File systems that cannot fsync a
     * directory say EINVAL (or ENOTSUP): nothing more can be done there. */
    char *dir = dir_of(af->path);
    int rc = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: written, but syncing directory '%s' failed: %s", af->path, dir, strerror(e));
        rc = -1;
    }
    if (dfd >= 0) close(dfd);
    free(dir);
    release(af);
    return rc;
}

int atomic_write_file(const char *path, const void *bytes, size_t len, char *err, size_t errlen)
{
    AtomicFile af;
    if (atomic_open(&af, path, err, errlen)) return -1;
    atomic_write(&af, bytes, len);
    return atomic_commit(&af, err, errlen);
}

int atomic_remove_stale(const char *path)
{
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *prefix = xasprintf("%s.tmp.", base);
    size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        free(prefix);
        return -1;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, plen) != 0) continue;
        const char *digits = de->d_name + plen;
        if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9) continue;
        long pid = strtol(digits, NULL, 10);
        if (pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        char *full = xasprintf("%s/%s", dir, de->d_name);
        if (unlink(full) == 0) removed++;
        free(full);
    }
    closedir(d);
    free(dir);
    free(prefix);
    return removed;
}
