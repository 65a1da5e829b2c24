/* corpus.c: sources -> tokens (cached as shards) -> batches. See corpus.h. */
#include "corpus.h"

#include "atomic_file.h"

#include "rng.h"
#include "shards.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- sources */

typedef struct {
    char *path; /* absolute */
    char *rel;  /* sort key: path relative to the walked directory */
    int64_t size, mtime_ns;
} Src;

typedef struct {
    Src *v;
    size_t n, cap;
} SrcList;

static void srcs_free(SrcList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].rel);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void srcs_add(SrcList *l, char *path, char *rel, const struct stat *st)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (Src){path, rel, (int64_t)st->st_size,
                         (int64_t)st->st_mtim.tv_sec * 1000000000 + (int64_t)st->st_mtim.tv_nsec};
}

static int src_cmp(const void *a, const void *b) { return strcmp(((const Src *)a)->rel, ((const Src *)b)->rel); }

/* binary = a NUL byte in the first 8 KiB */
static bool looks_binary(const char *path)
{
    int fd = open_regular(path, NULL, 0);
    if (fd < 0) return false; /* reading it later reports the error */
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 && memchr(buf, 0, (size_t)n) != NULL;
}

static int walk(const char *dir, const char *rel, const char *skip_dir, SrcList *out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_err(err, errlen, "%s: cannot read directory: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden */
        char *path = xasprintf("%s/%s", dir, e->d_name);
        char *r = *rel ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (!skip_dir || strcmp(path, skip_dir) != 0) rc = walk(path, r, skip_dir, out, err, errlen);
        } else if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) {
            /* dangling link: ignore */
        } else if (S_ISREG(st.st_mode) && !looks_binary(path)) {
            srcs_add(out, path, r, &st);
            continue; /* out owns path and r */
        }
        free(path);
        free(r);
    }
    closedir(d);
    return rc;
}

/* path (file or directory) -> sorted source list with stats */
static int collect(const char *path, const char *cache_real, const char *what, SrcList *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    char *real = realpath(path, NULL);
    if (!real) {
        set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) {
        srcs_add(out, real, xstrdup(""), &st);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s %s: not a regular file (%s) nor a directory", what, path, file_kind(st.st_mode));
        free(real);
        return -1;
    }
    int rc = walk(real, "", cache_real, out, err, errlen);
    free(real);
    if (rc != 0) {
        srcs_free(out);
        return -1;
    }
    if (out->n == 0) {
        set_err(err, errlen, "%s %s: directory has no text files (hidden and binary files are skipped)", what, path);
        return -1;
    }
    qsort(out->v, out->n, sizeof *out->v, src_cmp);
    return 0;
}

/* the sources' texts joined by "\n\n" */
static char *read_sources(const SrcList *l, size_t *len, char *err, size_t errlen)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (size_t i = 0; i < l->n; i++) {
        size_t fl;
        char why[256];
        char *t = read_file_why(l->v[i].path, &fl, why, sizeof why);
        if (!t) {
            set_err(err, errlen, "%s: cannot read: %s", l->v[i].path, why);
            free(buf);
            return NULL;
        }
        size_t need = n + fl + 2 + 1;
        if (need > cap) {
            cap = cap ? cap : 1 << 16;
            while (cap < need) cap *= 2;
            buf = xrealloc(buf, cap);
        }
        if (i > 0) {
            memcpy(buf + n, "\n\n", 2);
            n += 2;
        }
        memcpy(buf + n, t, fl);
        n += fl;
        free(t);
    }
    if (!buf) buf = xmalloc(1);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int tokenize_sources(const SrcList *l, Tokenizer *tok, int32_t **ids, size_t *n, char *err, size_t errlen)
{
    size_t len;
    char *text = read_sources(l, &len, err, errlen);
    if (!text) return -1;
    int rc = tok_encode(tok, text, len, ids, n);
    free(text);
    if (rc != 0) {
        set_err(err, errlen, "tokenizing %s%s: %s", l->v[0].path, l->n > 1 ? " and the rest" : "", tok_error(tok));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ cache */

static cJSON *sources_json(const SrcList *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; l && i < l->n; i++) {
        cJSON *o = cJSON_CreateObject();
        char num[32];
        cJSON_AddStringToObject(o, "path", l->v[i].path);
        snprintf(num, sizeof num, "%" PRId64, l->v[i].size);
        cJSON_AddStringToObject(o, "size", num);
        snprintf(num, sizeof num, "%" PRId64, l->v[i].mtime_ns);
        cJSON_AddStringToObject(o, "mtime_ns", num);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* everything the cached tokens depend on */
static cJSON *cache_key(Tokenizer *tok, const SrcList *train, const SrcList *val)
{
    cJSON *k = cJSON_CreateObject();
    char hash[TOK_FINGERPRINT_HEX];
    cJSON_AddNumberToObject(k, "format", 1);
    cJSON_AddStringToObject(k, "tokenizer", tok_spec(tok));
    cJSON_AddNumberToObject(k, "vocab_size", tok_vocab_size(tok));
    tok_fingerprint_hex(tok, hash);
    cJSON_AddStringToObject(k, "tokenizer_hash", hash);
    cJSON_AddStringToObject(k, "join", "\n\n");
    cJSON_AddStringToObject(k, "split", val ? "val_path" : "last 10% of tokens");
    cJSON_AddItemToObject(k, "train_sources", sources_json(train));
    cJSON_AddItemToObject(k, "val_sources", sources_json(val));
    return k;
}

/* 1 = reused (out filled), 0 = no usable cache (why in note) */
static int try_cache(const char *cache_dir, const char *key_text, int vocab, Corpus *out, char *note, size_t notelen)
{
    char *side = xasprintf("%s/tokens.json", cache_dir);
    size_t len;
    char why[256];
    char *text = read_file_why(side, &len, why, sizeof why);
    if (!text) {
        if (errno == ENOENT) snprintf(note, notelen, "no cache yet");
        else snprintf(note, notelen, "cache sidecar %s: %s", side, why);
        free(side);
        return 0;
    }
    free(side);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    cJSON *key = root ? cJSON_GetObjectItemCaseSensitive(root, "key") : NULL;
    cJSON *nt = root ? cJSON_GetObjectItemCaseSensitive(root, "train_tokens") : NULL;
    cJSON *nv = root ? cJSON_GetObjectItemCaseSensitive(root, "val_tokens") : NULL;
    if (!key || !cJSON_IsNumber(nt) || !cJSON_IsNumber(nv)) {
        snprintf(note, notelen, "cache sidecar tokens.json unreadable");
        cJSON_Delete(root);
        return 0;
    }
    char *stored = cJSON_PrintUnformatted(key);
    bool same = stored && strcmp(stored, key_text) == 0;
    free(stored);
    double want_train = nt->valuedouble, want_val = nv->valuedouble;
    cJSON_Delete(root);
    if (!same) {
        snprintf(note, notelen, "sources or tokenizer changed since the cache was made");
        return 0;
    }
    char e[400];
    char *tp = xasprintf("%s/train.bin", cache_dir), *vp = xasprintf("%s/val.bin", cache_dir);
    int ok = 0;
    if (shard_read(tp, &out->train, &out->n_train, vocab, e, sizeof e) != 0 ||
        shard_read(vp, &out->val, &out->n_val, vocab, e, sizeof e) != 0) {
        snprintf(note, notelen, "cache shard corrupt (%s)", e);
    } else if ((double)out->n_train != want_train || (double)out->n_val != want_val) {
        snprintf(note, notelen, "cache shards hold %zu + %zu tokens, tokens.json says %.0f + %.0f", out->n_train,
                 out->n_val, want_train, want_val);
    } else {
        ok = 1;
    }
    if (!ok) {
        free(out->train);
        free(out->val);
        out->train = out->val = NULL;
        out->n_train = out->n_val = 0;
    }
    free(tp);
    free(vp);
    return ok;
}

static int write_cache(const char *cache_dir, const char *key_text, const Corpus *c, char *err, size_t errlen)
{
    char *side = xasprintf("%s/tokens.json", cache_dir);
    char *tp = xasprintf("%s/train.bin", cache_dir), *vp = xasprintf("%s/val.bin", cache_dir);
    int rc = -1;
    /* no sidecar while the shards change: a crash leaves no cache that matches */
    if (unlink(side) != 0 && errno != ENOENT) {
        set_err(err, errlen, "%s: cannot remove the old sidecar: %s", side, strerror(errno));
        goto out;
    }
    if (shard_write(tp, c->train, c->n_train, c->vocab_size, err, errlen) != 0 ||
        shard_write(vp, c->val, c->n_val, c->vocab_size, err, errlen) != 0)
        goto out;
    char *body = xasprintf("{\n  \"key\": %s,\n  \"train_tokens\": %zu,\n  \"val_tokens\": %zu\n}\n", key_text,
                           c->n_train, c->n_val);
    rc = atomic_write_file(side, body, strlen(body), err, errlen);
    free(body);
out:
    free(side);
    free(tp);
    free(vp);
    return rc;
}

/* ----------------------------------------------------------------- prepare */

/* leftovers of a killed writer ("<file>.tmp.<pid>", see atomic_file.h) */
static void remove_stale(const char *cache_dir)
{
    const char *names[] = {"train.bin", "val.bin", "tokens.json"};
    for (int i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", cache_dir, names[i]);
        atomic_remove_stale(p);
        free(p);
    }
}

static int prepare(const char *data_path, const char *val_path, Tokenizer *tok, const char *cache_dir,
                   int readonly, Corpus *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = 0;
    SrcList train = {0}, val = {0};
    char *cache_real = NULL, *key_text = NULL;
    int rc = -1;
    if (!data_path || !*data_path) {
        set_err(err, errlen, "no corpus path given");
        return -1;
    }
    if (cache_dir && readonly) {
        cache_real = realpath(cache_dir, NULL); /* none yet: no cache */
    } else if (cache_dir) {
        char e[400];
        if (make_dirs(cache_dir, e, sizeof e) != 0) {
            set_err(err, errlen, "cache directory %s: %s", cache_dir, e);
            return -1;
        }
        cache_real = realpath(cache_dir, NULL);
        if (cache_real) remove_stale(cache_real);
    }
    if (collect(data_path, cache_real, "corpus", &train, err, errlen) != 0) goto out;
    if (val_path && collect(val_path, cache_real, "validation corpus", &val, err, errlen) != 0) goto out;
    out->vocab_size = tok_vocab_size(tok);

    cJSON *key = cache_key(tok, &train, val_path ? &val : NULL);
    key_text = cJSON_PrintUnformatted(key);
    cJSON_Delete(key);

    char note[450] = "no cache directory";
    if (cache_real && try_cache(cache_real, key_text, out->vocab_size, out, note, sizeof note)) {
        out->reused_cache = 1;
        snprintf(out->cache_status, sizeof out->cache_status, "reused cache %s: %zu train + %zu val tokens",
                 cache_real, out->n_train, out->n_val);
        rc = 0;
        goto out;
    }

    int32_t *ids;
    size_t n;
    if (tokenize_sources(&train, tok, &ids, &n, err, errlen) != 0) goto out;
    if (n == 0) {
        set_err(err, errlen, "corpus %s is empty (0 tokens)", data_path);
        free(ids);
        goto out;
    }
    if (val_path) {
        out->train = ids;
        out->n_train = n;
        if (tokenize_sources(&val, tok, &out->val, &out->n_val, err, errlen) != 0) goto fail;
        if (out->n_val == 0) {
            set_err(err, errlen, "validation corpus %s is empty (0 tokens)", val_path);
            goto fail;
        }
    } else {
        size_t nv = n / 10;
        out->n_train = n - nv;
        out->n_val = nv;
        out->train = xmalloc((out->n_train ? out->n_train : 1) * sizeof(int32_t));
        out->val = xmalloc((nv ? nv : 1) * sizeof(int32_t));
        memcpy(out->train, ids, out->n_train * sizeof(int32_t));
        memcpy(out->val, ids + out->n_train, nv * sizeof(int32_t));
        free(ids);
    }
    if (cache_real && !readonly && write_cache(cache_real, key_text, out, err, errlen) != 0) goto fail;
    snprintf(out->cache_status, sizeof out->cache_status, "tokenized %zu train + %zu val tokens (%s%s)", out->n_train,
             out->n_val, note, cache_real && readonly ? "; the cache is only read here" : "");
    rc = 0;
    goto out;
fail:
    corpus_free(out);
out:
    srcs_free(&train);
    srcs_free(&val);
    free(cache_real);
    free(key_text);
    return rc;
}

int corpus_prepare(const char *data_path, const char *val_path, Tokenizer *tok, const char *cache_dir, Corpus *out,
                   char *err, size_t errlen)
{
    return prepare(data_path, val_path, tok, cache_dir, 0, out, err, errlen);
}

int corpus_prepare_readonly(const char *data_path, const char *val_path, Tokenizer *tok, const char *cache_dir,
                            Corpus *out, char *err, size_t errlen)
{
    return prepare(data_path, val_path, tok, cache_dir, 1, out, err, errlen);
}

void corpus_free(Corpus *c)
{
    if (!c) return;
    free(c->train);
    free(c->val);
    memset(c, 0, sizeof *c);
}

/* ----------------------------------------------------------------- batches */

int corpus_check_batch(const Corpus *c, int block_size, int batch, char *err, size_t errlen)
{
    if (block_size < 1 || batch < 1) {
        set_err(err, errlen, "bad batch shape: block_size %d, batch %d (both must be >= 1)", block_size, batch);
        return -1;
    }
    size_t need = (size_t)block_size + 1;
    const char *which = c->n_train < need ? "train" : c->n_val < need ? "validation" : NULL;
    if (which) {
        size_t have = c->n_train < need ? c->n_train : c->n_val;
        set_err(err, errlen, "corpus too short: %zu tokens, one batch needs block_size+1 = %zu (%s split)", have,
                need, which);
        return -1;
    }
    return 0;
}

static void fill(const int32_t *tokens, size_t n, int block, int64_t first_row, int batch, uint64_t seed,
                 uint64_t stream, int32_t *x, int32_t *y)
{
    if (block < 1 || n < (size_t)block + 1) die("corpus_batch: %zu tokens cannot fill a window of %d + 1", n, block);
    uint64_t starts = (uint64_t)(n - (size_t)block);
    for (int b = 0; b < batch; b++) {
        uint64_t r = kanc_rng_bits(seed, stream, (uint64_t)(first_row + b));
        size_t s = (size_t)(((unsigned __int128)r * starts) >> 64); /* uniform in [0, starts) */
        const int32_t *w = tokens + s;
        memcpy(x + (size_t)b * (size_t)block, w, (size_t)block * sizeof *x);
        memcpy(y + (size_t)b * (size_t)block, w + 1, (size_t)block * sizeof *y);
    }
}

void corpus_batch(const int32_t *tokens, size_t n, int block, int batch, uint64_t seed, uint64_t step, int32_t *x,
                  int32_t *y)
{
    fill(tokens, n, block, 0, batch, seed, step, x, y);
}

void corpus_batch_rows(const int32_t *tokens, size_t n, int block, int64_t first_row, int batch, uint64_t seed,
                       uint64_t step, int32_t *x, int32_t *y)
{
    fill(tokens, n, block, first_row, batch, seed, step, x, y);
}

void corpus_eval_batch(const int32_t *tokens, size_t n, int block, int batch, uint64_t seed, uint64_t j, int32_t *x,
                       int32_t *y)
{
    fill(tokens, n, block, 0, batch, seed, CORPUS_EVAL_STREAM + j, x, y);
}
