/* test_safetensors.c: the safetensors reader/writer and atomic_file.
 * Fixtures come from $SHARED/fixtures (SHARED defaults to "../shared").
 * KANC_ST_FUZZ_ITERS raises the number of random header corruptions. */
#define _GNU_SOURCE
#include "atomic_file.h"
#include "safetensors.h"
#include "util.h"
#include "test_util.h"

#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(safetensors);

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static char *fixture(const char *name) { return test_fixture_path(name); }

static char *make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/kanc_st_XXXXXX", t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    return tmpl;
}

/* Number of directory entries (other than . and ..). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void rm_tree(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char *p = xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *b = (unsigned char *)read_file(path, len);
    cr_assert_not_null(b, "cannot read %s: %s", path, strerror(errno));
    return b;
}

static void spit(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* 8-byte length + header (padded with spaces to 8 unless pad is 0) + data. */
static unsigned char *build(const char *hdr, const void *data, size_t dlen, int pad, size_t *outlen)
{
    size_t h = strlen(hdr), hp = pad ? (h + 7) / 8 * 8 : h;
    unsigned char *b = xmalloc(8 + hp + dlen);
    uint64_t n = hp;
    memcpy(b, &n, 8);
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, ' ', hp - h);
    if (dlen) memcpy(b + 8 + hp, data, dlen);
    *outlen = 8 + hp + dlen;
    return b;
}

/* Writes bytes to path and checks st_open rejects them with a message that
 * names the file (and contains want, when given). */
static void expect_reject_bytes(const char *path, const void *bytes, size_t len, const char *want, const char *what)
{
    spit(path, bytes, len);
    StFile f;
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = st_open(&f, path, err, sizeof err);
    cr_assert_eq(rc, -1, "%s: accepted", what);
    cr_assert(memchr(err, 0, sizeof err), "%s: message not terminated", what);
    cr_assert_not_null(strstr(err, path), "%s: message '%s' does not name the file", what, err);
    cr_assert_gt(strlen(err), strlen(path) + 4, "%s: empty message '%s'", what, err);
    if (want) cr_assert_not_null(strstr(err, want), "%s: message '%s' lacks '%s'", what, err, want);
    cr_assert_null(f.buf, "%s: StFile not released", what);
    cr_assert_eq(f.ntensors, 0);
    st_close(&f); /* harmless on a failed open */
}

/* The header JSON text (without padding) of a safetensors byte string. */
static char *header_of(const unsigned char *b, size_t *data_at)
{
    uint64_t n;
    memcpy(&n, b, 8);
    size_t end = n;
    while (end > 0 && b[8 + end - 1] == ' ') end--;
    char *h = xmalloc(end + 1);
    memcpy(h, b + 8, end);
    h[end] = 0;
    *data_at = 8 + n;
    return h;
}

/* s with its single occurrence of from replaced by to. */
static char *replace1(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    cr_assert_not_null(p, "'%s' not in header", from);
    cr_assert_null(strstr(p + 1, from), "'%s' occurs twice", from);
    return xasprintf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Reads every tensor of an open file in every destination type (exercises all
 * bytes: sanitizers catch any out-of-bounds pointer). */
static void touch_all(const StFile *f)
{
    for (int i = 0; i < st_num_tensors(f); i++) {
        const StTensor *t = st_tensor_at(f, i);
        double *d = xmalloc((size_t)t->numel * sizeof *d + 1);
        float *s = xmalloc((size_t)t->numel * sizeof *s + 1);
        int64_t *q = xmalloc((size_t)t->numel * sizeof *q + 1);
        int32_t *w = xmalloc((size_t)t->numel * sizeof *w + 1);
        cr_assert_eq(st_read_f64(t, d), 0);
        cr_assert_eq(st_read_f32(t, s), 0);
        (void)st_read_i64(t, q);
        (void)st_read_i32(t, w);
        free(d), free(s), free(q), free(w);
    }
}

/* ------------------------------------------------------------------------ */
/* fixtures                                                                  */

Test(safetensors, every_fixture_parses)
{
    char *pattern = xasprintf("%s/fixtures/*.safetensors", test_shared());
    glob_t g;
    int gr = glob(pattern, 0, NULL, &g);
    cr_assert_eq(gr, 0, "no fixtures match %s (set SHARED)", pattern);
    cr_assert_gt(g.gl_pathc, 0);
    for (size_t k = 0; k < g.gl_pathc; k++) {
        const char *path = g.gl_pathv[k];
        StFile f;
        char err[512];
        cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
        cr_assert_gt(st_num_tensors(&f), 0, "%s has no tensors", path);
        const char *kind = st_meta(&f, "kind"), *config = st_meta(&f, "config");
        cr_assert_not_null(kind, "%s: no metadata kind", path);
        cr_assert_not_null(config, "%s: no metadata config", path);
        cJSON *cfg = cJSON_Parse(config);
        cr_assert(cJSON_IsObject(cfg), "%s: config is not a JSON object", path);
        cJSON_Delete(cfg);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (!strncmp(base, "gpt_", 4)) cr_assert_str_eq(kind, "gpt");
        if (!strncmp(base, "kan_linear", 10)) cr_assert_str_eq(kind, "kan_linear");
        /* sorted, findable, consistent, readable */
        for (int i = 0; i < st_num_tensors(&f); i++) {
            const StTensor *t = st_tensor_at(&f, i);
            if (i) cr_assert_lt(strcmp(st_tensor_at(&f, i - 1)->name, t->name), 0);
            cr_assert_eq(st_find(&f, t->name), t);
            int64_t numel = 1;
            for (int d = 0; d < t->rank; d++) numel *= t->shape[d];
            cr_assert_eq(numel, t->numel);
            cr_assert_eq(t->nbytes, (size_t)t->numel * st_dtype_size(t->dtype));
            cr_assert(t->dtype == ST_F32 || t->dtype == ST_F64 || t->dtype == ST_I64, "%s: %s is %s", path, t->name,
                      st_dtype_name(t->dtype));
        }
        touch_all(&f);
        cr_assert_null(st_find(&f, "no such tensor"));
        cr_assert_null(st_meta(&f, "no such key"));
        st_close(&f);
        st_close(&f); /* idempotent */
    }
    globfree(&g);
    free(pattern);
}

Test(safetensors, fixture_spot_values)
{
    char *p = fixture("kan_linear_default.safetensors");
    StFile f;
    char err[512], sh[64];
    cr_assert_eq(st_open(&f, p, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(st_meta(&f, "kind"), "kan_linear");
    cr_assert_not_null(strstr(st_meta(&f, "config"), "\"in_features\": 7"));
    cr_assert_eq(st_num_tensors(&f), 12);
    cr_assert_eq(st_num_meta(&f), 2);
    cr_assert_str_eq(st_meta_at(&f, 0)->key, "kind"); /* header order */
    cr_assert_str_eq(st_meta_at(&f, 1)->key, "config");

    const StTensor *x = st_find(&f, "x");
    cr_assert_not_null(x);
    cr_assert_eq(x->dtype, ST_F32);
    cr_assert_str_eq(st_shape_str(x, sh, sizeof sh), "[33, 7]");
    cr_assert_eq(x->numel, 231);
    float xs[231];
    cr_assert_eq(st_read_f32(x, xs), 0);
    cr_assert_eq(xs[0], 0x1.a61a86p-1f);
    cr_assert_eq(xs[1], -0x1.6993bap-1f);
    cr_assert_eq(xs[230], -0x1.4c75cp-2f);
    double xd[231];
    cr_assert_eq(st_read_f64(x, xd), 0);
    cr_assert_eq(xd[1], (double)-0x1.6993bap-1f);
    int64_t xi[231];
    cr_assert_eq(st_read_i64(x, xi), -1, "non-integers must not convert to I64");

    const StTensor *y = st_find(&f, "y");
    cr_assert_not_null(y);
    cr_assert_eq(y->dtype, ST_F64);
    cr_assert_str_eq(st_shape_str(y, sh, sizeof sh), "[33, 5]");
    double ys[165];
    cr_assert_eq(st_read_f64(y, ys), 0);
    cr_assert_eq(ys[0], 0x1.06d521cc26026p-1);
    cr_assert_eq(ys[164], -0x1.709f33f231114p-4);
    float yf[165];
    cr_assert_eq(st_read_f32(y, yf), 0);
    cr_assert_eq(yf[0], (float)0x1.06d521cc26026p-1);
    st_close(&f);
    free(p);

    p = fixture("gpt_kansformers.safetensors");
    cr_assert_eq(st_open(&f, p, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(st_meta(&f, "kind"), "gpt");
    cr_assert_not_null(strstr(st_meta(&f, "config"), "\"layout\": \"kansformers\""));
    cr_assert_eq(st_num_tensors(&f), 131);
    const StTensor *idx = st_find(&f, "idx");
    cr_assert_not_null(idx);
    cr_assert_eq(idx->dtype, ST_I64);
    cr_assert_str_eq(st_shape_str(idx, sh, sizeof sh), "[3, 8]");
    static const int64_t want[24] = {10, 9, 3, 20, 10, 13, 15, 10, 16, 30, 25, 1,
                                     11, 13, 25, 26, 15, 1, 12, 14, 4, 1, 8, 2};
    int64_t got[24];
    int32_t got32[24];
    float gotf[24];
    cr_assert_eq(st_read_i64(idx, got), 0);
    cr_assert_eq(st_read_i32(idx, got32), 0);
    cr_assert_eq(st_read_f32(idx, gotf), 0);
    for (int i = 0; i < 24; i++) {
        cr_assert_eq(got[i], want[i]);
        cr_assert_eq(got32[i], want[i]);
        cr_assert_eq(gotf[i], (float)want[i]);
    }
    const StTensor *loss = st_find(&f, "loss");
    cr_assert_not_null(loss);
    cr_assert_eq(loss->rank, 0);
    cr_assert_eq(loss->numel, 1);
    cr_assert_str_eq(st_shape_str(loss, sh, sizeof sh), "[]");
    double l;
    cr_assert_eq(st_read_f64(loss, &l), 0);
    cr_assert_eq(l, 0x1.bc67dd0b482cep+1);
    st_close(&f);
    free(p);
}

/* Reading a fixture and writing its tensors and metadata back reproduces the
 * file byte for byte: the writer matches the reference writer. */
Test(safetensors, rewrite_fixtures_byte_identical)
{
    char *pattern = xasprintf("%s/fixtures/*.safetensors", test_shared());
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0);
    char *dir = make_tmpdir();
    char *out = xasprintf("%s/out.safetensors", dir);
    for (size_t k = 0; k < g.gl_pathc; k++) {
        StFile f;
        char err[512];
        cr_assert_eq(st_open(&f, g.gl_pathv[k], err, sizeof err), 0, "%s", err);
        int n = st_num_tensors(&f);
        StEntry *e = xcalloc((size_t)n, sizeof *e);
        /* hand them over in reverse order: the writer sorts by name */
        for (int i = 0; i < n; i++) {
            const StTensor *t = st_tensor_at(&f, n - 1 - i);
            e[i] = (StEntry){.name = t->name, .dtype = t->dtype, .rank = t->rank, .data = t->data};
            memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        }
        cr_assert_eq(st_write(out, e, n, f.meta, f.nmeta, err, sizeof err), 0, "%s", err);
        size_t a, b;
        unsigned char *orig = slurp(g.gl_pathv[k], &a), *mine = slurp(out, &b);
        cr_assert_eq(a, b, "%s: size %zu vs %zu", g.gl_pathv[k], a, b);
        cr_assert(memcmp(orig, mine, a) == 0, "%s: bytes differ", g.gl_pathv[k]);
        free(orig), free(mine), free(e);
        st_close(&f);
    }
    cr_assert_eq(count_entries(dir), 1);
    free(out);
    rm_tree(dir);
    globfree(&g);
    free(pattern);
}

/* ------------------------------------------------------------------------ */
/* round trip                                                                */

Test(safetensors, round_trip_all_dtypes_bit_exact)
{
    char *dir = make_tmpdir();
    char *path = xasprintf("%s/rt.safetensors", dir);
    float f32[12];
    double f64[6];
    int64_t i64[5] = {0, -1, INT64_MAX, INT64_MIN, 1234567890123ll};
    uint16_t bf16[4], f16[5];
    int32_t i32[3] = {INT32_MIN, 7, INT32_MAX};
    int16_t i16[2] = {-32768, 32767};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[2] = {0, 255}, bl[3] = {0, 1, 1};
    double scalar = -0.0;
    for (int i = 0; i < 12; i++) f32[i] = (float)(i * 0.1 - 0.55);
    f32[11] = NAN;
    for (int i = 0; i < 6; i++) f64[i] = 1.0 / (i + 3) - 0.1;
    f64[5] = -INFINITY;
    float bsrc[4] = {1.0f, 3.14159265f, -2.5e-3f, 1e30f};
    for (int i = 0; i < 4; i++) bf16[i] = st_f32_to_bf16(bsrc[i]);
    float hsrc[5] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0.333333f};
    for (int i = 0; i < 5; i++) f16[i] = st_f32_to_f16(hsrc[i]);
    StEntry e[] = {
        {"w.f32", ST_F32, 2, {3, 4}, f32},      {"a.f64", ST_F64, 3, {2, 3, 1}, f64},
        {"tokens", ST_I64, 1, {5}, i64},        {"bf", ST_BF16, 2, {2, 2}, bf16},
        {"half", ST_F16, 1, {5}, f16},          {"i32", ST_I32, 1, {3}, i32},
        {"i16", ST_I16, 1, {2}, i16},           {"i8", ST_I8, 1, {3}, i8},
        {"u8", ST_U8, 1, {2}, u8},              {"mask", ST_BOOL, 1, {3}, bl},
        {"scalar", ST_F64, 0, {0}, &scalar},    {"empty", ST_F32, 2, {0, 3}, NULL},
        {"z\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80", ST_U8, 1, {1}, u8}, /* non-ASCII name */
    };
    int n = (int)(sizeof e / sizeof e[0]);
    StMeta meta[] = {
        {"kind", "test"},
        {"config", "{\"a\": [1, 2], \"s\": \"q\\\"uote\"}"},
        {"odd", "tab\there\nnewline \\ back \x01 ctl \xc3\xbc \xf0\x9f\x98\x80"},
    };
    char err[512];
    cr_assert_eq(st_write(path, e, n, meta, 3, err, sizeof err), 0, "%s", err);
    cr_assert_eq(count_entries(dir), 1, "temporary file left behind");

    size_t len;
    unsigned char *raw = slurp(path, &len);
    uint64_t hn;
    memcpy(&hn, raw, 8);
    cr_assert_eq(hn % 8, 0, "header not padded to 8");
    for (size_t i = 8; i < 8 + hn; i++) cr_assert_lt(raw[i], 0x80, "header not ASCII (ensure_ascii)");
    free(raw);

    StFile f;
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_num_tensors(&f), n);
    uint64_t expect_off = 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_find(&f, e[i].name);
        cr_assert_not_null(t, "%s missing", e[i].name);
        cr_assert_eq(t->dtype, e[i].dtype);
        cr_assert_eq(t->rank, e[i].rank);
        for (int d = 0; d < t->rank; d++) cr_assert_eq(t->shape[d], e[i].shape[d]);
        if (t->nbytes) cr_assert(memcmp(t->data, e[i].data, t->nbytes) == 0, "%s: bytes differ", e[i].name);
        /* data laid out in name order */
        const StTensor *s = st_tensor_at(&f, i);
        cr_assert_eq(s->offset, expect_off);
        expect_off += s->nbytes;
    }
    cr_assert_eq(expect_off, f.data_size);
    cr_assert_eq(st_num_meta(&f), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(st_meta_at(&f, i)->key, meta[i].key);
        cr_assert_str_eq(st_meta(&f, meta[i].key), meta[i].value);
    }
    /* conversions of the narrow float types */
    double d[5];
    cr_assert_eq(st_read_f64(st_find(&f, "bf"), d), 0);
    cr_assert_eq(d[0], 1.0);
    cr_assert_eq(d[1], 3.140625);
    cr_assert_eq(d[3], (double)st_bf16_to_f32(st_f32_to_bf16(1e30f)));
    cr_assert_eq(st_read_f64(st_find(&f, "half"), d), 0);
    cr_assert_eq(d[0], 1.0);
    cr_assert_eq(d[1], -2.0);
    cr_assert_eq(d[2], 65504.0);
    cr_assert_eq(d[3], 0x1p-24);
    cr_assert_eq(d[4], 0.333251953125); /* nearest half to 0.333333 */
    int64_t q[3];
    cr_assert_eq(st_read_i64(st_find(&f, "mask"), q), 0);
    cr_assert(q[0] == 0 && q[1] == 1 && q[2] == 1);
    cr_assert_eq(st_read_i64(st_find(&f, "i8"), q), 0);
    cr_assert(q[0] == -128 && q[2] == 127);
    double sc;
    cr_assert_eq(st_read_f64(st_find(&f, "scalar"), &sc), 0);
    cr_assert(sc == 0 && signbit(sc));
    cr_assert_eq(st_find(&f, "empty")->numel, 0);
    st_close(&f);

    /* zero tensors, no metadata: "{}" */
    cr_assert_eq(st_write(path, NULL, 0, NULL, 0, err, sizeof err), 0, "%s", err);
    raw = slurp(path, &len);
    cr_assert_eq(len, 16);
    cr_assert(memcmp(raw + 8, "{}      ", 8) == 0);
    free(raw);
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_num_tensors(&f), 0);
    cr_assert_eq(st_num_meta(&f), 0);
    st_close(&f);
    free(path);
    rm_tree(dir);
}

Test(safetensors, unaligned_data_and_unpadded_header)
{
    char *dir = make_tmpdir();
    char *path = xasprintf("%s/u.safetensors", dir);
    /* header of odd length, not padded: data starts at an odd address */
    const char *hdr = "{\"v\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}";
    double v[3] = {1.5, -2.25, 1e-300};
    size_t len;
    unsigned char *b = build(hdr, v, sizeof v, 0, &len);
    spit(path, b, len);
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    const StTensor *t = st_find(&f, "v");
    cr_assert_not_null(t);
    double got[3];
    cr_assert_eq(st_read_f64(t, got), 0);
    cr_assert(memcmp(got, v, sizeof v) == 0);
    st_close(&f);
    free(b);
    free(path);
    rm_tree(dir);
}

/* ------------------------------------------------------------------------ */
/* scalar conversions                                                        */

Test(safetensors, half_and_bfloat_conversions)
{
    /* known values */
    cr_assert_eq(st_f16_to_f32(0x3c00), 1.0f);
    cr_assert_eq(st_f16_to_f32(0xc000), -2.0f);
    cr_assert_eq(st_f16_to_f32(0x7bff), 65504.0f);
    cr_assert_eq(st_f16_to_f32(0x0001), 0x1p-24f);
    cr_assert_eq(st_f16_to_f32(0x03ff), 0x3ffp-24f);
    cr_assert_eq(st_f16_to_f32(0x0400), 0x1p-14f);
    cr_assert(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    cr_assert(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    cr_assert(isnan(st_f16_to_f32(0x7e00)));
    cr_assert(signbit(st_f16_to_f32(0x8000)) && st_f16_to_f32(0x8000) == 0);
    cr_assert_eq(st_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(st_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(st_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    cr_assert_eq(st_f32_to_f16(0x1p-25f), 0x0000); /* tie to even: 0 */
    cr_assert_eq(st_f32_to_f16(0x1.8p-24f), 0x0002); /* tie to even: 2 */
    cr_assert_eq(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    cr_assert_eq(st_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);
    cr_assert_eq(st_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(st_f32_to_f16(NAN) & 0x7c00, 0x7c00);
    cr_assert_neq(st_f32_to_f16(NAN) & 0x03ff, 0);

    cr_assert_eq(st_bf16_to_f32(0x3f80), 1.0f);
    cr_assert_eq(st_bf16_to_f32(0x4049), 3.140625f);
    cr_assert_eq(st_f32_to_bf16(3.14159265f), 0x4049);
    cr_assert_eq(st_f32_to_bf16(0x1.01p0f), 0x3f80);   /* 0x3f808000: tie to even (down) */
    cr_assert_eq(st_f32_to_bf16(0x1.03p0f), 0x3f82);   /* 0x3f818000: tie to even (up) */
    cr_assert_eq(st_f32_to_bf16(0x1.fffffep127f), 0x7f80); /* FLT_MAX rounds to inf */
    cr_assert(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));

#ifdef __FLT16_MAX__
    /* exhaustive against the compiler's _Float16 */
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 x;
        uint16_t hb = (uint16_t)h;
        memcpy(&x, &hb, 2);
        float want = (float)x, got = st_f16_to_f32(hb);
        if (isnan(want)) cr_assert(isnan(got), "0x%04x", h);
        else cr_assert(memcmp(&want, &got, 4) == 0, "0x%04x: %a vs %a", h, (double)want, (double)got);
        if (!isnan(want)) cr_assert_eq(st_f32_to_f16(got), hb, "f32->f16 of 0x%04x", h);
    }
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rnd();
        if (i & 1) u = (u & 0x8fffffffu) | 0x30000000u; /* bias toward half range */
        float x;
        memcpy(&x, &u, 4);
        if (isnan(x)) continue;
        _Float16 want = (_Float16)x;
        uint16_t wb;
        memcpy(&wb, &want, 2);
        cr_assert_eq(st_f32_to_f16(x), wb, "%a", (double)x);
    }
#endif
}

Test(safetensors, conversion_readers)
{
    unsigned char buf[64];
    StTensor t = {.name = "t", .rank = 1, .data = buf + 1}; /* deliberately unaligned */
    int64_t q[4];
    int32_t w[4];
    float s[4];
    double d[4];

    int64_t big[2] = {(int64_t)1 << 40, -5};
    memcpy(buf + 1, big, sizeof big);
    t.dtype = ST_I64, t.numel = 2, t.shape[0] = 2;
    cr_assert_eq(st_read_i64(&t, q), 0);
    cr_assert(q[0] == (int64_t)1 << 40 && q[1] == -5);
    cr_assert_eq(st_read_i32(&t, w), -1, "2^40 does not fit int32");
    cr_assert_eq(st_read_f64(&t, d), 0);
    cr_assert_eq(d[0], 0x1p40);

    double fl[3] = {-3.0, 2.5, NAN};
    memcpy(buf + 1, fl, sizeof fl);
    t.dtype = ST_F64, t.numel = 1;
    cr_assert_eq(st_read_i32(&t, w), 0);
    cr_assert_eq(w[0], -3);
    t.numel = 2;
    cr_assert_eq(st_read_i64(&t, q), -1, "2.5 is not an integer");
    double nan1 = NAN;
    memcpy(buf + 1, &nan1, 8);
    t.numel = 1;
    cr_assert_eq(st_read_i64(&t, q), -1, "NaN");
    double huge = 0x1p63;
    memcpy(buf + 1, &huge, 8);
    cr_assert_eq(st_read_i64(&t, q), -1, "2^63 out of range");
    huge = -0x1p63;
    memcpy(buf + 1, &huge, 8);
    cr_assert_eq(st_read_i64(&t, q), 0);
    cr_assert_eq(q[0], INT64_MIN);
    huge = 1e300;
    memcpy(buf + 1, &huge, 8);
    cr_assert_eq(st_read_f32(&t, s), 0);
    cr_assert(isinf(s[0]));

    uint8_t u8[3] = {0, 200, 255};
    memcpy(buf + 1, u8, 3);
    t.dtype = ST_U8, t.numel = 3;
    cr_assert_eq(st_read_f32(&t, s), 0);
    cr_assert(s[0] == 0 && s[1] == 200 && s[2] == 255);
    t.dtype = ST_I8;
    cr_assert_eq(st_read_i32(&t, w), 0);
    cr_assert(w[0] == 0 && w[1] == -56 && w[2] == -1);
    t.dtype = ST_BOOL;
    cr_assert_eq(st_read_f64(&t, d), 0);
    cr_assert(d[0] == 0 && d[1] == 1 && d[2] == 1);

    int16_t i16[2] = {-300, 300};
    memcpy(buf + 1, i16, 4);
    t.dtype = ST_I16, t.numel = 2;
    cr_assert_eq(st_read_i64(&t, q), 0);
    cr_assert(q[0] == -300 && q[1] == 300);

    cr_assert_str_eq(st_dtype_name(ST_BF16), "BF16");
    cr_assert_eq(st_dtype_from_name("BOOL"), ST_BOOL);
    cr_assert_eq(st_dtype_from_name("f32"), -1);
    cr_assert_eq(st_dtype_size(ST_I16), 2);
}

/* ------------------------------------------------------------------------ */
/* corruption                                                                */

typedef struct Fx {
    char *dir, *path;         /* where corrupted copies are written */
    unsigned char *bytes;     /* the real fixture */
    size_t len, data_at;
    char *hdr;                /* its header JSON, unpadded */
} Fx;

static Fx load_fx(const char *name)
{
    Fx x;
    char *src = fixture(name);
    x.bytes = slurp(src, &x.len);
    free(src);
    x.hdr = header_of(x.bytes, &x.data_at);
    x.dir = make_tmpdir();
    x.path = xasprintf("%s/%s", x.dir, name);
    return x;
}

static void free_fx(Fx *x)
{
    free(x->bytes);
    free(x->hdr);
    free(x->path);
    rm_tree(x->dir);
}

/* The fixture with its header replaced (data kept) must be rejected. */
static void reject_hdr(Fx *x, const char *hdr, const char *want)
{
    size_t len;
    unsigned char *b = build(hdr, x->bytes + x->data_at, x->len - x->data_at, 1, &len);
    expect_reject_bytes(x->path, b, len, want, hdr);
    free(b);
}

static void reject_edit(Fx *x, const char *from, const char *to, const char *want)
{
    char *h = replace1(x->hdr, from, to);
    reject_hdr(x, h, want);
    free(h);
}

/* Edits inside one entry's text (entry, itself unique in the header). */
static void reject_entry_edit(Fx *x, const char *entry, const char *from, const char *to, const char *want)
{
    char *e = replace1(entry, from, to);
    reject_edit(x, entry, e, want);
    free(e);
}

Test(safetensors, corrupt_truncations)
{
    Fx x = load_fx("kan_linear_default.safetensors");
    size_t n = x.data_at - 8;
    size_t cuts[] = {0, 1, 7, 8, 9, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + (x.len - x.data_at) / 2, x.len - 1};
    const char *want[] = {"too short", "too short", "too short", "header length", "header length",
                          "header length", "file truncated?", "file truncated?", "file truncated?",
                          "file truncated?"};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu", cuts[i]);
        expect_reject_bytes(x.path, x.bytes, cuts[i], want[i], what);
    }
    /* the untouched copy is fine */
    spit(x.path, x.bytes, x.len);
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, x.path, err, sizeof err), 0, "%s", err);
    st_close(&f);
    free_fx(&x);
}

Test(safetensors, corrupt_header_length)
{
    Fx x = load_fx("kan_linear_default.safetensors");
    uint64_t n = x.data_at - 8;
    struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "header length is 0"},
        {1, "not valid JSON"},
        {n - 1, NULL},
        {n - 8, NULL},
        {n + 1, NULL},
        {n + 8, NULL},
        {x.len - 8, NULL},
        {x.len - 7, "runs past the end"},
        {ST_MAX_HEADER + 1, "exceeds"},
        {(uint64_t)1 << 32, "exceeds"},
        {(uint64_t)1 << 63, "exceeds"},
        {UINT64_MAX, "exceeds"},
        {UINT64_MAX - 7, "exceeds"},
    };
    unsigned char *b = xmalloc(x.len);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, x.bytes, x.len);
        memcpy(b, &cases[i].v, 8);
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)cases[i].v);
        expect_reject_bytes(x.path, b, x.len, cases[i].want, what);
    }
    free(b);
    free_fx(&x);
}

Test(safetensors, corrupt_header_contents)
{
    Fx x = load_fx("kan_linear_default.safetensors");
    const char *X = "\"x\":{\"dtype\":\"F32\",\"shape\":[33,7],\"data_offsets\":[21828,22752]}";
    const char *Y = "\"y\":{\"dtype\":\"F64\",\"shape\":[33,5],\"data_offsets\":[22752,24072]}";
    cr_assert_not_null(strstr(x.hdr, X));
    cr_assert_not_null(strstr(x.hdr, Y));
    /* data_offsets */
    reject_edit(&x, "[21828,22752]", "[21828,99999999]", "end past the data (24072 bytes); file truncated?");
    reject_edit(&x, "[21828,22752]", "[0,1e300]", "not a non-negative integer");
    reject_edit(&x, "[21828,22752]", "[22752,21828]", "begin after end");
    reject_edit(&x, "[21828,22752]", "[-4,920]", "not a non-negative integer");
    reject_edit(&x, "[21828,22752]", "[21828.5,22752]", "not a non-negative integer");
    reject_edit(&x, "[21828,22752]", "[21828,22752,0]", "data_offsets");
    reject_edit(&x, "[21828,22752]", "[21828]", "data_offsets");
    reject_edit(&x, "[21828,22752]", "\"21828,22752\"", "data_offsets");
    reject_edit(&x, "[21828,22752]", "[21828,\"22752\"]", "not a non-negative integer");
    reject_edit(&x, "[21828,22752]", "[21824,22748]", "overlap");         /* x overlaps spline_weight */
    reject_edit(&x, "[22752,24072]", "[22744,24064]", "overlap");         /* y overlaps x */
    reject_edit(&x, "[21828,22752]", "[21836,22760]", "belong to no tensor"); /* hole before x */
    reject_edit(&x, "[22752,24072]", "[22744,24064]", "'x'");
    /* shape / numel / dtype */
    reject_entry_edit(&x, X, "[33,7]", "[33,8]", "needs 1056");
    reject_entry_edit(&x, X, "[33,7]", "[33,-7]", "shape[1] is -7");
    reject_entry_edit(&x, X, "[33,7]", "[33,7.5]", "not a non-negative integer");
    reject_entry_edit(&x, X, "[33,7]", "[1,1,1,1,1,1,1,33,7]", "rank 9");
    reject_entry_edit(&x, X, "[33,7]", "[4294967296,4294967296,4294967296]", "too many elements");
    reject_entry_edit(&x, X, "[33,7]", "33", "shape is a number");
    reject_entry_edit(&x, X, "[33,7]", "[33,null]", "not a non-negative integer");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\"", "\"x\":{\"dtype\":\"F8\"", "unknown dtype 'F8'");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\"", "\"x\":{\"dtype\":\"f32\"", "unknown dtype");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\"", "\"x\":{\"dtype\":\"F64\"", "needs 1848");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\"", "\"x\":{\"dtype\":32", "not a string");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\",", "\"x\":{", "missing \"dtype\"");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\",", "\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",", "twice");
    reject_edit(&x, "\"x\":{\"dtype\":\"F32\",", "\"x\":{\"extra\":1,\"dtype\":\"F32\",", "unexpected key 'extra'");
    reject_edit(&x, X, "\"x\":[1,2]", "tensor 'x': entry is an array");
    reject_edit(&x, X, "\"x\":null", "not an object");
    /* names */
    char *dup = xasprintf("%s,%s", X, X);
    reject_edit(&x, X, dup, "tensor name 'x' appears twice");
    free(dup);
    reject_edit(&x, "\"x\":{", "\"\xff\":{", "UTF-8");
    reject_edit(&x, "\"x\":{", "\"\xc0\x80\":{", "UTF-8");                   /* overlong NUL */
    reject_edit(&x, "\"x\":{", "\"\xed\xa0\x80\":{", "UTF-8");               /* surrogate */
    reject_edit(&x, "\"x\":{", "\"x\\u0000y\":{", "\\u0000");
    reject_edit(&x, "\"x\":{", "\"x\x01\":{", "control byte 0x01");
    reject_edit(&x, "\"x\":{", "\"x\\ud800\":{", "not valid JSON");        /* lone surrogate escape */
    /* removing a tensor leaves a hole; removing the last leaves trailing bytes */
    char *nox = replace1(x.hdr, ",\"x\":{\"dtype\":\"F32\",\"shape\":[33,7],\"data_offsets\":[21828,22752]}", "");
    reject_hdr(&x, nox, "belong to no tensor");
    free(nox);
    char *noy = replace1(x.hdr, ",\"y\":{\"dtype\":\"F64\",\"shape\":[33,5],\"data_offsets\":[22752,24072]}", "");
    reject_hdr(&x, noy, "1320 trailing bytes");
    free(noy);
    /* metadata */
    reject_edit(&x, "\"kind\":\"kan_linear\"", "\"kind\":5", "metadata 'kind' is a number, not a string");
    reject_edit(&x, "\"kind\":\"kan_linear\"", "\"kind\":{}", "not a string");
    reject_edit(&x, "\"kind\":\"kan_linear\"", "\"kind\":\"a\",\"kind\":\"b\"", "metadata key 'kind' appears twice");
    reject_edit(&x, "\"__metadata__\":{", "\"__metadata__\":{},\"__metadata__\":{", "appears twice");
    char *h = xstrdup(x.hdr);
    char *m = strstr(h, ",\"__metadata__\":");
    cr_assert_not_null(m);
    strcpy(m, ",\"__metadata__\":[\"kind\"]}");
    reject_hdr(&x, h, "\"__metadata__\" is an array, not an object");
    free(h);
    /* not JSON / not an object / garbage around it */
    reject_hdr(&x, "[1,2,3]", "does not start with '{'");
    reject_hdr(&x, "\"{}\"", "does not start with '{'");
    reject_hdr(&x, " {}", "does not start with '{'");
    reject_hdr(&x, "{", "not valid JSON");
    reject_hdr(&x, "{\"a\":}", "not valid JSON");
    reject_hdr(&x, "{}{}", "bytes after the JSON object");
    reject_hdr(&x, "{}", "trailing bytes"); /* valid header, but data nobody owns */
    char *deep = xmalloc(5000);
    strcpy(deep, "{\"a\":");
    for (int i = 0; i < 2000; i++) strcat(deep, "[");
    reject_hdr(&x, deep, "not valid JSON"); /* cJSON's nesting limit, no stack overflow */
    free(deep);
    /* extra bytes at the end of the file */
    unsigned char *b = xmalloc(x.len + 8);
    memcpy(b, x.bytes, x.len);
    memset(b + x.len, 0, 8);
    expect_reject_bytes(x.path, b, x.len + 8, "8 trailing bytes", "appended bytes");
    free(b);
    free_fx(&x);
}

/* Random byte changes in the length field and header: never a crash; a
 * rejection always names the file; an acceptance yields a consistent file. */
Test(safetensors, corrupt_random_header_bytes)
{
    Fx x = load_fx("kan_linear_default.safetensors");
    int iters = 300;
    const char *env = getenv("KANC_ST_FUZZ_ITERS");
    if (env && atoi(env) > 0) iters = atoi(env);
    unsigned char *b = xmalloc(x.len);
    int rejected = 0, total = 0;
    rng_state = 12345;
    for (int it = 0; it < iters; it++) {
        memcpy(b, x.bytes, x.len);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = (it % 10 == 0) ? rnd() % 8 : 8 + rnd() % (x.data_at - 8);
            b[pos] ^= (unsigned char)(1 + rnd() % 255);
        }
        spit(x.path, b, x.len);
        StFile f;
        char err[512];
        total++;
        if (st_open(&f, x.path, err, sizeof err) != 0) {
            rejected++;
            cr_assert_not_null(strstr(err, x.path), "message '%s' does not name the file", err);
            cr_assert_null(f.buf);
        } else {
            touch_all(&f);
            uint64_t end = 0;
            for (int i = 0; i < st_num_tensors(&f); i++) {
                const StTensor *t = st_tensor_at(&f, i);
                cr_assert_leq(t->offset + t->nbytes, f.data_size);
                end += t->nbytes;
            }
            cr_assert_eq(end, f.data_size);
            st_close(&f);
        }
    }
    cr_log_info("random header corruption: %d of %d rejected", rejected, total);
    cr_assert_gt(rejected, total / 2, "only %d of %d corruptions rejected", rejected, total);
    free(b);
    free_fx(&x);
}

Test(safetensors, open_errors_name_the_file)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, "/nonexistent/dir/model.safetensors", err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "/nonexistent/dir/model.safetensors"));
    cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
    char *dir = make_tmpdir();
    cr_assert_eq(st_open(&f, dir, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "not a regular file (a directory)"), "%s", err);
    /* a tiny error buffer is truncated, not overrun; NULL err is allowed */
    char small[8];
    cr_assert_eq(st_open(&f, "/nonexistent/x", small, sizeof small), -1);
    cr_assert_eq(strlen(small), 7);
    cr_assert_eq(st_open(&f, "/nonexistent/x", NULL, 0), -1);
    rm_tree(dir);
}

/* ------------------------------------------------------------------------ */
/* writer errors                                                             */

Test(safetensors, write_rejects_bad_input)
{
    char *dir = make_tmpdir();
    char *path = xasprintf("%s/bad.safetensors", dir);
    float v[2] = {1, 2};
    char err[512];
    struct {
        StEntry e[2];
        int n;
        const char *want;
    } cases[] = {
        {{{"a", ST_F32, 1, {2}, v}, {"a", ST_F32, 1, {2}, v}}, 2, "given twice"},
        {{{"__metadata__", ST_F32, 1, {2}, v}}, 1, "__metadata__"},
        {{{"a", (StDtype)99, 1, {2}, v}}, 1, "invalid dtype"},
        {{{"a", ST_F32, 9, {2}, v}}, 1, "rank 9"},
        {{{"a", ST_F32, -1, {2}, v}}, 1, "rank -1"},
        {{{"a", ST_F32, 1, {-2}, v}}, 1, "out of range"},
        {{{"a", ST_F32, 1, {2}, NULL}}, 1, "no data"},
        {{{NULL, ST_F32, 1, {2}, v}}, 1, "no name"},
        {{{"\xff", ST_F32, 1, {2}, v}}, 1, "UTF-8"},
        {{{"a", ST_F64, 3, {1 << 30, 1 << 30, 1 << 30}, v}}, 1, "too many elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        cr_assert_eq(st_write(path, cases[i].e, cases[i].n, NULL, 0, err, sizeof err), -1, "case %zu", i);
        cr_assert_not_null(strstr(err, path), "case %zu: %s", i, err);
        cr_assert_not_null(strstr(err, cases[i].want), "case %zu: '%s' lacks '%s'", i, err, cases[i].want);
        cr_assert(!file_exists(path), "case %zu created the file", i);
    }
    StEntry ok = {"a", ST_F32, 1, {2}, v};
    StMeta dupm[2] = {{"k", "1"}, {"k", "2"}};
    cr_assert_eq(st_write(path, &ok, 1, dupm, 2, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "given twice"), "%s", err);
    StMeta nullm = {"k", NULL};
    cr_assert_eq(st_write(path, &ok, 1, &nullm, 1, err, sizeof err), -1);
    StMeta badm = {"k", "\xc3"};
    cr_assert_eq(st_write(path, &ok, 1, &badm, 1, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "UTF-8"), "%s", err);
    cr_assert(!file_exists(path));
    cr_assert_eq(count_entries(dir), 0);
    char *nodir = xasprintf("%s/missing/x.safetensors", dir);
    cr_assert_eq(st_write(nodir, &ok, 1, NULL, 0, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, nodir), "%s", err);
    cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
    free(nodir);
    free(path);
    rm_tree(dir);
}

/* ------------------------------------------------------------------------ */
/* atomic writes                                                             */

/* Writes a one-tensor file whose tensor "v" holds version, returns its bytes. */
static unsigned char *version_file(const char *path, double version, size_t *len)
{
    double v[64];
    for (int i = 0; i < 64; i++) v[i] = version;
    StEntry e = {"v", ST_F64, 1, {64}, v};
    StMeta m = {"version", version == 1 ? "1" : "2"};
    char err[512];
    cr_assert_eq(st_write(path, &e, 1, &m, 1, err, sizeof err), 0, "%s", err);
    return slurp(path, len);
}

static void assert_version(const char *path, const char *version)
{
    StFile f;
    char err[512];
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(st_meta(&f, "version"), version);
    double v[64];
    cr_assert_eq(st_read_f64(st_find(&f, "v"), v), 0);
    cr_assert_eq(v[63], atof(version));
    st_close(&f);
}

Test(safetensors, atomic_abort_and_crash_keep_old_version)
{
    char *dir = make_tmpdir();
    char *target = xasprintf("%s/model.safetensors", dir);
    char *other = xasprintf("%s/v2.bin", dir);
    size_t l1, l2;
    unsigned char *v1 = version_file(target, 1, &l1);
    unsigned char *v2 = version_file(other, 2, &l2);
    cr_assert_eq(unlink(other), 0);
    char err[512];

    /* abort half-way */
    AtomicFile af;
    cr_assert_eq(atomic_open(&af, target, err, sizeof err), 0, "%s", err);
    cr_assert(file_exists(af.tmp_path));
    char *tmp = xstrdup(af.tmp_path);
    char *want_tmp = xasprintf("%s.tmp.%ld", target, (long)getpid());
    cr_assert_str_eq(tmp, want_tmp);
    cr_assert_eq(atomic_write(&af, v2, l2 / 2), 0);
    cr_assert_eq(fflush(af.fp), 0);
    assert_version(target, "1");
    atomic_abort(&af);
    atomic_abort(&af); /* idempotent */
    cr_assert(!file_exists(tmp), "temp file left after abort");
    cr_assert_eq(count_entries(dir), 1);
    assert_version(target, "1");
    size_t l;
    unsigned char *now = slurp(target, &l);
    cr_assert(l == l1 && memcmp(now, v1, l1) == 0);
    free(now);

    /* crash half-way: a child writes half, never commits, dies */
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        AtomicFile c;
        char e2[512];
        if (atomic_open(&c, target, e2, sizeof e2)) _exit(3);
        atomic_write(&c, v2, l2 / 2);
        fflush(c.fp);
        _exit(1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char *child_tmp = xasprintf("%s.tmp.%ld", target, (long)pid);
    struct stat st;
    cr_assert_eq(stat(child_tmp, &st), 0, "the crashed writer's temp file should be there");
    cr_assert_eq((size_t)st.st_size, l2 / 2);
    assert_version(target, "1");
    now = slurp(target, &l);
    cr_assert(l == l1 && memcmp(now, v1, l1) == 0);
    free(now);
    /* the stale temp is recognised (its pid is gone) and removed */
    cr_assert_eq(atomic_remove_stale(target), 1);
    cr_assert(!file_exists(child_tmp));
    cr_assert_eq(count_entries(dir), 1);

    /* and a complete write replaces the file */
    cr_assert_eq(atomic_write_file(target, v2, l2, err, sizeof err), 0, "%s", err);
    assert_version(target, "2");
    cr_assert_eq(count_entries(dir), 1);

    free(child_tmp), free(tmp), free(want_tmp), free(v1), free(v2), free(other), free(target);
    rm_tree(dir);
}

Test(safetensors, atomic_write_errors)
{
    char *dir = make_tmpdir();
    char *target = xasprintf("%s/metrics.txt", dir);
    char err[512];
    cr_assert_eq(atomic_write_file(target, "old\n", 4, err, sizeof err), 0, "%s", err);

    /* a write that fails (file size limit: short write, EFBIG) is reported with
     * the path and strerror, and leaves the target and no temp file */
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(2);
        size_t n = 1 << 20;
        char *big = calloc(n, 1);
        char e2[512];
        if (atomic_write_file(target, big, n, e2, sizeof e2) != -1) _exit(3);
        if (!strstr(e2, target) || !strstr(e2, strerror(EFBIG))) {
            fprintf(stderr, "message: %s\n", e2);
            _exit(4);
        }
        /* sticky errors: later writes fail, commit reports the first error */
        AtomicFile af;
        if (atomic_open(&af, target, e2, sizeof e2)) _exit(5);
        atomic_write(&af, big, n);
        if (!strstr(atomic_error(&af), strerror(EFBIG))) _exit(6);
        if (atomic_printf(&af, "more %d\n", 1) != -1) _exit(7);
        if (atomic_commit(&af, e2, sizeof e2) != -1 || !strstr(e2, strerror(EFBIG))) _exit(8);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child died");
    cr_assert_eq(WEXITSTATUS(status), 0, "child check %d failed", WEXITSTATUS(status));
    size_t l;
    char *now = read_file(target, &l);
    cr_assert_str_eq(now, "old\n");
    free(now);
    cr_assert_eq(count_entries(dir), 1, "temp file left after a failed write");

    /* printf-style writing and commit */
    AtomicFile af;
    cr_assert_eq(atomic_open(&af, target, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 3; i++) cr_assert_eq(atomic_printf(&af, "step %d loss %.3f\n", i, 1.0 / (i + 1)), 0);
    cr_assert_str_eq(atomic_error(&af), "");
    cr_assert_eq(atomic_commit(&af, err, sizeof err), 0, "%s", err);
    atomic_abort(&af); /* no-op after commit */
    now = read_file(target, &l);
    cr_assert_str_eq(now, "step 0 loss 1.000\nstep 1 loss 0.500\nstep 2 loss 0.333\n");
    free(now);
    cr_assert_eq(count_entries(dir), 1);

    /* missing directory: path and strerror in the message */
    char *nodir = xasprintf("%s/missing/metrics.txt", dir);
    cr_assert_eq(atomic_write_file(nodir, "x", 1, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, nodir), "%s", err);
    cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
    /* renaming over a directory fails cleanly */
    char *sub = xasprintf("%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0777), 0);
    char *inner = xasprintf("%s/sub/f", dir);
    spit(inner, "x", 1);
    cr_assert_eq(atomic_write_file(sub, "x", 1, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "rename"), "%s", err);
    cr_assert_eq(count_entries(dir), 2, "temp file left after a failed rename");
    unlink(inner);
    rmdir(sub);
    free(inner), free(sub), free(nodir), free(target);
    rm_tree(dir);
}
