/* test_data.c: tokenizers, token shards, corpus cache and batch sampling. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "corpus.h"
#include "rng.h"
#include "shards.h"
#include "tokenizer.h"
#include "util.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

TestSuite(data);

/* ------------------------------------------------------------- helpers */

static char *gpt2_dir(void) { return test_shared_path("data/gpt2"); }

static Tokenizer *open_gpt2(void)
{
    char *dir = gpt2_dir(), *spec = xasprintf("gpt2:%s", dir), err[512];
    Tokenizer *t = tok_open(spec, err, sizeof err);
    cr_assert(t, "tok_open(%s): %s (set SHARED to the shared/ folder)", spec, err);
    free(dir);
    free(spec);
    return t;
}

static char *make_tmpdir(void)
{
    char *d = xstrdup("/tmp/kanc_test_data_XXXXXX");
    cr_assert(mkdtemp(d), "mkdtemp");
    return d;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void rm_rf(char *d)
{
    nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static void write_text(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "fopen %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_str(const char *path, const char *s) { write_text(path, s, strlen(s)); }

static void set_mtime(const char *path, time_t sec)
{
    struct timeval tv[2] = {{sec, 0}, {sec, 0}};
    cr_assert_eq(utimes(path, tv), 0);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void assert_roundtrip(Tokenizer *t, const char *text, size_t len)
{
    int32_t *ids;
    size_t n, dl;
    cr_assert_eq(tok_encode(t, text, len, &ids, &n), 0, "encode: %s", tok_error(t));
    cr_assert(ids);
    for (size_t i = 0; i < n; i++) cr_assert(ids[i] >= 0 && ids[i] < tok_vocab_size(t));
    char *back = tok_decode(t, ids, n, &dl);
    cr_assert_eq(dl, len, "decoded %zu bytes, want %zu", dl, len);
    cr_assert(memcmp(back, text, len) == 0, "round trip differs");
    free(back);
    free(ids);
}

/* ------------------------------------------------------------ tokenizers */

static void check_vectors(int reference)
{
    char *dir = gpt2_dir(), *path = xasprintf("%s/encode_vectors.json", dir);
    size_t len;
    char *text = read_file(path, &len);
    cr_assert(text, "cannot read %s (set SHARED)", path);
    cJSON *root = cJSON_Parse(text);
    cr_assert(cJSON_IsArray(root), "%s: not a JSON array", path);
    Tokenizer *t = open_gpt2();
    tok_set_reference_bpe(t, reference);
    int cases = 0;
    for (cJSON *c = root->child; c; c = c->next, cases++) {
        const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        size_t n;
        cr_assert_eq(tok_encode(t, s, strlen(s), &ids, &n), 0, "case %d: %s", cases, tok_error(t));
        cr_assert_eq(n, (size_t)cJSON_GetArraySize(want), "case %d (\"%.40s\"): %zu ids, want %d", cases, s, n,
                     cJSON_GetArraySize(want));
        size_t i = 0;
        for (cJSON *w = want->child; w; w = w->next, i++)
            cr_assert_eq(ids[i], w->valueint, "case %d (\"%.40s\"): id %zu is %d, want %d", cases, s, i, ids[i],
                         w->valueint);
        size_t dl;
        char *back = tok_decode(t, ids, n, &dl);
        cr_assert_eq(dl, strlen(s), "case %d: decoded length", cases);
        cr_assert_str_eq(back, s, "case %d: decode", cases);
        free(back);
        free(ids);
    }
    cr_assert_geq(cases, 10, "only %d cases in %s", cases, path);
    tok_close(t);
    cJSON_Delete(root);
    free(text);
    free(path);
    free(dir);
}

Test(data, gpt2_encode_vectors) { check_vectors(0); }

Test(data, gpt2_encode_vectors_reference_bpe) { check_vectors(1); }

Test(data, gpt2_basics)
{
    Tokenizer *t = open_gpt2();
    cr_assert_eq(tok_vocab_size(t), 50257);
    cr_assert(strncmp(tok_spec(t), "gpt2:/", 6) == 0, "spec %s", tok_spec(t));
    cr_assert_str_eq(tok_kind(t), "gpt2");
    size_t l;
    const char *s = tok_decode_one(t, 50256, &l);
    cr_assert_eq(l, 13);
    cr_assert_str_eq(s, "<|endoftext|>");
    s = tok_decode_one(t, 15496, &l); /* "Hello" */
    cr_assert_str_eq(s, "Hello");
    /* unknown ids decode to U+FFFD */
    int32_t bad[] = {15496, -1, 50257, 1 << 30};
    char *d = tok_decode(t, bad, 4, &l);
    cr_assert_str_eq(d, "Hello\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    free(d);
    /* the spec reopens the same tokenizer */
    char err[256];
    Tokenizer *u = tok_open(tok_spec(t), err, sizeof err);
    cr_assert(u, "%s", err);
    cr_assert_str_eq(tok_spec(u), tok_spec(t));
    cr_assert_eq(tok_fingerprint(u), tok_fingerprint(t));
    tok_close(u);
    /* empty input */
    int32_t *ids;
    size_t n;
    cr_assert_eq(tok_encode(t, "", 0, &ids, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert(ids);
    free(ids);
    tok_close(t);
}

Test(data, gpt2_invalid_utf8)
{
    Tokenizer *t = open_gpt2();
#define C(s) {s, sizeof(s) - 1}
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {C("\xff"),          C("Hello\xffworld"), C(" \xff "),         C("\xe2\x80"),
                 C("caf\xc3"),       C("\xc3\xa9\xc3"),  C("a\x80\x80\x80 b"), C("\xf0\x9f\x8e"),
                 C("\xed\xa0\x80 surrogate"), C("\xc0\xaf over"), C("\xf8\x88\x80\x80\x80"),
                 C("nul\0inside")};
#undef C
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) assert_roundtrip(t, cases[i].s, cases[i].len);
    /* the valid text around an invalid byte tokenizes as on its own */
    int32_t *a, *b;
    size_t na, nb;
    cr_assert_eq(tok_encode(t, "Hello\xff world", 12, &a, &na), 0);
    cr_assert_eq(tok_encode(t, "Hello", 5, &b, &nb), 0);
    cr_assert_eq(nb, 1);
    cr_assert_eq(a[0], b[0]);
    cr_assert_eq(a[na - 1], 995, "\" world\" is 995");
    free(a);
    free(b);
    tok_close(t);
}

Test(data, gpt2_random_bytes_and_reference_bpe)
{
    Tokenizer *t = open_gpt2(), *r = open_gpt2();
    tok_set_reference_bpe(r, 1);
    uint64_t s = 42;
    static const char *alpha[] = {"a", "e", "t", " ", "  ", "\n", "'s", "'", "1", "9", "!", ".", "\xc3\xa9", "\xe6\x97\xa5",
                                  "\xf0\x9f\x8e\x89", "\xff", "\x80", "the", "ing", "\t", "\xe2\x80\x83", "Q"};
    for (int k = 0; k < 300; k++) {
        char buf[600];
        size_t len = 0, want = lcg(&s) % 150;
        while (len < want) {
            if (lcg(&s) % 4 == 0) {
                buf[len++] = (char)lcg(&s); /* any byte */
            } else {
                const char *p = alpha[lcg(&s) % (sizeof alpha / sizeof *alpha)];
                memcpy(buf + len, p, strlen(p));
                len += strlen(p);
            }
        }
        if (k % 10 == 0) { /* long runs: exercise the heap on long pieces */
            size_t rep = 200 + lcg(&s) % 200;
            memset(buf, "a 1!"[k / 10 % 4], rep);
            len = rep;
        }
        assert_roundtrip(t, buf, len);
        int32_t *x, *y;
        size_t nx, ny;
        cr_assert_eq(tok_encode(t, buf, len, &x, &nx), 0);
        cr_assert_eq(tok_encode(r, buf, len, &y, &ny), 0);
        cr_assert_eq(nx, ny, "case %d: heap and reference BPE disagree on the count", k);
        cr_assert(memcmp(x, y, nx * sizeof *x) == 0, "case %d: heap and reference BPE disagree", k);
        free(x);
        free(y);
    }
    tok_close(t);
    tok_close(r);
}

Test(data, bytes_tokenizer)
{
    char err[256];
    Tokenizer *t = tok_open("bytes", err, sizeof err);
    cr_assert(t, "%s", err);
    cr_assert_eq(tok_vocab_size(t), 256);
    cr_assert_str_eq(tok_spec(t), "bytes");
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    assert_roundtrip(t, all, 256);
    assert_roundtrip(t, "\xff\xfe invalid \xc3", 13);
    assert_roundtrip(t, "", 0);
    int32_t *ids;
    size_t n;
    cr_assert_eq(tok_encode(t, "A\xff", 2, &ids, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 65);
    cr_assert_eq(ids[1], 255);
    free(ids);
    size_t l;
    cr_assert(memcmp(tok_decode_one(t, 0, &l), "\0", 1) == 0 && l == 1);
    cr_assert_str_eq(tok_decode_one(t, 256, &l), "\xEF\xBF\xBD");
    tok_close(t);
}

Test(data, tok_open_errors)
{
    char err[512];
    cr_assert_null(tok_open("sentencepiece", err, sizeof err));
    cr_assert(strstr(err, "unknown tokenizer"), "%s", err);
    cr_assert_null(tok_open("gpt2:/nonexistent/dir", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/dir"), "%s", err);

    char *d = make_tmpdir(), *spec = xasprintf("gpt2:%s", d);
    char *enc = xasprintf("%s/encoder.json", d), *bpe = xasprintf("%s/vocab.bpe", d);
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "encoder.json"), "missing encoder: %s", err);

    /* corrupt (truncated) JSON */
    char *gd = gpt2_dir(), *genc = xasprintf("%s/encoder.json", gd), *gbpe = xasprintf("%s/vocab.bpe", gd);
    size_t len, blen;
    char *text = read_file(genc, &len), *btext = read_file(gbpe, &blen);
    cr_assert(text && btext);
    write_text(enc, text, len / 2);
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "encoder.json") && strstr(err, "JSON"), "truncated encoder: %s", err);

    /* good encoder, missing then bad merges */
    write_text(enc, text, len);
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "vocab.bpe"), "missing merges: %s", err);
    write_str(bpe, "#version: 0.2\nĠ t\nthis line has three\n");
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "vocab.bpe") && strstr(err, "line 3"), "bad merges: %s", err);
    write_str(bpe, "no header\n");
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "vocab.bpe") && strstr(err, "#version"), "%s", err);

    /* merges that make tokens the encoder lacks: mismatched files */
    write_str(enc, "{\"a\": 0, \"b\": 1}");
    write_text(bpe, btext, blen);
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "encoder.json"), "%s", err);

    /* non-integer id */
    write_str(enc, "{\"a\": \"zero\"}");
    cr_assert_null(tok_open(spec, err, sizeof err));
    cr_assert(strstr(err, "encoder.json") && strstr(err, "bad id"), "%s", err);

    /* the real files, copied, open fine */
    write_text(enc, text, len);
    Tokenizer *t = tok_open(spec, err, sizeof err);
    cr_assert(t, "%s", err);
    tok_close(t);
    free(text);
    free(btext);
    free(genc);
    free(gbpe);
    free(gd);
    free(enc);
    free(bpe);
    free(spec);
    rm_rf(d);
}

/* --------------------------------------------------------------- shards */

static void shard_roundtrip(int vocab, int want_version)
{
    char *d = make_tmpdir(), *p = xasprintf("%s/s.bin", d), err[512];
    size_t n = 10000;
    int32_t *ids = xmalloc(n * sizeof *ids);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(lcg(&s) % (uint64_t)vocab);
    ids[0] = vocab - 1;
    ids[1] = 0;
    cr_assert_eq(shard_write(p, ids, n, vocab, err, sizeof err), 0, "%s", err);
    size_t len;
    unsigned char *raw = (unsigned char *)read_file(p, &len);
    cr_assert_eq(len, 1024 + n * (want_version == 1 ? 2 : 4));
    cr_assert_eq(raw[0] | raw[1] << 8 | raw[2] << 16 | raw[3] << 24, 20240520);
    cr_assert_eq(raw[4], want_version);
    cr_assert_eq(raw[8] | raw[9] << 8 | raw[10] << 16, (int)n);
    free(raw);
    int32_t *back;
    size_t m;
    cr_assert_eq(shard_read(p, &back, &m, vocab, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m, n);
    cr_assert(memcmp(back, ids, n * sizeof *ids) == 0);
    free(back);
    /* empty shard */
    cr_assert_eq(shard_write(p, ids, 0, vocab, err, sizeof err), 0, "%s", err);
    cr_assert_eq(shard_read(p, &back, &m, vocab, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m, 0);
    free(back);
    free(ids);
    free(p);
    rm_rf(d);
}

Test(data, shard_roundtrip_uint16) { shard_roundtrip(50257, 1); }
Test(data, shard_roundtrip_uint32) { shard_roundtrip(100000, 2); }

static void patch32(const char *path, long off, uint32_t v)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    unsigned char b[4] = {v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24};
    fseek(f, off, SEEK_SET);
    fwrite(b, 1, 4, f);
    fclose(f);
}

static void expect_read_error(const char *path, int vocab, const char *needle, const char *needle2)
{
    char err[512] = "";
    int32_t *ids = (int32_t *)1;
    size_t n = 99;
    cr_assert_eq(shard_read(path, &ids, &n, vocab, err, sizeof err), -1, "read should fail (%s)", needle);
    cr_assert_null(ids);
    cr_assert_eq(n, 0);
    cr_assert(strstr(err, needle), "want \"%s\" in: %s", needle, err);
    if (needle2) cr_assert(strstr(err, needle2), "want \"%s\" in: %s", needle2, err);
}

Test(data, shard_errors)
{
    char *d = make_tmpdir(), *p = xasprintf("%s/s.bin", d), err[512];
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i * 9;
    /* writing out-of-range ids is refused */
    ids[50] = 1000;
    cr_assert_eq(shard_write(p, ids, 100, 1000, err, sizeof err), -1);
    cr_assert(strstr(err, "token 50"), "%s", err);
    ids[50] = -3;
    cr_assert_eq(shard_write(p, ids, 100, 1000, err, sizeof err), -1);
    ids[50] = 450;

#define FRESH() cr_assert_eq(shard_write(p, ids, 100, 1000, err, sizeof err), 0, "%s", err)
    FRESH();
    cr_assert_eq(truncate(p, 1024 + 150), 0);
    expect_read_error(p, 1000, "truncated", "expected 1224 bytes");
    FRESH();
    cr_assert_eq(truncate(p, 100), 0);
    expect_read_error(p, 1000, "truncated", "100 bytes");
    FRESH();
    patch32(p, 0, 12345);
    expect_read_error(p, 1000, "magic", NULL);
    FRESH();
    patch32(p, 4, 3);
    expect_read_error(p, 1000, "version 3", NULL);
    FRESH();
    patch32(p, 8, 101); /* token count larger than the file holds */
    expect_read_error(p, 1000, "truncated", "file has 1224");
    FRESH();
    patch32(p, 8, 0xFFFFFFF0u);
    expect_read_error(p, 1000, "token count", NULL);
    FRESH();
    patch32(p, 8, 99); /* smaller: extra bytes */
    expect_read_error(p, 1000, "expected 1222 bytes", NULL);
    FRESH();
    expect_read_error(p, 500, "token 56 has id 504", NULL); /* first id >= 500 is 56*9 */
    expect_read_error("/nonexistent/shard.bin", 1000, "/nonexistent/shard.bin", NULL);
    /* the same file reads fine with the right vocab, or with no check */
    int32_t *back;
    size_t n;
    cr_assert_eq(shard_read(p, &back, &n, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 100);
    free(back);
#undef FRESH
    free(p);
    rm_rf(d);
}

/* --------------------------------------------------------------- corpus */

static Tokenizer *bytes_tok(void)
{
    char err[64];
    return tok_open("bytes", err, sizeof err);
}

static void expect_tokens(const Corpus *c, const char *text)
{
    size_t len = strlen(text);
    cr_assert_eq(c->n_train + c->n_val, len, "%zu + %zu tokens, want %zu", c->n_train, c->n_val, len);
    for (size_t i = 0; i < len; i++) {
        int32_t v = i < c->n_train ? c->train[i] : c->val[i - c->n_train];
        cr_assert_eq(v, (unsigned char)text[i], "token %zu", i);
    }
}

Test(data, corpus_split_cache_and_rebuild)
{
    char *d = make_tmpdir(), *src = xasprintf("%s/src", d), *cache = xasprintf("%s/cache/deep", d), err[512];
    char *a = xasprintf("%s/a.txt", src), *b = xasprintf("%s/b.txt", src);
    mkdir(src, 0755);
    char ta[301], tb[498];
    for (int i = 0; i < 300; i++) ta[i] = (char)('a' + i % 26);
    for (int i = 0; i < 497; i++) tb[i] = (char)('A' + i % 26);
    ta[300] = tb[497] = 0;
    write_str(b, tb); /* written first: order must come from the names */
    write_str(a, ta);
    char *joined = xasprintf("%s\n\n%s", ta, tb); /* 300 + 2 + 497 = 799 tokens */
    Tokenizer *t = bytes_tok();

    Corpus c;
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    cr_assert_eq(c.n_val, 79); /* floor(799 / 10) */
    cr_assert_eq(c.n_train, 720);
    cr_assert_eq(c.vocab_size, 256);
    expect_tokens(&c, joined);
    cr_assert_eq(corpus_check_batch(&c, 64, 4, err, sizeof err), 0, "%s", err);
    corpus_free(&c);
    char *side = xasprintf("%s/tokens.json", cache), *tbin = xasprintf("%s/train.bin", cache);
    struct stat st;
    cr_assert_eq(stat(side, &st), 0, "no sidecar");
    cr_assert_eq(stat(tbin, &st), 0, "no train.bin");

    /* second time: from the cache */
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 1, "%s", c.cache_status);
    expect_tokens(&c, joined);
    corpus_free(&c);

    /* a changed source is re-tokenized */
    tb[0] = 'Z';
    write_str(b, tb);
    set_mtime(b, 1000000000); /* same size: only the mtime tells */
    free(joined);
    joined = xasprintf("%s\n\n%s", ta, tb);
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    cr_assert(strstr(c.cache_status, "changed"), "%s", c.cache_status);
    expect_tokens(&c, joined);
    corpus_free(&c);

    /* a new file is picked up */
    char *e = xasprintf("%s/sub/c.txt", src), *sub = xasprintf("%s/sub", src);
    mkdir(sub, 0755);
    write_str(e, "xyz");
    char *hidden = xasprintf("%s/.hidden", src), *binary = xasprintf("%s/zz.bin", src);
    write_str(hidden, "not me");         /* hidden: skipped */
    write_text(binary, "bin\0ary", 7); /* binary: skipped */
    free(hidden);
    free(binary);
    char *joined3 = xasprintf("%s\n\n%s\n\nxyz", ta, tb);
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    expect_tokens(&c, joined3);
    corpus_free(&c);

    /* a corrupt cache shard is re-tokenized (and the cache repaired) */
    cr_assert_eq(truncate(tbin, 2000), 0);
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    cr_assert(strstr(c.cache_status, "corrupt"), "%s", c.cache_status);
    expect_tokens(&c, joined3);
    corpus_free(&c);
    cr_assert_eq(corpus_prepare(src, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 1, "%s", c.cache_status);
    expect_tokens(&c, joined3);
    corpus_free(&c);

    /* another tokenizer does not reuse the bytes cache */
    Tokenizer *g = open_gpt2();
    cr_assert_eq(corpus_prepare(src, NULL, g, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    cr_assert_eq(c.vocab_size, 50257);
    size_t n_gpt2 = c.n_train + c.n_val;
    corpus_free(&c);
    cr_assert_eq(corpus_prepare(src, NULL, g, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 1);
    cr_assert_eq(c.n_train + c.n_val, n_gpt2);
    corpus_free(&c);
    tok_close(g);

    /* no cache dir: tokenizes every time */
    cr_assert_eq(corpus_prepare(a, NULL, t, NULL, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    expect_tokens(&c, ta);
    corpus_free(&c);

    tok_close(t);
    free(joined);
    free(joined3);
    free(side);
    free(tbin);
    free(a);
    free(b);
    free(e);
    free(sub);
    free(src);
    free(cache);
    rm_rf(d);
}

Test(data, corpus_val_path)
{
    char *d = make_tmpdir(), *tr = xasprintf("%s/train.txt", d), *va = xasprintf("%s/val.txt", d);
    char *cache = xasprintf("%s/cache", d), err[512];
    write_str(tr, "the training text");
    write_str(va, "held out");
    Tokenizer *t = bytes_tok();
    Corpus c;
    cr_assert_eq(corpus_prepare(tr, va, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.n_train, 17);
    cr_assert_eq(c.n_val, 8);
    cr_assert_eq(c.val[0], 'h');
    corpus_free(&c);
    cr_assert_eq(corpus_prepare(tr, va, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 1);
    corpus_free(&c);
    /* switching to the 90/10 split is a different cache */
    cr_assert_eq(corpus_prepare(tr, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.reused_cache, 0);
    cr_assert_eq(c.n_train, 16);
    cr_assert_eq(c.n_val, 1);
    corpus_free(&c);
    /* an empty validation file */
    write_str(va, "");
    cr_assert_eq(corpus_prepare(tr, va, t, cache, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "empty"), "%s", err);
    tok_close(t);
    free(tr);
    free(va);
    free(cache);
    rm_rf(d);
}

Test(data, corpus_errors)
{
    char *d = make_tmpdir(), *cache = xasprintf("%s/cache", d), err[512];
    Tokenizer *t = bytes_tok();
    Corpus c;
    cr_assert_eq(corpus_prepare("/nonexistent/corpus.txt", NULL, t, cache, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/corpus.txt") && strstr(err, "No such file"), "%s", err);

    char *empty = xasprintf("%s/empty.txt", d);
    write_str(empty, "");
    cr_assert_eq(corpus_prepare(empty, NULL, t, cache, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "empty (0 tokens)"), "%s", err);

    char *dir = xasprintf("%s/nothing", d), *hid = xasprintf("%s/nothing/.x", d), *bin = xasprintf("%s/nothing/b", d);
    mkdir(dir, 0755);
    cr_assert_eq(corpus_prepare(dir, NULL, t, cache, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "no text files"), "%s", err);
    write_str(hid, "hidden");
    write_text(bin, "\0\1\2", 3);
    cr_assert_eq(corpus_prepare(dir, NULL, t, cache, &c, err, sizeof err), -1);
    cr_assert(strstr(err, "no text files"), "%s", err);

    /* too short for a batch */
    char *tiny = xasprintf("%s/tiny.txt", d);
    write_str(tiny, "abcdefghijklmnopqrstuvwxyz0123"); /* 30 tokens: 27 train, 3 val */
    cr_assert_eq(corpus_prepare(tiny, NULL, t, cache, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(corpus_check_batch(&c, 2, 8, err, sizeof err), 0, "%s", err);
    cr_assert_eq(corpus_check_batch(&c, 8, 1, err, sizeof err), -1);
    cr_assert(strstr(err, "corpus too short: 3 tokens, one batch needs block_size+1 = 9"), "%s", err);
    cr_assert_eq(corpus_check_batch(&c, 64, 1, err, sizeof err), -1);
    cr_assert(strstr(err, "corpus too short: 27 tokens, one batch needs block_size+1 = 65"), "%s", err);
    cr_assert_eq(corpus_check_batch(&c, 0, 1, err, sizeof err), -1);
    corpus_free(&c);

    tok_close(t);
    free(cache);
    free(empty);
    free(dir);
    free(hid);
    free(bin);
    free(tiny);
    rm_rf(d);
}

Test(data, batch_sampling)
{
    enum { N = 5000, B = 8, T = 32 };
    int32_t *tok = xmalloc(N * sizeof *tok);
    for (int i = 0; i < N; i++) tok[i] = i; /* token = position: windows are easy to check */
    int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    for (uint64_t step = 0; step < 50; step++) {
        corpus_batch(tok, N, T, B, 1234, step, x, y);
        corpus_batch(tok, N, T, B, 1234, step, x2, y2);
        cr_assert(memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0, "step %lu not deterministic",
                  (unsigned long)step);
        for (int b = 0; b < B; b++) {
            int32_t s = x[b * T];
            cr_assert(s >= 0 && s + T < N, "window start %d out of range", s);
            /* the start is the counter-based draw for (seed, stream = step, index = b) */
            uint64_t r = kanc_rng_bits(1234, step, (uint64_t)b);
            cr_assert_eq((uint64_t)s, (uint64_t)(((unsigned __int128)r * (N - T)) >> 64));
            for (int t = 0; t < T; t++) {
                cr_assert_eq(x[b * T + t], s + t);
                cr_assert_eq(y[b * T + t], s + t + 1);
            }
        }
    }
    /* different steps and seeds give different batches */
    corpus_batch(tok, N, T, B, 1234, 0, x, y);
    corpus_batch(tok, N, T, B, 1234, 1, x2, y2);
    cr_assert(memcmp(x, x2, sizeof x) != 0);
    corpus_batch(tok, N, T, B, 99, 0, x2, y2);
    cr_assert(memcmp(x, x2, sizeof x) != 0);
    /* evaluation batches: fixed, and not the training ones */
    corpus_eval_batch(tok, N, T, B, 1234, 3, x, y);
    corpus_eval_batch(tok, N, T, B, 1234, 3, x2, y2);
    cr_assert(memcmp(x, x2, sizeof x) == 0);
    corpus_batch(tok, N, T, B, 1234, 3, x2, y2);
    cr_assert(memcmp(x, x2, sizeof x) != 0);
    /* the smallest corpus: exactly one window */
    corpus_batch(tok, T + 1, T, B, 5, 7, x, y);
    for (int b = 0; b < B; b++) cr_assert_eq(x[b * T], 0);
    cr_assert_eq(y[T - 1], T);
    /* starts cover the range */
    int seen_lo = 0, seen_hi = 0;
    for (uint64_t step = 0; step < 2000; step++) {
        corpus_batch(tok, 100, T, 1, 1, step, x, y);
        seen_lo |= x[0] == 0;
        seen_hi |= x[0] == 100 - T - 1;
    }
    cr_assert(seen_lo && seen_hi, "first and last window starts never drawn");
    free(tok);
}
