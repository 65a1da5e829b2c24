/* safetensors.c: validating safetensors reader, reference-compatible atomic writer. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include "atomic_file.h"
#include "strbuf.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define JSON_MAX_INT 9007199254740992.0

/* ------------------------------------------------------------------------ */
/* dtypes                                                                    */

static const char *const DTYPE_NAMES[ST_NDTYPES] = {
    "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
};
static const size_t DTYPE_SIZES[ST_NDTYPES] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};

const char *st_dtype_name(StDtype d)
{
    return (unsigned)d < ST_NDTYPES ? DTYPE_NAMES[d] : "?";
}

size_t st_dtype_size(StDtype d)
{
    return (unsigned)d < ST_NDTYPES ? DTYPE_SIZES[d] : 0;
}

int st_dtype_from_name(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, DTYPE_NAMES[i]) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* scalar conversions                                                        */

static inline uint32_t f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return u2f(f2u(v) | sign);
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13)); /* inf / NaN (payload kept) */
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

float st_bf16_to_f32(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

uint16_t st_f32_to_f16(float x)
{
    /* After F. Giesen's float_to_half_fast3_rtne: round to nearest even. */
    uint32_t u = f2u(x);
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= (127u + 16) << 23) {               /* >= 65536, inf or NaN */
        o = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (u < (113u << 23)) {              /* < 2^-14: subnormal half or zero */
        /* adding 0.5 aligns the value so that its ulp is 2^-24 (the half
         * subnormal step); the FPU does the rounding to nearest even. */
        float f = u2f(u) + 0.5f;
        o = (uint16_t)(f2u(f) - f2u(0.5f));
    } else {
        uint32_t mant_odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu; /* rebias, round half up ... */
        u += mant_odd;                              /* ... to even */
        o = (uint16_t)(u >> 13);                    /* a carry into exp 31 gives inf */
    }
    return (uint16_t)(o | (sign >> 16));
}

uint16_t st_f32_to_bf16(float x)
{
    uint32_t u = f2u(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------------------ */
/* conversion readers                                                        */

/* Element i of unaligned little-endian data p. */
#define DEFINE_LOAD(T)                                                                      \
    static inline T ld_##T(const unsigned char *p, int64_t i)                               \
    {                                                                                       \
        T v;                                                                                \
        memcpy(&v, p + (size_t)i * sizeof(T), sizeof(T));                                   \
        return v;                                                                           \
    }
DEFINE_LOAD(double)
DEFINE_LOAD(float)
DEFINE_LOAD(uint16_t)
DEFINE_LOAD(int64_t)
DEFINE_LOAD(int32_t)
DEFINE_LOAD(int16_t)
#define LD(T, p, i) ld_##T(p, i)

#define DEFINE_FLOAT_READER(fn, T)                                                          \
    int fn(const StTensor *t, T *dst)                                                       \
    {                                                                                       \
        const unsigned char *p = t->data;                                                   \
        int64_t n = t->numel;                                                               \
        switch (t->dtype) {                                                                 \
        case ST_F64: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(double, p, i); break;   \
        case ST_F32: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(float, p, i); break;    \
        case ST_F16: for (int64_t i = 0; i < n; i++) dst[i] = (T)st_f16_to_f32(LD(uint16_t, p, i)); break;  \
        case ST_BF16: for (int64_t i = 0; i < n; i++) dst[i] = (T)st_bf16_to_f32(LD(uint16_t, p, i)); break; \
        case ST_I64: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(int64_t, p, i); break;  \
        case ST_I32: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(int32_t, p, i); break;  \
        case ST_I16: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(int16_t, p, i); break;  \
        case ST_I8: for (int64_t i = 0; i < n; i++) dst[i] = (T)(int8_t)p[i]; break;        \
        case ST_U8: for (int64_t i = 0; i < n; i++) dst[i] = (T)p[i]; break;                \
        case ST_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = (T)(p[i] != 0); break;       \
        default: return -1;                                                                 \
        }                                                                                   \
        return 0;                                                                           \
    }

DEFINE_FLOAT_READER(st_read_f32, float)
DEFINE_FLOAT_READER(st_read_f64, double)

/* Integer destinations: exact conversions only. FLO/FHI_EXCL bound the
 * doubles that convert, ILO/IHI the integers. */
#define FLOAT_TO_INT(T, v, FLO, FHI_EXCL)                                                   \
    do {                                                                                    \
        double d_ = (v);                                                                    \
        if (!(d_ >= (FLO) && d_ < (FHI_EXCL))) return -1; /* also NaN */                   \
        T r_ = (T)d_;                                                                       \
        if ((double)r_ != d_) return -1; /* not an integer */                              \
        dst[i] = r_;                                                                        \
    } while (0)
#define INT_TO_INT(T, v, ILO, IHI)                                                          \
    do {                                                                                    \
        int64_t w_ = (v);                                                                   \
        if (w_ < (ILO) || w_ > (IHI)) return -1;                                            \
        dst[i] = (T)w_;                                                                     \
    } while (0)

#define DEFINE_INT_READER(fn, T, FLO, FHI_EXCL, ILO, IHI)                                  \
    int fn(const StTensor *t, T *dst)                                                       \
    {                                                                                       \
        const unsigned char *p = t->data;                                                   \
        int64_t n = t->numel;                                                               \
        switch (t->dtype) {                                                                 \
        case ST_F64: for (int64_t i = 0; i < n; i++) FLOAT_TO_INT(T, LD(double, p, i), FLO, FHI_EXCL); break; \
        case ST_F32: for (int64_t i = 0; i < n; i++) FLOAT_TO_INT(T, LD(float, p, i), FLO, FHI_EXCL); break;  \
        case ST_F16: for (int64_t i = 0; i < n; i++) FLOAT_TO_INT(T, st_f16_to_f32(LD(uint16_t, p, i)), FLO, FHI_EXCL); break; \
        case ST_BF16: for (int64_t i = 0; i < n; i++) FLOAT_TO_INT(T, st_bf16_to_f32(LD(uint16_t, p, i)), FLO, FHI_EXCL); break; \
        case ST_I64: for (int64_t i = 0; i < n; i++) INT_TO_INT(T, LD(int64_t, p, i), ILO, IHI); break; \
        case ST_I32: for (int64_t i = 0; i < n; i++) INT_TO_INT(T, LD(int32_t, p, i), ILO, IHI); break; \
        case ST_I16: for (int64_t i = 0; i < n; i++) dst[i] = (T)LD(int16_t, p, i); break;  \
        case ST_I8: for (int64_t i = 0; i < n; i++) dst[i] = (T)(int8_t)p[i]; break;        \
        case ST_U8: for (int64_t i = 0; i < n; i++) dst[i] = (T)p[i]; break;                \
        case ST_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = (T)(p[i] != 0); break;       \
        default: return -1;                                                                 \
        }                                                                                   \
        return 0;                                                                           \
    }

DEFINE_INT_READER(st_read_i64, int64_t, -0x1p63, 0x1p63, INT64_MIN, INT64_MAX)
DEFINE_INT_READER(st_read_i32, int32_t, -0x1p31, 0x1p31, INT32_MIN, INT32_MAX)

char *st_shape_str(const StTensor *t, char *buf, size_t len)
{
    if (!len) return buf;
    size_t at = 0;
    buf[0] = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->rank && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
    return buf;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

typedef struct Ctx {
    const char *path;
    char *err;
    size_t errlen;
} Ctx;

static int fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Ctx *c, const char *fmt, ...)
{
    if (!c->err || !c->errlen) return -1;
    int n = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (n < 0 || (size_t)n >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A printable, bounded rendering of an untrusted string for messages. */
typedef struct Shown { char s[100]; } Shown;

static Shown show_n(const char *s, size_t n)
{
    Shown r;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (o + 8 >= sizeof r.s) {
            memcpy(r.s + o, "...", 4);
            return r;
        }
        if (ch >= 0x20 && ch != 0x7f && ch != '\\') r.s[o++] = (char)ch; /* UTF-8 passes through */
        else o += (size_t)snprintf(r.s + o, sizeof r.s - o, "\\x%02x", ch);
    }
    r.s[o] = 0;
    return r;
}

static Shown show(const char *s)
{
    return show_n(s, strlen(s));
}

static const char *json_type(const cJSON *v)
{
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* Reads the whole regular file into a fresh buffer. On failure returns -1
 * with why set ("not a regular file (a FIFO)", or errno's text; ENOMEM when
 * it does not fit in memory). */
static int load_file(const char *path, unsigned char **out, size_t *outlen, char *why, size_t whylen)
{
    int fd = open_regular(path, why, whylen);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) goto fail_fd;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        errno = ENOMEM;
        goto fail_fd;
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            unsigned char *nb = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                errno = ENOMEM;
                goto fail_fd;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            errno = e;
            goto fail_fd;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *out = buf;
    *outlen = n;
    return 0;
fail_fd:;
    int e = errno;
    close(fd);
    snprintf(why, whylen, "%s", strerror(e));
    return -1;
}

/* Offset of the first byte that is not part of valid UTF-8 (no overlongs,
 * surrogates or code points above U+10FFFF), or -1 if all are valid. */
static long long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else return (long long)i;
        if (n - i < len) return (long long)i;
        if (s[i + 1] < lo || s[i + 1] > hi) return (long long)i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return (long long)i;
        i += len;
    }
    return -1;
}

/* JSON lexical checks cJSON does not make and C strings need: no raw control
 * bytes (only whitespace outside strings, nothing inside), no \u0000 escapes. */
static int check_json_bytes(Ctx *c, const unsigned char *h, size_t n)
{
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = h[i];
        if (ch < 0x20) {
            if (in_str) return fail(c, "header has a raw control byte 0x%02x inside a string at header byte %zu", ch, i);
            if (ch != '\t' && ch != '\n' && ch != '\r')
                return fail(c, "header has a control byte 0x%02x at header byte %zu (corrupt header?)", ch, i);
        }
        if (in_str) {
            if (ch == '\\') {
                if (n - i > 5 && memcmp(h + i + 1, "u0000", 5) == 0)
                    return fail(c, "header has an escaped NUL (\\u0000) in a string at header byte %zu", i);
                i++; /* skip the escaped character */
            } else if (ch == '"') {
                in_str = 0;
            }
        } else if (ch == '"') {
            in_str = 1;
        }
    }
    return 0;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= JSON_MAX_INT)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

/* Describes a JSON value that should have been a non-negative integer. */
static const char *describe_bad_uint(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsNumber(v)) snprintf(buf, len, "%.17g", v->valuedouble);
    else snprintf(buf, len, "%s", json_type(v));
    return buf;
}

static char *dims_str(const int64_t *shape, int rank, char *buf, size_t len)
{
    StTensor t = {.rank = rank};
    memcpy(t.shape, shape, sizeof t.shape);
    return st_shape_str(&t, buf, len);
}

/* Parses one tensor entry into *t (t->name already set). */
static int parse_entry(Ctx *c, const StFile *f, const cJSON *e, StTensor *t)
{
    Shown nm = show(t->name);
    if (!cJSON_IsObject(e)) return fail(c, "tensor '%s': entry is %s, not an object", nm.s, json_type(e));
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *m = e->child; m; m = m->next) {
        const cJSON **slot = NULL;
        if (strcmp(m->string, "dtype") == 0) slot = &dtype;
        else if (strcmp(m->string, "shape") == 0) slot = &shape;
        else if (strcmp(m->string, "data_offsets") == 0) slot = &offs;
        else
            return fail(c, "tensor '%s': unexpected key '%s' (an entry has only dtype, shape, data_offsets)", nm.s,
                        show(m->string).s);
        if (*slot) return fail(c, "tensor '%s': key '%s' appears twice", nm.s, m->string);
        *slot = m;
    }
    if (!dtype) return fail(c, "tensor '%s': missing \"dtype\"", nm.s);
    if (!shape) return fail(c, "tensor '%s': missing \"shape\"", nm.s);
    if (!offs) return fail(c, "tensor '%s': missing \"data_offsets\"", nm.s);

    if (!cJSON_IsString(dtype)) return fail(c, "tensor '%s': dtype is %s, not a string", nm.s, json_type(dtype));
    int d = st_dtype_from_name(dtype->valuestring);
    if (d < 0)
        return fail(c, "tensor '%s': unknown dtype '%s' (expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
                    nm.s, show(dtype->valuestring).s);
    t->dtype = (StDtype)d;

    if (!cJSON_IsArray(shape)) return fail(c, "tensor '%s': shape is %s, not an array", nm.s, json_type(shape));
    int rank = cJSON_GetArraySize(shape);
    if (rank > ST_MAX_RANK) return fail(c, "tensor '%s': rank %d exceeds the maximum %d", nm.s, rank, ST_MAX_RANK);
    t->rank = rank;
    uint64_t numel = 1;
    int overflow = 0;
    int k = 0;
    for (const cJSON *s = shape->child; s; s = s->next, k++) {
        uint64_t dim;
        char b[64];
        if (!json_uint(s, &dim))
            return fail(c, "tensor '%s': shape[%d] is %s, not a non-negative integer", nm.s, k,
                        describe_bad_uint(s, b, sizeof b));
        t->shape[k] = (int64_t)dim;
        if (__builtin_mul_overflow(numel, dim, &numel)) overflow = 1;
    }
    char shp[200];
    dims_str(t->shape, rank, shp, sizeof shp);
    uint64_t need;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), &need) || need > INT64_MAX)
        return fail(c, "tensor '%s': shape %s has too many elements (overflows 64 bits)", nm.s, shp);

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return fail(c, "tensor '%s': data_offsets is %s, not an array [begin, end]", nm.s,
                    cJSON_IsArray(offs) ? "an array of the wrong length" : json_type(offs));
    uint64_t begin, end;
    char b[64];
    if (!json_uint(offs->child, &begin))
        return fail(c, "tensor '%s': data_offsets begin is %s, not a non-negative integer", nm.s,
                    describe_bad_uint(offs->child, b, sizeof b));
    if (!json_uint(offs->child->next, &end))
        return fail(c, "tensor '%s': data_offsets end is %s, not a non-negative integer", nm.s,
                    describe_bad_uint(offs->child->next, b, sizeof b));
    if (begin > end)
        return fail(c, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] begin after end", nm.s, begin, end);
    if (end > f->data_size)
        return fail(c, "tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] end past the data (%zu bytes); file truncated?",
                    nm.s, begin, end, f->data_size);
    if (end - begin != need)
        return fail(c, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes but %s %s needs %" PRIu64
                    " (%" PRIu64 " elements x %zu bytes)",
                    nm.s, begin, end, end - begin, st_dtype_name(t->dtype), shp, need, numel, st_dtype_size(t->dtype));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)need;
    t->offset = begin;
    t->data = f->data + begin;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int parse_metadata(Ctx *c, StFile *f, const cJSON *m)
{
    if (!cJSON_IsObject(m)) return fail(c, "\"__metadata__\" is %s, not an object of strings", json_type(m));
    int n = cJSON_GetArraySize(m);
    f->meta = xcalloc((size_t)n ? (size_t)n : 1, sizeof *f->meta);
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return fail(c, "metadata '%s' is %s, not a string", show(kv->string).s, json_type(kv));
        f->meta[f->nmeta].key = xstrdup(kv->string);
        f->meta[f->nmeta].value = xstrdup(kv->valuestring);
        f->nmeta++;
    }
    const char **keys = xmalloc(((size_t)n ? (size_t)n : 1) * sizeof *keys);
    for (int i = 0; i < n; i++) keys[i] = f->meta[i].key;
    qsort(keys, (size_t)n, sizeof *keys, cmp_meta_key);
    for (int i = 1; i < n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            fail(c, "metadata key '%s' appears twice", show(keys[i]).s);
            free(keys);
            return -1;
        }
    free(keys);
    return 0;
}

/* Tensors must tile the data section: sorted by offset, each begins where the
 * previous ended, and the last ends at the end of the section. */
static int check_coverage(Ctx *c, const StFile *f)
{
    const StTensor **by = xmalloc(((size_t)f->ntensors ? (size_t)f->ntensors : 1) * sizeof *by);
    for (int i = 0; i < f->ntensors; i++) by[i] = &f->tensors[i];
    qsort(by, (size_t)f->ntensors, sizeof *by, cmp_tensor_offset);
    uint64_t at = 0;
    const StTensor *prev = NULL;
    int rc = 0;
    for (int i = 0; i < f->ntensors && !rc; i++) {
        const StTensor *t = by[i];
        if (t->offset < at)
            rc = fail(c, "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64 "] overlap in the data",
                      show(prev->name).s, prev->offset, prev->offset + prev->nbytes, show(t->name).s, t->offset,
                      t->offset + t->nbytes);
        else if (t->offset > at)
            rc = fail(c, "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (a hole before '%s')", at, t->offset,
                      show(t->name).s);
        at = t->offset + t->nbytes;
        prev = t;
    }
    if (!rc && at != f->data_size)
        rc = fail(c, "the data section has %zu bytes but the tensors end at %" PRIu64 "; %" PRIu64 " trailing bytes belong to no tensor",
                  f->data_size, at, (uint64_t)f->data_size - at);
    free(by);
    return rc;
}

static int parse_header(Ctx *c, StFile *f)
{
    if (f->size < 8)
        return fail(c, "file is %zu bytes, too short for the 8-byte header length (not a safetensors file, or truncated)",
                    f->size);
    uint64_t n;
    memcpy(&n, f->buf, 8);
    size_t avail = f->size - 8;
    if (n == 0) return fail(c, "header length is 0 (not a safetensors file?)");
    if (n > ST_MAX_HEADER)
        return fail(c, "header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit (corrupt length field, or not a safetensors file)",
                    n, ST_MAX_HEADER);
    if (n > avail)
        return fail(c, "header length %" PRIu64 " runs past the end of the file (%zu bytes follow the length field); file truncated?",
                    n, avail);
    f->header_len = n;
    f->data = f->buf + 8 + n;
    f->data_size = avail - (size_t)n;

    const unsigned char *h = f->buf + 8;
    if (h[0] != '{') return fail(c, "header does not start with '{' (not a safetensors file?)");
    long long bad = utf8_invalid_at(h, (size_t)n);
    if (bad >= 0) return fail(c, "header is not valid UTF-8 (byte 0x%02x at header byte %lld)", h[bad], bad);
    if (check_json_bytes(c, h, (size_t)n)) return -1;

    /* cJSON gets a NUL-terminated copy so that nothing can read past it. */
    char *text = xmalloc((size_t)n + 1);
    memcpy(text, h, (size_t)n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    int rc = 0;
    if (!root) {
        size_t at = (end && end >= text && end <= text + n) ? (size_t)(end - text) : 0;
        rc = fail(c, "header is not valid JSON (error at header byte %zu, near '%s')", at,
                  show_n(text + at, (size_t)n - at < 24 ? (size_t)n - at : 24).s);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = fail(c, "header is %s, not a JSON object", json_type(root));
        goto out;
    }
    for (const char *p = end; p < text + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = fail(c, "header has bytes after the JSON object, at header byte %td (wrong header length?)", p - text);
            goto out;
        }

    int count = cJSON_GetArraySize(root);
    f->tensors = xcalloc((size_t)count ? (size_t)count : 1, sizeof *f->tensors);
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (meta) {
                rc = fail(c, "\"__metadata__\" appears twice");
                goto out;
            }
            meta = e;
            if ((rc = parse_metadata(c, f, e))) goto out;
            continue;
        }
        StTensor *t = &f->tensors[f->ntensors++];
        t->name = xstrdup(e->string);
        if ((rc = parse_entry(c, f, e, t))) goto out;
    }
    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < f->ntensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            rc = fail(c, "tensor name '%s' appears twice in the header", show(f->tensors[i].name).s);
            goto out;
        }
    rc = check_coverage(c, f);
out:
    cJSON_Delete(root);
    free(text);
    return rc;
}

int st_open(StFile *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    Ctx c = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = 0;
    if (!path) return fail(&c, "no path given");
    char why[256];
    if (load_file(path, &f->buf, &f->size, why, sizeof why) != 0) return fail(&c, "cannot read: %s", why);
    f->path = xstrdup(path);
    if (parse_header(&c, f) != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(StFile *f)
{
    if (!f) return;
    for (int i = 0; i < f->ntensors; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name)
{
    int lo = 0, hi = f->ntensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int r = strcmp(name, f->tensors[mid].name);
        if (r == 0) return &f->tensors[mid];
        if (r < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int st_num_tensors(const StFile *f) { return f->ntensors; }

const StTensor *st_tensor_at(const StFile *f, int i)
{
    return i >= 0 && i < f->ntensors ? &f->tensors[i] : NULL;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

int st_num_meta(const StFile *f) { return f->nmeta; }

const StMeta *st_meta_at(const StFile *f, int i)
{
    return i >= 0 && i < f->nmeta ? &f->meta[i] : NULL;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

/* Appends s as a JSON string exactly as Python's json.dumps (ensure_ascii)
 * writes it. Returns -1 if s is not valid UTF-8. */
static int json_string(StrBuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    if (utf8_invalid_at(u, n) >= 0) return -1;
    sb_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if (c < 0xe0) {
            cp = ((c & 0x1fu) << 6) | (u[i + 1] & 0x3fu);
            i += 2;
        } else if (c < 0xf0) {
            cp = ((c & 0x0fu) << 12) | ((u[i + 1] & 0x3fu) << 6) | (u[i + 2] & 0x3fu);
            i += 3;
        } else {
            cp = ((c & 0x07u) << 18) | ((u[i + 1] & 0x3fu) << 12) | ((u[i + 2] & 0x3fu) << 6) | (u[i + 3] & 0x3fu);
            i += 4;
        }
        switch (cp) {
        case '"': sb_puts(b, "\\\""); continue;
        case '\\': sb_puts(b, "\\\\"); continue;
        case '\n': sb_puts(b, "\\n"); continue;
        case '\r': sb_puts(b, "\\r"); continue;
        case '\t': sb_puts(b, "\\t"); continue;
        case '\b': sb_puts(b, "\\b"); continue;
        case '\f': sb_puts(b, "\\f"); continue;
        default: break;
        }
        if (cp >= 0x20 && cp <= 0x7e) {
            char ch = (char)cp;
            sb_append(b, &ch, 1);
        } else if (cp < 0x10000) {
            sb_printf(b, "\\u%04x", cp);
        } else {
            uint32_t v = cp - 0x10000;
            sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ffu));
        }
    }
    sb_append(b, "\"", 1);
    return 0;
}

typedef struct NameIdx {
    const char *name;
    int idx;
} NameIdx;

static int cmp_name_idx(const void *a, const void *b)
{
    return strcmp(((const NameIdx *)a)->name, ((const NameIdx *)b)->name);
}

int st_write(const char *path, const StEntry *entries, int n, const StMeta *meta, int nmeta, char *err,
             size_t errlen)
{
    Ctx c = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = 0;
    if (!path || !*path) return fail(&c, "no path given");
    if (n < 0 || (n > 0 && !entries)) return fail(&c, "bad tensor list (n = %d)", n);
    if (nmeta < 0 || (nmeta > 0 && !meta)) return fail(&c, "bad metadata list (nmeta = %d)", nmeta);

    uint64_t *sizes = xmalloc(((size_t)n ? (size_t)n : 1) * sizeof *sizes);
    int *order = xmalloc(((size_t)n ? (size_t)n : 1) * sizeof *order);
    StrBuf h = {0};
    int rc = 0;

    for (int i = 0; i < n && !rc; i++) {
        const StEntry *e = &entries[i];
        if (!e->name) {
            rc = fail(&c, "tensor #%d has no name", i);
            break;
        }
        Shown nm = show(e->name);
        if (strcmp(e->name, "__metadata__") == 0) rc = fail(&c, "a tensor cannot be called \"__metadata__\"");
        else if ((unsigned)e->dtype >= ST_NDTYPES) rc = fail(&c, "tensor '%s': invalid dtype %d", nm.s, (int)e->dtype);
        else if (e->rank < 0 || e->rank > ST_MAX_RANK)
            rc = fail(&c, "tensor '%s': rank %d is not in 0..%d", nm.s, e->rank, ST_MAX_RANK);
        if (rc) break;
        uint64_t numel = 1;
        int overflow = 0;
        for (int k = 0; k < e->rank; k++) {
            if (e->shape[k] < 0 || (double)e->shape[k] > JSON_MAX_INT) {
                rc = fail(&c, "tensor '%s': shape[%d] = %" PRId64 " is out of range", nm.s, k, e->shape[k]);
                break;
            }
            if (__builtin_mul_overflow(numel, (uint64_t)e->shape[k], &numel)) overflow = 1;
        }
        if (rc) break;
        if (overflow || __builtin_mul_overflow(numel, (uint64_t)st_dtype_size(e->dtype), &sizes[i]) ||
            sizes[i] > (uint64_t)JSON_MAX_INT)
            rc = fail(&c, "tensor '%s': too many elements", nm.s);
        else if (sizes[i] > 0 && !e->data) rc = fail(&c, "tensor '%s': no data", nm.s);
    }
    if (rc) goto out;

    NameIdx *byname = xmalloc(((size_t)n ? (size_t)n : 1) * sizeof *byname);
    for (int i = 0; i < n; i++) byname[i] = (NameIdx){entries[i].name, i};
    qsort(byname, (size_t)n, sizeof *byname, cmp_name_idx);
    for (int i = 0; i < n; i++) order[i] = byname[i].idx;
    free(byname);
    for (int i = 1; i < n; i++)
        if (strcmp(entries[order[i - 1]].name, entries[order[i]].name) == 0) {
            rc = fail(&c, "tensor name '%s' given twice", show(entries[order[i]].name).s);
            goto out;
        }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value) {
            rc = fail(&c, "metadata #%d has a NULL key or value", i);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(meta[i].key, meta[j].key) == 0) {
                rc = fail(&c, "metadata key '%s' given twice", show(meta[i].key).s);
                goto out;
            }
    }

    /* header JSON, byte-compatible with json.dumps(header, separators=(",", ":")) */
    uint64_t off = 0;
    sb_append(&h, "{", 1);
    for (int k = 0; k < n; k++) {
        const StEntry *e = &entries[order[k]];
        if (k) sb_append(&h, ",", 1);
        if (json_string(&h, e->name)) {
            rc = fail(&c, "tensor name '%s' is not valid UTF-8", show(e->name).s);
            goto out;
        }
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e->dtype));
        for (int d = 0; d < e->rank; d++) sb_printf(&h, d ? ",%" PRId64 : "%" PRId64, e->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + sizes[order[k]]);
        off += sizes[order[k]];
    }
    if (nmeta > 0) {
        sb_puts(&h, n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_append(&h, ",", 1);
            if (json_string(&h, meta[i].key)) {
                rc = fail(&c, "metadata key '%s' is not valid UTF-8", show(meta[i].key).s);
                goto out;
            }
            sb_append(&h, ":", 1);
            if (json_string(&h, meta[i].value)) {
                rc = fail(&c, "metadata '%s' value is not valid UTF-8", show(meta[i].key).s);
                goto out;
            }
        }
        sb_append(&h, "}", 1);
    }
    sb_append(&h, "}", 1);
    while (h.n % 8) sb_append(&h, " ", 1);
    if (h.n > ST_MAX_HEADER) {
        rc = fail(&c, "header would be %zu bytes, over the %" PRIu64 "-byte limit readers accept", h.n, ST_MAX_HEADER);
        goto out;
    }

    AtomicFile af;
    if (atomic_open(&af, path, err, errlen)) {
        rc = -1;
        goto out;
    }
    uint64_t hlen = h.n;
    atomic_write(&af, &hlen, 8);
    atomic_write(&af, h.s, h.n);
    for (int k = 0; k < n; k++) atomic_write(&af, entries[order[k]].data, (size_t)sizes[order[k]]);
    rc = atomic_commit(&af, err, errlen);
out:
    free(h.s);
    free(sizes);
    free(order);
    return rc;
}
