/* run_folder.h: a training run's folder: named, claimed by one writer, never overwritten unasked.
 *
 * A run folder (kanrun train --out) holds model.safetensors, the optimizer
 * file, metrics.jsonl and the token cache (checkpoint.h, corpus.h), plus
 * .lock: the writer holds flock(LOCK_EX) on it for its whole life and writes
 * its PID into it. The kernel drops the lock when the process dies, so a
 * .lock file left behind by a kill claims nothing.
 */
#ifndef KANC_RUN_FOLDER_H
#define KANC_RUN_FOLDER_H

#include <stddef.h>
#include <stdint.h>

/* The run folder that path names: path itself when it is a folder, its
   folder when it is a file called model.safetensors; NULL for any other file
   (a checkpoint outside a run) or a missing path. Caller frees. */
char *run_dir_of(const char *path);

/* 1 when a and b exist and are the same file or folder */
int run_same_path(const char *a, const char *b);

/* Claims dir (which must exist): the lock and our PID in dir/.lock. Returns
   the lock's descriptor (keep it open: closing releases the claim), or -1
   with a message; a folder another process holds is refused naming its PID. */
int run_lock(const char *dir, char *err, size_t errlen);

/* 1 when dir holds a run: a model.safetensors or a non-empty metrics.jsonl.
   *step: the checkpoint's step (-1: no readable checkpoint); *metrics_step:
   the last step metrics.jsonl records (0: none). */
int run_holds_run(const char *dir, int64_t *step, int64_t *metrics_step);

/* Renames dir to "<dir>.old-<YYYYmmdd-HHMMSS>" ("-2", "-3", ... added when
   that exists). Returns the new name (caller frees), or NULL with a message. */
char *run_move_aside(const char *dir, char *err, size_t errlen);

/* Removes the temporary files ("<file>.tmp.<pid>" of a dead pid, see
   atomic_file.h) that killed writers left beside dir's model.safetensors,
   optimizer-<step>.safetensors and metrics.jsonl. Call it with the lock held. */
void run_remove_stale(const char *dir);

/* The training data the run recorded (kanrun train's --data and --val, from
   the training state of dir/optimizer-<step>.safetensors): *data, and *val or
   NULL. Returns 0 (caller frees both), or -1 with a message. */
int run_recorded_data(const char *dir, int64_t step, char **data, char **val, char *err,
                      size_t errlen);

#endif
