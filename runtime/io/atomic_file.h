/* atomic_file.h: replace a file atomically, so a crash, a full disk or an
 * error half-way through never leaves a truncated or mixed file behind.
 *
 * The bytes go to a temporary file in the target's directory, named
 * "<path>.tmp.<pid>". Commit flushes it, fsyncs it, renames it over the target
 * (atomic on POSIX file systems) and fsyncs the directory, so that after
 * commit returns 0 the new contents survive a power loss; readers see either
 * the old file or the new one, never a mixture. Abort, or any failure, removes
 * the temporary file and leaves the target as it was.
 *
 *     AtomicFile af;
 *     char err[512];
 *     if (atomic_open(&af, "run/metrics.jsonl", err, sizeof err)) die("%s", err);
 *     atomic_write(&af, header, header_len);
 *     atomic_printf(&af, "%d %.17g\n", step, loss);
 *     if (atomic_commit(&af, err, sizeof err)) die("%s", err);
 *
 * Write errors (short writes, ENOSPC, EFBIG, EIO) are sticky: the first one is
 * recorded, later writes do nothing, and commit refuses to rename and reports
 * that first error. Callers may therefore check each write or only the commit.
 *
 * Error messages name the path(s) involved and end with strerror(errno).
 * The new file is created with mode 0666 & ~umask; an existing target's mode is
 * not copied. Only one AtomicFile per target path at a time within a process
 * (the temporary name depends only on the path and the pid).
 */
#ifndef KANC_ATOMIC_FILE_H
#define KANC_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct AtomicFile {
    char *path;          /* the target, owned */
    char *tmp_path;      /* "<path>.tmp.<pid>", owned */
    FILE *fp;            /* open temporary file; NULL when not open */
    int failed;          /* a write failed: commit will refuse */
    char first_err[512]; /* message of the first failure ("" if none) */
} AtomicFile;

/* Create "<path>.tmp.<pid>" (truncating a leftover of that name) and prepare
 * *af. Returns 0, or -1 with a message in err (af is then zeroed; calling
 * atomic_abort on it is harmless). */
int atomic_open(AtomicFile *af, const char *path, char *err, size_t errlen);

/* Append n bytes. Returns 0, or -1 once any write has failed (the message is
 * in atomic_error(af) and will be repeated by atomic_commit). */
int atomic_write(AtomicFile *af, const void *buf, size_t n);

/* printf-style append; same error behaviour as atomic_write. */
int atomic_printf(AtomicFile *af, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The first error recorded on af, or "" if none. */
const char *atomic_error(const AtomicFile *af);

/* fflush + fsync the temporary, close it, rename it over the target, fsync
 * the directory. Returns 0 on success. On failure returns -1 with a message in
 * err; the temporary file is removed and, unless the failure came after the
 * rename (only the directory fsync can), the target is unchanged. Either way
 * af is released: do not use it again except for atomic_abort (a no-op). */
int atomic_commit(AtomicFile *af, char *err, size_t errlen);

/* Close and unlink the temporary file, release af; the target is untouched.
 * Safe to call on a zeroed, failed, committed or already aborted AtomicFile. */
void atomic_abort(AtomicFile *af);

/* Convenience: atomically replace path with the len bytes at bytes.
 * Returns 0, or -1 with a message in err. */
int atomic_write_file(const char *path, const void *bytes, size_t len, char *err, size_t errlen);

/* Remove temporary files "<path>.tmp.<pid>" left behind by processes that
 * died before committing (pid no longer alive, and not this process).
 * Returns the number removed, or -1 if the directory could not be read.
 * Only call this when no other host writes the same directory (a pid from
 * another machine cannot be checked). */
int atomic_remove_stale(const char *path);

#endif
