/* shards.c: llm.c-format token files (see shards.h). */
#include "shards.h"

#include "atomic_file.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int shard_write(const char *path, const int32_t *ids, size_t n, int vocab_size, char *err, size_t errlen)
{
    if (vocab_size <= 0) {
        set_err(err, errlen, "%s: bad vocab size %d", path, vocab_size);
        return -1;
    }
    if (n > INT32_MAX) {
        set_err(err, errlen, "%s: %zu tokens do not fit one shard (at most %d)", path, n, INT32_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size) {
            set_err(err, errlen, "%s: token %zu has id %d, outside [0, %d)", path, i, ids[i], vocab_size);
            return -1;
        }
    int version = vocab_size <= 65536 ? 1 : 2;
    size_t width = version == 1 ? 2 : 4;

    AtomicFile af;
    if (atomic_open(&af, path, err, errlen)) return -1;
    unsigned char header[SHARD_HEADER_BYTES] = {0};
    put_le32(header, SHARD_MAGIC);
    put_le32(header + 4, (uint32_t)version);
    put_le32(header + 8, (uint32_t)n);
    atomic_write(&af, header, sizeof header);
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = xmalloc(CHUNK * 4);
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        for (size_t k = 0; k < m; k++) {
            uint32_t v = (uint32_t)ids[i + k];
            if (width == 2) {
                buf[2 * k] = (unsigned char)v;
                buf[2 * k + 1] = (unsigned char)(v >> 8);
            } else {
                put_le32(buf + 4 * k, v);
            }
        }
        if (atomic_write(&af, buf, m * width)) break; /* the error is sticky: commit reports it */
    }
    free(buf);
    return atomic_commit(&af, err, errlen);
}

static int read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO; /* shrank under us */
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int shard_read(const char *path, int32_t **ids, size_t *n, int vocab_size, char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    char why[256];
    int fd = open_regular(path, why, sizeof why);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, why);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    unsigned char header[SHARD_HEADER_BYTES];
    if (size < sizeof header) {
        set_err(err, errlen, "%s: truncated shard: %zu bytes, the header alone needs %d", path, size,
                SHARD_HEADER_BYTES);
        close(fd);
        return -1;
    }
    if (read_all(fd, header, sizeof header) != 0) {
        set_err(err, errlen, "%s: cannot read the header: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    uint32_t magic = get_le32(header), version = get_le32(header + 4), count = get_le32(header + 8);
    if (magic != SHARD_MAGIC) {
        set_err(err, errlen, "%s: bad magic %u (a token shard starts with %d): not a token shard", path, magic,
                SHARD_MAGIC);
        close(fd);
        return -1;
    }
    if (version != 1 && version != 2) {
        set_err(err, errlen, "%s: unsupported shard version %u (know 1 = uint16 ids, 2 = uint32 ids)", path,
                version);
        close(fd);
        return -1;
    }
    if (count > INT32_MAX) {
        set_err(err, errlen, "%s: bad token count %d in the header", path, (int32_t)count);
        close(fd);
        return -1;
    }
    size_t width = version == 1 ? 2 : 4;
    size_t expect = sizeof header + (size_t)count * width;
    if (size != expect) {
        set_err(err, errlen, "%s: %s shard: expected %zu bytes (header + %u tokens x %zu), file has %zu", path,
                size < expect ? "truncated" : "oversized", expect, count, width, size);
        close(fd);
        return -1;
    }
    unsigned char *raw = xmalloc((size_t)count * width);
    if (read_all(fd, raw, (size_t)count * width) != 0) {
        set_err(err, errlen, "%s: cannot read the tokens: %s", path, strerror(errno));
        free(raw);
        close(fd);
        return -1;
    }
    close(fd);
    int32_t *out = xmalloc((size_t)count * sizeof *out);
    for (size_t i = 0; i < count; i++) {
        uint32_t v = width == 2 ? (uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8 : get_le32(raw + 4 * i);
        if (vocab_size > 0 && v >= (uint32_t)vocab_size) {
            set_err(err, errlen, "%s: token %zu has id %u, not below the vocab size %d", path, i, v, vocab_size);
            free(raw);
            free(out);
            return -1;
        }
        out[i] = (int32_t)v;
    }
    free(raw);
    *ids = out;
    *n = count;
    return 0;
}
