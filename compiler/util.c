/* util.c: allocation that fails loudly, fatal errors, whole-file reads, folders. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void out_of_memory(size_t n)
{
    fprintf(stderr, "error: out of memory (asked for %zu bytes)\n", n);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *file_kind(unsigned mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "an unknown kind of file";
}

/* O_NONBLOCK: opening a FIFO must not wait for a writer; the descriptor's own
   fstat() then decides, so nothing can be swapped in between a check and the open */
int open_regular(const char *path, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        set_err(why, whylen, "%s", strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        set_err(why, whylen, "%s", strerror(e));
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        set_err(why, whylen, "not a regular file (%s)", file_kind(st.st_mode));
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

char *read_file_why(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open_regular(path, why, whylen);
    if (fd < 0) return NULL;
    struct stat st;
    size_t cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2); /* the file grew while read */
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            set_err(why, whylen, "%s", strerror(e));
            close(fd);
            free(buf);
            errno = e;
            return NULL;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

char *read_file(const char *path, size_t *len) { return read_file_why(path, len, NULL, 0); }

int make_dirs(const char *dir, char *err, size_t errlen)
{
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) { /* each prefix ending before a '/', then the whole */
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create %s: %s", p, strerror(errno));
            rc = -1;
        } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            set_err(err, errlen, "%s is not a folder", p);
            rc = -1;
        }
        *s = c;
        if (rc || !c) break;
    }
    free(p);
    return rc;
}

int parse_int_strict(const char *what, const char *text, int64_t lo, int64_t hi, int64_t *out,
                       char *err, size_t errlen)
{
    char *end;
    errno = 0;
    /* strtoll skips leading blanks and takes '+': neither is an integer here */
    int starts = text[0] == '-' ? text[1] >= '0' && text[1] <= '9' : text[0] >= '0' && text[0] <= '9';
    long long v = starts ? strtoll(text, &end, 10) : 0;
    if (!starts || errno == ERANGE || *end || v < lo || v > hi) {
        set_err(err, errlen, "%s needs an integer in [%lld, %lld], got '%s'%s", what, (long long)lo,
                (long long)hi, text, errno == ERANGE ? " (out of range)" : "");
        return -1;
    }
    *out = v;
    return 0;
}
