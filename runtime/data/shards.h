/* shards.h: token files in llm.c's format.
 *
 * A shard is a 256 x int32 little-endian header followed by the ids:
 *   header[0] = 20240520 (magic)
 *   header[1] = version: 1 = ids are uint16 LE, 2 = ids are uint32 LE
 *   header[2] = number of tokens (so at most INT32_MAX)
 *   header[3..255] = 0
 * The file is exactly 1024 + ntokens * (2 or 4) bytes.
 */
#ifndef KANC_SHARDS_H
#define KANC_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC 20240520
#define SHARD_HEADER_INTS 256
#define SHARD_HEADER_BYTES (SHARD_HEADER_INTS * 4)

/* Writes n ids (each must be in [0, vocab_size)) to path: version 1 when
 * vocab_size <= 65536, else version 2. Writes a temp file in the same
 * directory, fsyncs it and renames it over path, so readers never see a
 * partial shard. 0 on success, -1 with a message in err. */
int shard_write(const char *path, const int32_t *ids, size_t n, int vocab_size, char *err, size_t errlen);

/* Reads a shard: checks the magic, the version, that the file size is
 * exactly what the token count needs (a short file is reported with the
 * expected and actual byte counts), and, when vocab_size > 0, that every id
 * is below vocab_size (the first bad position is reported). On success 0,
 * *ids = a fresh xmalloc'd array (free() it; never NULL) of *n ids. On
 * failure -1, *ids = NULL, *n = 0, message in err. Never reads past the file. */
int shard_read(const char *path, int32_t **ids, size_t *n, int vocab_size, char *err, size_t errlen);

#endif
