/* util.h: memory helpers that never return NULL, fatal errors, whole-file reads, folders, strict integers. */
#ifndef KANC_UTIL_H
#define KANC_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* printf-style into a fresh string */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "error: <message>" on stderr and exit(1): for states a user cannot cause */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* printf-style message into err (errlen bytes; nothing when err is NULL) */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Every reader opens files through these: what is not a regular file (a FIFO,
   /dev/zero, a directory, a socket) is refused at once rather than blocked on
   or read without end. open_regular: a read-only descriptor, or -1 with errno
   set (EISDIR for a directory, EINVAL for the other kinds) and why (NULL
   allowed) = strerror or "not a regular file (a FIFO)"; callers prefix PATH. */
int open_regular(const char *path, char *why, size_t whylen);
/* The whole regular file, NUL-terminated (len excludes the NUL). NULL with
   errno and why set as open_regular does (or the read error). */
char *read_file_why(const char *path, size_t *len, char *why, size_t whylen);
char *read_file(const char *path, size_t *len); /* read_file_why without why */
/* "a FIFO", "a directory", ... for a st_mode */
const char *file_kind(unsigned mode);

/* The largest integer a flag or a saved setting may hold. */
#define KANC_INT_MAX ((int64_t)1 << 62)
/* text as a plain decimal integer in [lo, hi] (no blanks, no '+', no trailing
   characters, no overflow); what names it in the message. 0, or -1 with err. */
int parse_int_strict(const char *what, const char *text, int64_t lo, int64_t hi, int64_t *out, char *err,
                     size_t errlen);
/* mkdir -p: dir and every missing parent. Returns 0, or -1 with "cannot
   create PARENT: strerror" or "PARENT is not a folder" in err. */
int make_dirs(const char *dir, char *err, size_t errlen);

#endif
