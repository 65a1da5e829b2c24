/* artifact.h: the CUDA artifact: one cubin that holds a whole training step and its plan.
 *
 * `kanc MODEL.kdl -o step.cubin` compiles the model for training, generates
 * the CUDA source of the step (codegen_cuda.h), appends the plan as a JSON
 * document in a device array,
 *
 *     extern "C" __device__ const unsigned char kanc_plan[N] = "KPZ1...";
 *
 * and compiles it with NVRTC, so the plan lands in the cubin's ELF data (the
 * section .nv.global.init, symbol kanc_plan). The array holds the JSON packed
 * (artifact_pack_plan): a 1 MB string literal would cost NVRTC ~190 MB and
 * 1.4 s at the GPT-2-small-sized KAN, its 58 KB zlib stream ~10 MB. The cubin alone is the artifact:
 * the runtime reads the plan back by parsing the ELF file (no GPU, no CUDA
 * library needed), rebuilds the identical graph from the model source and
 * hyperparameters it records, checks the rebuilt plan against it, and loads
 * the cubin instead of compiling. docs/cuda.md documents the JSON fields.
 *
 * Every offset and size read from the file is checked against the file: a
 * truncated or corrupt cubin is an error message, never an out-of-bounds read.
 */
#ifndef KANC_ARTIFACT_H
#define KANC_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "codegen_cuda.h"
#include "config.h"
#include "frontend.h"
#include "plan.h"

#define ARTIFACT_FORMAT "kanc-step"
#define ARTIFACT_VERSION 2
#define ARTIFACT_SYMBOL "kanc_plan"

/* what the cubin says about one kernel (its .nv.info attributes and sections) */
typedef struct {
    char name[128];
    int regs;              /* EIATTR_REGCOUNT; -1 if absent */
    int frame_bytes;       /* EIATTR_FRAME_SIZE (per-thread local memory); -1 if absent */
    int max_stack;         /* EIATTR_MAX_STACK_SIZE; -1 if absent */
    int max_threads;       /* EIATTR_MAX_THREADS (launch bounds) product; 0 if absent */
    int64_t static_smem;   /* size of .nv.shared.<kernel> (static __shared__, plus the 1 KiB
                              the toolchain reserves on sm_80+); 0 if none */
    int64_t code_bytes;    /* size of .text.<kernel> */
} ArtifactKernel;

typedef struct Artifact {
    char *path;
    unsigned char *data;   /* the whole cubin */
    size_t size;
    int elf_sm;            /* compute capability x 10 from the ELF header flags (0: unknown) */
    char *json;            /* the embedded plan, NUL-terminated */
    cJSON *plan;           /* parsed */
    int n_kernels;
    ArtifactKernel *kernels;
} Artifact;

/* Reads and validates a cubin (file or memory; label names it in messages).
   Returns 0, or -1 with a message in err (not an ELF file, not a CUDA cubin,
   truncated, an offset outside the file, no kanc_plan, a plan that is not a
   kanc plan of a version this build reads). */
int artifact_read(Artifact *a, const char *path, char *err, size_t errlen);
int artifact_parse(Artifact *a, const void *data, size_t size, const char *label, char *err,
                   size_t errlen);
void artifact_free(Artifact *a);

/* 1 if path names a cubin by its name (.cubin) or its first bytes (an ELF file) */
int artifact_is_cubin(const char *path);

/* Plan fields */
const char *artifact_str(const Artifact *a, const char *key);      /* NULL if absent */
double artifact_num(const Artifact *a, const char *key, double def);

/* The model the artifact was compiled from: its source (owned by a), the
   path it was compiled from, and its resolved hyperparameters as overrides
   (appended to cs, soft = 0) that rebuild the identical graph. */
const char *artifact_model_source(const Artifact *a, const char **model_path);
void artifact_model_sets(const Artifact *a, ConfigSets *cs);

/* Checks that plan p (rebuilt from the artifact's model) is the one the
   cubin was compiled for: graph fingerprint, arena and workspace sizes, the
   parameter and buffer table, every value's offset. 0, or -1 naming the first
   difference. */
int artifact_check_plan(const Artifact *a, const Plan *p, char *err, size_t errlen);

/* The launch list recorded in the artifact (prog->source is NULL). */
int artifact_program(const Artifact *a, const Plan *p, CudaProgram *prog, char *err, size_t errlen);
/* The compute capability x 10 the cubin was built for (its "arch", else the ELF flags; 0: unknown). */
int artifact_sm(const Artifact *a);


/* kanrun info: the plan and the kernels' resources, for humans. */
void artifact_print_info(const Artifact *a, FILE *f);

/* ---- writing (kanc -o) ---- */

typedef struct {
    const char *model_path;   /* as given */
    const char *source;       /* the model's text */
    const KdlParams *params;  /* resolved hyperparameters */
    const char *tokenizer;    /* "bytes", "gpt2:DIR", ... */
    int sm;                   /* target, e.g. 90 */
} ArtifactMeta;

/* The plan JSON (caller frees). */
char *artifact_plan_json(const Plan *p, const CudaProgram *prog, const ArtifactMeta *meta);
/* The plan as the cubin stores it: "KPZ1", the JSON's length in bytes (u64,
   little-endian), the JSON's zlib stream (caller frees; *size its bytes). */
#define ARTIFACT_PACK_MAGIC "KPZ1"
#define ARTIFACT_PACK_HEADER 12
#define ARTIFACT_PLAN_MAX (256 << 20) /* a plan claiming more JSON than this is corrupt */
unsigned char *artifact_pack_plan(const char *json, size_t *size);
/* The JSON back from the n bytes of kanc_plan (packed, or the plain JSON of
   cubins from before the packing), NUL-terminated (caller frees); NULL with a
   message naming label if the stream is damaged, cut or of the wrong length. */
char *artifact_unpack_plan(const unsigned char *d, size_t n, const char *label, char *err, size_t errlen);
/* source + the kanc_plan array holding the packed json (caller frees). */
char *artifact_embed(const char *source, const char *json);

/* kanc MODEL.kdl -o OUT: everything from the model file to the cubin on disk. */
typedef struct {
    const char *model_path;
    const KdlSet *sets;
    int nsets;
    const char *arch;        /* "sm_90" when NULL */
    const char *tokenizer;   /* NULL: "gpt2" for a 50257-token vocabulary, else "bytes" */
    const char *out_path;    /* the cubin; NULL: none written (with emit_source only) */
    const char *emit_source; /* also write the CUDA source here (NULL: no) */
    int verbose;             /* one summary line on stdout */
    const char *kan_kernel;  /* "auto", "fused", "blocked"; NULL: KANC_KAN_KERNEL, else auto */
    const char *precision;   /* "bf16", "fp32"; NULL: KANC_PRECISION, else bf16 */
} ArtifactOptions;
/* Returns 0, or 1 with errors printed to diag. */
int artifact_compile(const ArtifactOptions *o, FILE *diag);

/* FNV-1a fingerprint of the graph's ops, shapes, inputs and leaf names */
uint64_t artifact_graph_hash(const Graph *g);

#endif
