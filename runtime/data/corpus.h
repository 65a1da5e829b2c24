/* corpus.h: a text corpus tokenized once into cached shards, and batches from it.
 *
 * Sources. data_path (and val_path) is a text file or a directory. A
 * directory is walked recursively; it contributes every regular file whose
 * name does not start with '.' (hidden files and directories are skipped, as
 * is the cache directory if it lies inside, and symlinked directories are not
 * followed), minus files that look binary (a NUL byte in their first 8 KiB).
 * Files are taken in bytewise (strcmp) order of their path relative to the
 * directory. Their texts are joined with "\n\n" between consecutive files
 * (nothing is added before the first or after the last) and tokenized as
 * one text.
 *
 * Split. Without val_path the last 10% of the tokens (floor(n / 10)) are the
 * validation split and the rest the training split. With val_path all of
 * data_path trains and all of val_path validates.
 *
 * Cache. With a cache_dir, the tokens go to cache_dir/train.bin and
 * cache_dir/val.bin (llm.c shards, see shards.h) and a sidecar
 * cache_dir/tokens.json records the tokenizer (spec, vocab size and a hash
 * of its files), the split rule and every source file (absolute path, size,
 * mtime in ns). A later call whose sidecar matches reads the shards instead
 * of tokenizing. A mismatch re-tokenizes. A shard that is corrupt while the
 * sidecar matches is also re-tokenized (never an error): out->cache_status
 * says what happened and why. cache_dir is created (with parents) if needed;
 * NULL means no cache. Temporary files a killed writer left in cache_dir
 * ("<file>.tmp.<pid>") are removed first.
 */
#ifndef KANC_CORPUS_H
#define KANC_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    int32_t *train, *val; /* xmalloc'd token arrays */
    size_t n_train, n_val;
    int vocab_size;
    int reused_cache;       /* 1 when the tokens came from the cache shards */
    char cache_status[512]; /* "reused cache ...", "tokenized (...)": for logs */
} Corpus;

/* 0 on success (out filled; release with corpus_free), -1 with a message in
 * err (out zeroed). Errors: a missing path, a directory with no text files,
 * an empty corpus or split (0 tokens), tokenizer failure, an unwritable
 * cache. */
int corpus_prepare(const char *data_path, const char *val_path_or_NULL, Tokenizer *tok, const char *cache_dir,
                   Corpus *out, char *err, size_t errlen);
/* The same, but the cache is only read: a matching cache is used, anything
 * else is tokenized without writing (or creating) cache_dir. For readers of
 * another process's cache (kanrun eval of a run's own data). */
int corpus_prepare_readonly(const char *data_path, const char *val_path_or_NULL, Tokenizer *tok,
                            const char *cache_dir, Corpus *out, char *err, size_t errlen);
void corpus_free(Corpus *c);

/* 0 if both splits hold at least block_size+1 tokens (one window), else -1
 * with "corpus too short: N tokens, one batch needs block_size+1 = M (...)"
 * in err. Also rejects block_size < 1 or batch < 1. */
int corpus_check_batch(const Corpus *c, int block_size, int batch, char *err, size_t errlen);

/* A training batch: row b (0 <= b < batch) is the window of block+1 tokens
 * starting at a position drawn uniformly from [0, n - block) by
 * kanc_rng_bits(seed, stream = step, index = b); x[b*block + t] = window[t],
 * y[b*block + t] = window[t + 1]. A pure function of (tokens, seed, step):
 * a resumed run draws the same batches. Needs n >= block + 1. */
void corpus_batch(const int32_t *tokens, size_t n, int block, int batch, uint64_t seed, uint64_t step, int32_t *x,
                  int32_t *y);

/* Rows first_row .. first_row + batch - 1 of the training batch of `step`
 * (corpus_batch draws row b from index b): rank r of a data-parallel job
 * with `batch` rows per rank reads rows r * batch .. of the global batch, so
 * the ranks' parts are disjoint and N ranks together read what one process
 * with batch N x batch reads. */
void corpus_batch_rows(const int32_t *tokens, size_t n, int block, int64_t first_row, int batch, uint64_t seed,
                       uint64_t step, int32_t *x, int32_t *y);

/* Evaluation batch number j: like corpus_batch but drawn from the stream
 * CORPUS_EVAL_STREAM + j, which no training step uses, so evaluating
 * batches 0..k-1 with the same seed always scores the same fixed windows. */
#define CORPUS_EVAL_STREAM 0xE7A1000000000000ULL
void corpus_eval_batch(const int32_t *tokens, size_t n, int block, int batch, uint64_t seed, uint64_t j, int32_t *x,
                       int32_t *y);

#endif
