/* safetensors.h: read and write safetensors files.
 *
 * Layout (https://github.com/huggingface/safetensors, and the project's
 * shared/reference/safetensors_io.py):
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   UTF-8 JSON object: name -> {"dtype": "F32", "shape": [33, 7],
 *             "data_offsets": [begin, end]}, plus an optional "__metadata__"
 *             object whose values are all strings; padded with spaces
 *   rest      the data section: every tensor's raw little-endian bytes, row
 *             major, at [begin, end) relative to the start of the section
 *
 * Reading: st_open() loads the whole file and validates everything before
 * returning, so that afterwards any StTensor can be read without further
 * checks: the header is a JSON object in valid UTF-8 starting with '{' and
 * followed only by whitespace; names are unique; dtypes are known; ranks are
 * <= ST_MAX_RANK; dims are non-negative integers; end - begin equals
 * numel * dtype size; every tensor lies inside the data section; and, as the
 * safetensors specification requires, the tensors cover the data section
 * exactly: no overlaps, no holes, no trailing bytes. Entry objects may hold
 * only the keys dtype, shape and data_offsets. Any violation is an error
 * whose message starts with the path and says what is wrong.
 *
 * Writing: st_write() produces the same bytes as the reference writer
 * (safetensors_io.save) for the same tensors and metadata: tensors sorted by
 * name, compact JSON with non-ASCII escaped as \uXXXX, "__metadata__" last
 * (omitted when there is none), header padded with spaces to a multiple of 8.
 * The file is replaced atomically (see atomic_file.h).
 *
 * Tensor data is host memory in the dtype's little-endian representation;
 * this module assumes a little-endian host (checked at compile time).
 */
#ifndef KANC_SAFETENSORS_H
#define KANC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_RANK 8
/* Largest header accepted by st_open (as in the Rust safetensors crate). */
#define ST_MAX_HEADER ((uint64_t)100000000)

typedef enum StDtype {
    ST_F64, ST_F32, ST_F16, ST_BF16,
    ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_NDTYPES
} StDtype;

/* "F64", "F32", ... ; "?" for an invalid value. */
const char *st_dtype_name(StDtype d);
/* Bytes per element (8, 4, 2, 2, 8, 4, 2, 1, 1, 1); 0 for an invalid value. */
size_t st_dtype_size(StDtype d);
/* The dtype named s (exact, case-sensitive), or -1 if unknown. */
int st_dtype_from_name(const char *s);

/* One tensor of an open file. All pointers point into the StFile and stay
 * valid until st_close. */
typedef struct StTensor {
    const char *name;
    StDtype dtype;
    int rank;                      /* 0 for a scalar */
    int64_t shape[ST_MAX_RANK];    /* shape[rank..] are 0 */
    int64_t numel;                 /* product of shape (1 for a scalar) */
    size_t nbytes;                 /* numel * st_dtype_size(dtype) */
    const void *data;              /* nbytes bytes, little-endian, NOT aligned:
                                      read with memcpy or st_read_* */
    uint64_t offset;               /* begin of data_offsets */
} StTensor;

/* A metadata pair. In an StFile both strings are owned by the file; for
 * st_write they are the caller's. */
typedef struct StMeta {
    const char *key;
    const char *value;
} StMeta;

typedef struct StFile {
    char *path;
    unsigned char *buf;            /* the whole file */
    size_t size;
    uint64_t header_len;           /* N */
    const unsigned char *data;     /* buf + 8 + N */
    size_t data_size;
    int ntensors;
    StTensor *tensors;             /* sorted by name (strcmp) */
    int nmeta;
    StMeta *meta;                  /* in header order */
} StFile;

/* Read and validate the file at path. Returns 0, or -1 with a message in err
 * ("path: what is wrong"; truncated to errlen) and *f zeroed. On success
 * release with st_close. */
int st_open(StFile *f, const char *path, char *err, size_t errlen);

/* Free everything st_open allocated and zero *f. Safe on a zeroed StFile and
 * after a failed st_open; idempotent. */
void st_close(StFile *f);

/* The tensor called name, or NULL (binary search). */
const StTensor *st_find(const StFile *f, const char *name);

/* Iteration: st_num_tensors(f) tensors, sorted by name; index 0..n-1. */
int st_num_tensors(const StFile *f);
const StTensor *st_tensor_at(const StFile *f, int i);

/* Metadata: value of key, or NULL if absent. */
const char *st_meta(const StFile *f, const char *key);
/* Iteration over metadata in header order; index 0..n-1. */
int st_num_meta(const StFile *f);
const StMeta *st_meta_at(const StFile *f, int i);

/* Conversion readers: copy t's numel elements into dst (numel slots),
 * converting from any dtype.
 *  - st_read_f32 / st_read_f64 never fail (return 0): floats are rounded to
 *    nearest (F64 -> f32 may overflow to inf), integers converted as by a C
 *    cast, BOOL gives 0 or 1 (any non-zero byte is true).
 *  - st_read_i64 / st_read_i32 return 0, or -1 if some element is not exactly
 *    representable (a float that is NaN, infinite, not an integer or out of
 *    range; an integer out of range); dst is then partly written. */
int st_read_f32(const StTensor *t, float *dst);
int st_read_f64(const StTensor *t, double *dst);
int st_read_i64(const StTensor *t, int64_t *dst);
int st_read_i32(const StTensor *t, int32_t *dst);

/* Formats t's shape as "[33, 7]" ("[]" for a scalar) into buf; returns buf. */
char *st_shape_str(const StTensor *t, char *buf, size_t len);

/* Scalar conversions used by the readers, exposed for writers of F16/BF16.
 * The narrowing ones round to nearest, ties to even; NaN stays NaN. */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float x);
uint16_t st_f32_to_bf16(float x);

/* A tensor to write. data holds numel * dtype-size bytes in the dtype's
 * representation (may be NULL when numel is 0). */
typedef struct StEntry {
    const char *name;
    StDtype dtype;
    int rank;
    int64_t shape[ST_MAX_RANK];
    const void *data;
} StEntry;

/* Atomically write a safetensors file holding the n entries (written sorted by
 * name, whatever their order in the array) and the nmeta metadata pairs (in
 * the given order; meta may be NULL when nmeta is 0). Names and metadata must
 * be valid UTF-8; names unique and not "__metadata__"; metadata keys unique;
 * ranks 0..ST_MAX_RANK; dims >= 0. Returns 0, or -1 with "path: ..." in err;
 * on error the target file is unchanged. */
int st_write(const char *path, const StEntry *entries, int n, const StMeta *meta, int nmeta,
             char *err, size_t errlen);

#endif
