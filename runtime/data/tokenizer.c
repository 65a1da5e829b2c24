/* tokenizer.c: the "bytes" tokenizer and GPT-2's byte-level BPE (see tokenizer.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include "hash.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TOK_BYTES, TOK_GPT2 };

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const void *p, size_t n)
{
    /* FNV-1a, then a splitmix finaliser so the low bits are usable */
    uint64_t h = fnv1a64(FNV1A64_INIT, p, n);
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ------------------------------------------- byte string -> int32 hash map */
/* Keys live in an arena; entries keep insertion order, so an entry's index is
 * a stable small id (used as the BPE symbol id). */

typedef struct {
    uint64_t hash;
    size_t off;
    uint32_t len;
    int32_t val;
} SmEntry;

typedef struct {
    char *arena;
    size_t alen, acap;
    SmEntry *ents;
    size_t count, ecap;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t cap;      /* power of two */
} StrMap;

static void sm_init(StrMap *m)
{
    memset(m, 0, sizeof *m);
    m->cap = 1024;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
}

static void sm_free(StrMap *m)
{
    free(m->arena);
    free(m->ents);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void sm_clear(StrMap *m)
{
    m->alen = 0;
    m->count = 0;
    memset(m->slots, 0, m->cap * sizeof *m->slots);
}

static const char *sm_key(const StrMap *m, size_t e) { return m->arena + m->ents[e].off; }

/* entry index or -1 */
static long sm_find(const StrMap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t s = m->slots[i];
        if (!s) return -1;
        const SmEntry *e = &m->ents[s - 1];
        if (e->hash == h && e->len == len && memcmp(m->arena + e->off, key, len) == 0)
            return (long)(s - 1);
    }
}

static void sm_grow(StrMap *m)
{
    size_t cap = m->cap * 2, mask = cap - 1;
    uint32_t *slots = xcalloc(cap, sizeof *slots);
    for (size_t e = 0; e < m->count; e++) {
        size_t i = m->ents[e].hash & mask;
        while (slots[i]) i = (i + 1) & mask;
        slots[i] = (uint32_t)(e + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

/* Inserts key (must be absent) and returns its entry index. The key is stored
 * NUL-terminated. */
static size_t sm_add(StrMap *m, const char *key, size_t len, uint64_t h, int32_t val)
{
    if ((m->count + 1) * 2 > m->cap) sm_grow(m);
    if (m->alen + len + 1 > m->acap) {
        size_t need = m->alen + len + 1;
        m->acap = m->acap ? m->acap : 4096;
        while (m->acap < need) m->acap *= 2;
        m->arena = xrealloc(m->arena, m->acap);
    }
    memcpy(m->arena + m->alen, key, len);
    m->arena[m->alen + len] = 0;
    if (m->count == m->ecap) {
        m->ecap = m->ecap ? m->ecap * 2 : 1024;
        m->ents = xrealloc(m->ents, m->ecap * sizeof *m->ents);
    }
    size_t e = m->count++;
    m->ents[e] = (SmEntry){h, m->alen, (uint32_t)len, val};
    m->alen += len + 1;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i]) i = (i + 1) & mask;
    m->slots[i] = (uint32_t)(e + 1);
    return e;
}

/* entry index of key, added with val if absent */
static size_t sm_intern(StrMap *m, const char *key, size_t len, int32_t val)
{
    uint64_t h = hash_bytes(key, len);
    long e = sm_find(m, key, len, h);
    return e >= 0 ? (size_t)e : sm_add(m, key, len, h, val);
}

/* ------------------------------------- (symbol, symbol) -> merge hash map */

typedef struct {
    uint64_t key; /* (a << 32) | b; UINT64_MAX = empty */
    int32_t rank, merged;
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t cap, count;
} PairMap;

static void pm_init(PairMap *m, size_t expect)
{
    m->cap = 1024;
    while (m->cap < expect * 2) m->cap *= 2;
    m->count = 0;
    m->slots = xmalloc(m->cap * sizeof *m->slots);
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
}

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static inline const PairSlot *pm_get(const PairMap *m, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(k) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == k) return &m->slots[i];
        if (m->slots[i].key == UINT64_MAX) return NULL;
    }
}

/* insert or overwrite (a later duplicate line wins, as with Python's dict) */
static void pm_put(PairMap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->count + 1) * 2 > m->cap) {
        PairMap n;
        pm_init(&n, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key != UINT64_MAX) {
                size_t j = hash_u64(m->slots[i].key) & (n.cap - 1);
                while (n.slots[j].key != UINT64_MAX) j = (j + 1) & (n.cap - 1);
                n.slots[j] = m->slots[i];
            }
        n.count = m->count;
        free(m->slots);
        *m = n;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = hash_u64(k) & mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != k) i = (i + 1) & mask;
    if (m->slots[i].key == UINT64_MAX) m->count++;
    m->slots[i] = (PairSlot){k, rank, merged};
}

/* -------------------------------------------------------------- tokenizer */

struct Tokenizer {
    int kind;
    char *spec;
    int vocab;
    uint64_t fingerprint;
    char err[512];
    /* decoding: id -> bytes (NUL-terminated inside dec_arena); len -1 = no such id */
    char *dec_arena;
    size_t *dec_off;
    int32_t *dec_len;
    /* gpt2 */
    StrMap syms;          /* symbol bytes -> symbol id (entry index); 0..255 = single bytes */
    int32_t *sym_vocab;   /* symbol id -> vocab id, -1 if encoder.json lacks it */
    PairMap merges;
    bool reference_bpe;   /* testing: force the literal encoder.py loop */
    pcre2_code *re;
    pcre2_match_data *md;
    /* per-piece cache: piece bytes -> offset into cache_pool ([count, ids...]) */
    StrMap cache;
    int32_t *cache_pool;
    size_t cache_len, cache_cap;
    /* scratch for BPE */
    int32_t *w_sym, *w_next, *w_prev;
    size_t w_cap;
    struct HeapItem *heap, *heap_pending;
    size_t heap_cap;
};

/* GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to
 * U+0100 upwards, in byte order. */
static void byte_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[512])
{
    for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
    }
}

/* Converts a byte-level-alphabet UTF-8 string (as in encoder.json/vocab.bpe)
 * into the raw bytes it stands for. out must hold len bytes. Returns the
 * byte count, or -1 with *bad_cp set to the offending code point
 * (0xFFFFFFFF for malformed UTF-8). */
static long unbyte(const char *s, size_t len, const int16_t cp_to_byte[512], char *out, uint32_t *bad_cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        unsigned c = p[i];
        if (c < 0x80) {
            cp = c;
            i += 1;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
            i += 2;
        } else if ((c & 0xF0) == 0xE0 && i + 2 < len) {
            cp = 0x10000; /* anything of 3+ bytes is >= U+0800: not in the alphabet */
            i += 3;
        } else {
            *bad_cp = 0xFFFFFFFF;
            return -1;
        }
        if (cp >= 512 || cp_to_byte[cp] < 0) {
            *bad_cp = cp;
            return -1;
        }
        out[n++] = (char)cp_to_byte[cp];
    }
    return n;
}

static void describe_token(char *buf, size_t n, const char *s, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 5 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"') buf[k++] = (char)c;
        else k += (size_t)snprintf(buf + k, n - k, "\\x%02x", c);
    }
    buf[k < n ? k : n - 1] = 0;
}

/* ---------------------------------------------------------- bytes kind */

static Tokenizer *open_bytes(void)
{
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = TOK_BYTES;
    t->spec = xstrdup("bytes");
    t->vocab = 256;
    t->dec_arena = xmalloc(512);
    t->dec_off = xmalloc(256 * sizeof *t->dec_off);
    t->dec_len = xmalloc(256 * sizeof *t->dec_len);
    for (int i = 0; i < 256; i++) {
        t->dec_arena[2 * i] = (char)i;
        t->dec_arena[2 * i + 1] = 0;
        t->dec_off[i] = 2 * (size_t)i;
        t->dec_len[i] = 1;
    }
    return t;
}

/* ----------------------------------------------------------- gpt2 kind */

/* \s spelled out as Unicode White_Space: what Python's `regex` matches for \s
 * (PCRE2's UCP \s also takes U+180E, which regex does not). */
#define WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static bool load_encoder(Tokenizer *t, const char *path, const int16_t cp_to_byte[512], StrMap *enc,
                         char *err, size_t errlen)
{
    size_t len;
    char why[256];
    char *text = read_file_why(path, &len, why, sizeof why);
    if (!text) {
        set_err(err, errlen, "%s: cannot read: %s", path, why);
        return false;
    }
    t->fingerprint ^= hash_bytes(text, len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        set_err(err, errlen, "%s: not valid JSON (parse error near byte %zu of %zu)", path, at, len);
        free(text);
        return false;
    }
    bool ok = false;
    if (!cJSON_IsObject(root)) {
        set_err(err, errlen, "%s: expected a JSON object mapping token strings to ids", path);
        goto out;
    }
    int max_id = -1;
    char *buf = NULL;
    size_t bufcap = 0;
    for (cJSON *c = root->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble < 16777216.0) ||
            c->valuedouble != (double)(int)c->valuedouble) {
            set_err(err, errlen, "%s: token \"%.40s\" has a bad id (want an integer in [0, 2^24))", path,
                    c->string);
            free(buf);
            goto out;
        }
        int id = (int)c->valuedouble;
        size_t klen = strlen(c->string);
        if (klen + 1 > bufcap) buf = xrealloc(buf, bufcap = klen + 64);
        uint32_t bad;
        long n = unbyte(c->string, klen, cp_to_byte, buf, &bad);
        if (n < 0) {
            if (bad == 0xFFFFFFFF)
                set_err(err, errlen, "%s: token \"%.40s\" is not valid UTF-8", path, c->string);
            else
                set_err(err, errlen, "%s: token \"%.40s\" has U+%04X, which is not in GPT-2's byte alphabet",
                        path, c->string, bad);
            free(buf);
            goto out;
        }
        uint64_t h = hash_bytes(buf, (size_t)n);
        if (sm_find(enc, buf, (size_t)n, h) >= 0) {
            set_err(err, errlen, "%s: token \"%.40s\" appears twice", path, c->string);
            free(buf);
            goto out;
        }
        sm_add(enc, buf, (size_t)n, h, id);
        if (id > max_id) max_id = id;
    }
    free(buf);
    if (enc->count == 0) {
        set_err(err, errlen, "%s: empty vocabulary", path);
        goto out;
    }
    /* decoder table */
    t->vocab = max_id + 1;
    t->dec_off = xmalloc((size_t)t->vocab * sizeof *t->dec_off);
    t->dec_len = xmalloc((size_t)t->vocab * sizeof *t->dec_len);
    for (int i = 0; i < t->vocab; i++) t->dec_len[i] = -1;
    for (size_t e = 0; e < enc->count; e++) {
        int id = enc->ents[e].val;
        if (t->dec_len[id] >= 0) {
            char d[128];
            describe_token(d, sizeof d, sm_key(enc, e), enc->ents[e].len);
            set_err(err, errlen, "%s: id %d is used twice (again by \"%s\")", path, id, d);
            goto out;
        }
        t->dec_off[id] = enc->ents[e].off;
        t->dec_len[id] = (int32_t)enc->ents[e].len;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (sm_find(enc, &c, 1, hash_bytes(&c, 1)) < 0) {
            set_err(err, errlen, "%s: lacks the single byte 0x%02x (every byte needs a token)", path, b);
            goto out;
        }
    }
    ok = true;
out:
    cJSON_Delete(root);
    free(text);
    return ok;
}

static bool load_merges(Tokenizer *t, const char *path, const int16_t cp_to_byte[512], const StrMap *enc,
                        char *err, size_t errlen)
{
    size_t len;
    char why[256];
    char *text = read_file_why(path, &len, why, sizeof why);
    if (!text) {
        set_err(err, errlen, "%s: cannot read: %s", path, why);
        return false;
    }
    t->fingerprint = t->fingerprint * 0x100000001b3ULL ^ hash_bytes(text, len);
    bool ok = false;
    char *buf = xmalloc(len + 1);
    sm_init(&t->syms);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        sm_intern(&t->syms, &c, 1, 0);
    }
    pm_init(&t->merges, 65536);
    /* encoder.py: bpe_data.split('\n')[1:-1], each line split() into a pair */
    char *p = text, *endp = text + len;
    char *nl = memchr(p, '\n', len);
    if (strncmp(p, "#version", 8) != 0 || !nl) {
        set_err(err, errlen, "%s: first line should be the \"#version\" header", path);
        goto out;
    }
    p = nl + 1;
    int32_t rank = 0;
    for (int lineno = 2; p < endp; lineno++) {
        char *eol = memchr(p, '\n', (size_t)(endp - p));
        if (!eol) eol = endp;
        char *f[3];
        size_t fl[3];
        int nf = 0;
        for (char *q = p; q < eol;) {
            while (q < eol && strchr(" \t\r\v\f", *q)) q++;
            if (q >= eol) break;
            char *s = q;
            while (q < eol && !strchr(" \t\r\v\f", *q)) q++;
            if (nf < 3) f[nf] = s, fl[nf] = (size_t)(q - s);
            nf++;
        }
        if (nf == 0) { /* blank line (the file's trailing newline) */
            if (eol == endp) break;
            p = eol + 1;
            continue;
        }
        if (nf != 2) {
            set_err(err, errlen, "%s: line %d: expected two symbols separated by a space, found %d", path,
                    lineno, nf);
            goto out;
        }
        int32_t s[2];
        size_t blen[2];
        for (int k = 0; k < 2; k++) {
            uint32_t bad;
            long n = unbyte(f[k], fl[k], cp_to_byte, buf, &bad);
            if (n < 0) {
                set_err(err, errlen, "%s: line %d: symbol \"%.*s\" is not in GPT-2's byte alphabet", path,
                        lineno, (int)(fl[k] < 40 ? fl[k] : 40), f[k]);
                goto out;
            }
            s[k] = (int32_t)sm_intern(&t->syms, buf, (size_t)n, 0);
            blen[k] = (size_t)n;
        }
        memcpy(buf, sm_key(&t->syms, (size_t)s[0]), blen[0]);
        memcpy(buf + blen[0], sm_key(&t->syms, (size_t)s[1]), blen[1]);
        int32_t m = (int32_t)sm_intern(&t->syms, buf, blen[0] + blen[1], 0);
        pm_put(&t->merges, s[0], s[1], rank++, m);
        if (eol == endp) break;
        p = eol + 1;
    }
    /* symbol -> vocab id; every symbol a merge makes must be in the vocabulary */
    size_t ns = t->syms.count;
    t->sym_vocab = xmalloc(ns * sizeof *t->sym_vocab);
    for (size_t e = 0; e < ns; e++) {
        long v = sm_find(enc, sm_key(&t->syms, e), t->syms.ents[e].len, t->syms.ents[e].hash);
        t->sym_vocab[e] = v >= 0 ? enc->ents[v].val : -1;
    }
    /* every symbol a merge makes must be in encoder.json (the highest rank
       that makes it, for the message) */
    int32_t *made = xmalloc(ns * sizeof *made);
    for (size_t e = 0; e < ns; e++) made[e] = -1;
    for (size_t i = 0; i < t->merges.cap; i++) {
        const PairSlot *ps = &t->merges.slots[i];
        if (ps->key == UINT64_MAX) continue;
        if (ps->rank > made[ps->merged]) made[ps->merged] = ps->rank;
    }
    for (size_t e = 0; e < ns; e++) {
        if (t->sym_vocab[e] < 0 && made[e] >= 0) {
            char d[128];
            describe_token(d, sizeof d, sm_key(&t->syms, e), t->syms.ents[e].len);
            set_err(err, errlen, "%s: merge %d makes \"%s\", which encoder.json lacks (mismatched files?)",
                    path, made[e], d);
            free(made);
            goto out;
        }
    }
    free(made);
    ok = true;
out:
    free(buf);
    free(text);
    return ok;
}

static Tokenizer *open_gpt2(const char *dir, char *err, size_t errlen)
{
    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[512];
    byte_tables(byte_to_cp, cp_to_byte);
    if (!*dir) {
        set_err(err, errlen, "tokenizer spec \"gpt2:\" needs a directory (gpt2:DIR)");
        return NULL;
    }
    char *real = realpath(dir, NULL);
    if (!real) {
        set_err(err, errlen, "%s: gpt2 tokenizer directory: %s", dir, strerror(errno));
        return NULL;
    }
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = TOK_GPT2;
    t->spec = xasprintf("gpt2:%s", real);
    char *enc_path = xasprintf("%s/encoder.json", real), *bpe_path = xasprintf("%s/vocab.bpe", real);
    free(real);
    StrMap enc;
    sm_init(&enc);
    bool ok = load_encoder(t, enc_path, cp_to_byte, &enc, err, errlen) &&
              load_merges(t, bpe_path, cp_to_byte, &enc, err, errlen);
    free(enc_path);
    free(bpe_path);
    if (ok) {
        /* keep the decoder's bytes: take over the encoder map's arena */
        t->dec_arena = enc.arena;
        enc.arena = NULL;
    }
    sm_free(&enc);
    if (!ok) {
        tok_close(t);
        return NULL;
    }
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        set_err(err, errlen, "gpt2 pre-tokenizer pattern does not compile at %zu: %s", (size_t)eo, (char *)msg);
        tok_close(t);
        return NULL;
    }
    (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    sm_init(&t->cache);
    return t;
}

Tokenizer *tok_open(const char *spec, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    if (!spec) spec = "";
    if (strcmp(spec, "bytes") == 0) return open_bytes();
    if (strncmp(spec, "gpt2:", 5) == 0) return open_gpt2(spec + 5, err, errlen);
    set_err(err, errlen, "unknown tokenizer \"%s\" (want \"bytes\" or \"gpt2:DIR\")", spec);
    return NULL;
}

void tok_close(Tokenizer *t)
{
    if (!t) return;
    free(t->spec);
    free(t->dec_arena);
    free(t->dec_off);
    free(t->dec_len);
    if (t->kind == TOK_GPT2) {
        sm_free(&t->syms);
        free(t->sym_vocab);
        free(t->merges.slots);
        if (t->md) pcre2_match_data_free(t->md);
        if (t->re) pcre2_code_free(t->re);
        sm_free(&t->cache);
        free(t->cache_pool);
        free(t->w_sym);
        free(t->w_next);
        free(t->w_prev);
        free(t->heap);
        free(t->heap_pending);
    }
    free(t);
}

int tok_vocab_size(const Tokenizer *t) { return t->vocab; }
const char *tok_spec(const Tokenizer *t) { return t->spec; }
const char *tok_kind(const Tokenizer *t) { return t->kind == TOK_BYTES ? "bytes" : "gpt2"; }
const char *tok_error(const Tokenizer *t) { return t->err; }
uint64_t tok_fingerprint(const Tokenizer *t) { return t->fingerprint; }

void tok_fingerprint_hex(const Tokenizer *t, char hex[TOK_FINGERPRINT_HEX])
{
    snprintf(hex, TOK_FINGERPRINT_HEX, "%016" PRIx64, t->fingerprint);
}

int tok_has_id(const Tokenizer *t, int32_t id) { return id >= 0 && id < t->vocab && t->dec_len[id] >= 0; }

char *tok_describe_id(const Tokenizer *t, int32_t id, char *buf, size_t n)
{
    if (n < 3) {
        if (n) buf[0] = 0;
        return buf;
    }
    buf[0] = '"';
    size_t len = 0;
    const char *s = tok_decode_one(t, id, &len);
    describe_token(buf + 1, n - 2, s, len);
    size_t k = strlen(buf);
    buf[k] = '"';
    buf[k + 1] = 0;
    return buf;
}

void tok_set_reference_bpe(Tokenizer *t, int on)
{
    if (t->kind != TOK_GPT2) return;
    t->reference_bpe = on != 0;
    sm_clear(&t->cache);
    t->cache_len = 0;
}

/* ------------------------------------------------------------------ BPE */

typedef struct HeapItem {
    int32_t rank, pos; /* pair (pos, next[pos]) */
    int32_t a, b;      /* the symbols it was made for: stale if they changed */
} HeapItem;

static inline bool heap_less(const HeapItem *x, const HeapItem *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(HeapItem *h, size_t *n, HeapItem it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static HeapItem heap_pop(HeapItem *h, size_t *n)
{
    HeapItem top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static void scratch(Tokenizer *t, size_t n)
{
    if (n <= t->w_cap) return;
    size_t cap = t->w_cap ? t->w_cap : 64;
    while (cap < n) cap *= 2;
    t->w_sym = xrealloc(t->w_sym, cap * sizeof *t->w_sym);
    t->w_next = xrealloc(t->w_next, cap * sizeof *t->w_next);
    t->w_prev = xrealloc(t->w_prev, cap * sizeof *t->w_prev);
    t->heap = xrealloc(t->heap, 3 * cap * sizeof *t->heap); /* n-1 pairs + 2 per merge */
    t->heap_pending = xrealloc(t->heap_pending, 2 * cap * sizeof *t->heap_pending); /* 2 per merge */
    t->w_cap = cap;
}

/* encoder.py's bpe(), literally: merge every occurrence of the lowest-ranked
 * pair, left to right, until no pair has a rank. Works on w_sym[0..n). */
static size_t bpe_reference(Tokenizer *t, size_t n)
{
    int32_t *w = t->w_sym;
    while (n > 1) {
        int32_t best = INT32_MAX, first = -1, second = -1, merged = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            const PairSlot *ps = pm_get(&t->merges, w[i], w[i + 1]);
            if (ps && ps->rank < best) best = ps->rank, first = w[i], second = w[i + 1], merged = ps->merged;
        }
        if (first < 0) break;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            if (w[i] == first && i + 1 < n && w[i + 1] == second) {
                w[o++] = merged;
                i += 2;
            } else {
                w[o++] = w[i++];
            }
        }
        n = o;
    }
    return n;
}

/* The same result in O(n log n), whatever the order of vocab.bpe's lines: a
 * heap of candidate pairs ordered by (rank, position) over a linked list of
 * symbols. encoder.py works in rounds: it merges every occurrence of the best
 * pair, left to right, and only then looks at the pairs those merges made.
 * One rank is one pair, so a round is every heap entry of the top rank, which
 * the heap yields left to right; the pairs a round creates are pushed when it
 * ends, since one of them may rank before it (a merge listed before the one
 * that makes its input). A merge never recreates the pair it merged (the new
 * symbol is longer than both), so no round feeds itself. */
static size_t bpe_heap(Tokenizer *t, size_t n)
{
    int32_t *sym = t->w_sym, *next = t->w_next, *prev = t->w_prev;
    HeapItem *h = t->heap, *pend = t->heap_pending;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const PairSlot *ps = pm_get(&t->merges, sym[i], sym[i + 1]);
        if (ps) heap_push(h, &hn, (HeapItem){ps->rank, (int32_t)i, sym[i], sym[i + 1]});
    }
    /* a dead node has prev == -2 */
    while (hn) {
        int32_t rank = h[0].rank;
        size_t np = 0;
        while (hn && h[0].rank == rank) {
            HeapItem it = heap_pop(h, &hn);
            int32_t i = it.pos;
            if (prev[i] == -2 || sym[i] != it.a) continue;
            int32_t j = next[i];
            if (j < 0 || sym[j] != it.b) continue;
            const PairSlot *ps = pm_get(&t->merges, it.a, it.b);
            sym[i] = ps->merged;
            next[i] = next[j];
            if (next[j] >= 0) prev[next[j]] = i;
            prev[j] = -2;
            if (prev[i] >= 0) {
                int32_t p = prev[i];
                const PairSlot *q = pm_get(&t->merges, sym[p], sym[i]);
                if (q) pend[np++] = (HeapItem){q->rank, p, sym[p], sym[i]};
            }
            if (next[i] >= 0) {
                int32_t k = next[i];
                const PairSlot *q = pm_get(&t->merges, sym[i], sym[k]);
                if (q) pend[np++] = (HeapItem){q->rank, i, sym[i], sym[k]};
            }
        }
        for (size_t k = 0; k < np; k++) heap_push(h, &hn, pend[k]); /* stale ones are skipped when popped */
    }
    size_t o = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) sym[o++] = sym[i];
    return o;
}

static void cache_reserve(Tokenizer *t, size_t more)
{
    if (t->cache_len + more <= t->cache_cap) return;
    size_t cap = t->cache_cap ? t->cache_cap : 1 << 16;
    while (cap < t->cache_len + more) cap *= 2;
    t->cache_pool = xrealloc(t->cache_pool, cap * sizeof *t->cache_pool);
    t->cache_cap = cap;
}

typedef struct {
    int32_t *ids;
    size_t n, cap;
} IdBuf;

static void idbuf_put(IdBuf *b, const int32_t *ids, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        b->ids = xrealloc(b->ids, cap * sizeof *b->ids);
        b->cap = cap;
    }
    memcpy(b->ids + b->n, ids, n * sizeof *ids);
    b->n += n;
}

enum { CACHE_MAX_PIECES = 1 << 20, CACHE_MAX_PIECE_BYTES = 256 };

static int encode_piece(Tokenizer *t, const unsigned char *p, size_t len, IdBuf *out)
{
    if (len == 0) return 0;
    uint64_t h = 0;
    bool cacheable = len <= CACHE_MAX_PIECE_BYTES;
    if (cacheable) {
        h = hash_bytes(p, len);
        long e = sm_find(&t->cache, (const char *)p, len, h);
        if (e >= 0) {
            const int32_t *c = t->cache_pool + t->cache.ents[e].val;
            idbuf_put(out, c + 1, (size_t)c[0]);
            return 0;
        }
    }
    if (len > INT32_MAX / 4) {
        snprintf(t->err, sizeof t->err, "a single pre-token of %zu bytes is too long", len);
        return -1;
    }
    scratch(t, len);
    for (size_t i = 0; i < len; i++) t->w_sym[i] = p[i];
    size_t n = t->reference_bpe ? bpe_reference(t, len) : bpe_heap(t, len);
    for (size_t i = 0; i < n; i++) {
        int32_t v = t->sym_vocab[t->w_sym[i]];
        if (v < 0) {
            char d[128];
            describe_token(d, sizeof d, sm_key(&t->syms, (size_t)t->w_sym[i]), t->syms.ents[t->w_sym[i]].len);
            snprintf(t->err, sizeof t->err, "BPE symbol \"%s\" is not in encoder.json", d);
            return -1;
        }
        t->w_sym[i] = v;
    }
    idbuf_put(out, t->w_sym, n);
    if (cacheable) {
        if (t->cache.count >= CACHE_MAX_PIECES) {
            sm_clear(&t->cache);
            t->cache_len = 0;
        }
        cache_reserve(t, n + 1);
        size_t off = t->cache_len;
        t->cache_pool[off] = (int32_t)n;
        memcpy(t->cache_pool + off + 1, t->w_sym, n * sizeof *t->w_sym);
        t->cache_len += n + 1;
        sm_add(&t->cache, (const char *)p, len, h, (int32_t)off);
    }
    return 0;
}

int tok_encode(Tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n)
{
    t->err[0] = 0;
    *ids = NULL;
    *n = 0;
    if (t->kind == TOK_BYTES) {
        int32_t *o = xmalloc(len * sizeof *o);
        for (size_t i = 0; i < len; i++) o[i] = (unsigned char)text[i];
        *ids = o;
        *n = len;
        return 0;
    }
    IdBuf out = {0};
    const unsigned char *s = (const unsigned char *)text;
    size_t off = 0;
    while (off < len) {
        int rc = pcre2_match(t->re, s, len, off, 0, t->md, NULL);
        size_t start, end;
        if (rc == PCRE2_ERROR_NOMATCH) {
            start = end = len;
        } else if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            snprintf(t->err, sizeof t->err, "pre-tokenizer match failed at byte %zu: %s", off, (char *)msg);
            free(out.ids);
            return -1;
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
            start = ov[0];
            end = ov[1];
            if (end <= start) end = start + 1; /* cannot happen: no branch matches empty */
        }
        /* bytes the pattern skipped (invalid UTF-8): one piece per run */
        if (start > off && encode_piece(t, s + off, start - off, &out) < 0) goto fail;
        if (end > start && encode_piece(t, s + start, end - start, &out) < 0) goto fail;
        off = end;
    }
    *ids = out.ids ? out.ids : xmalloc(sizeof(int32_t));
    *n = out.n;
    return 0;
fail:
    free(out.ids);
    return -1;
}

const char *tok_decode_one(const Tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->vocab || t->dec_len[id] < 0) {
        if (len) *len = sizeof REPLACEMENT - 1;
        return REPLACEMENT;
    }
    if (len) *len = (size_t)t->dec_len[id];
    return t->dec_arena + t->dec_off[id];
}

char *tok_decode(Tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    size_t total = 0, l;
    for (size_t i = 0; i < n; i++) {
        tok_decode_one(t, ids[i], &l);
        total += l;
    }
    char *out = xmalloc(total + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        const char *b = tok_decode_one(t, ids[i], &l);
        memcpy(p, b, l);
        p += l;
    }
    *p = 0;
    if (len) *len = total;
    return out;
}
