/* nvrtc.h: CUDA C++ source -> cubin for a real GPU architecture, with NVRTC.
 *
 * NVRTC needs no GPU and no driver. The library (libnvrtc.so.13 or .12, or
 * $KANC_NVRTC) is loaded at first use with dlopen, so kanc and kanrun build
 * and start without the CUDA toolkit; without it a compile fails with a
 * message that says so.
 */
#ifndef KANC_NVRTC_H
#define KANC_NVRTC_H

#include <stddef.h>
#include <stdio.h>

/* architectures `kanc --arch` accepts (compute capabilities x 10) */
#define NVRTC_ARCHS "sm_80, sm_86, sm_89, sm_90"

/* "sm_90" -> 90 for one of NVRTC_ARCHS; else -1 with a message in err. */
int nvrtc_parse_arch(const char *arch, int *sm, char *err, size_t errlen);

typedef struct {
    unsigned char *cubin; /* ELF image */
    size_t size;
    char *log;            /* NVRTC's log (warnings), may be empty; never NULL on return */
} NvrtcOutput;

/* Compiles `src` (named `name` in messages, e.g. "step.cu") for sm_<sm>
   (any architecture this NVRTC supports). On a compile error, NVRTC's log
   and, for each error, the generated source lines it points at go to diag
   (may be NULL) and -1 is returned with a one-line summary in err.

   Options: --gpu-architecture=sm_<sm> --std=c++17 --split-compile=0, the CUDA
   include folder when it exists, then $KANC_NVRTC_FLAGS (space-separated,
   e.g. "-Xptxas -O1" for a fast, less optimised build).

   Cubins are cached (ptxas takes tens of seconds for a whole step) under
   $KANC_CACHE_DIR, else $XDG_CACHE_HOME/kanc, else ~/.cache/kanc, keyed by a
   hash of the source, the architecture, NVRTC's version and the extra flags;
   KANC_CACHE=0 turns the cache off. */
int nvrtc_compile(const char *src, const char *name, int sm, NvrtcOutput *out, FILE *diag,
                  char *err, size_t errlen);
void nvrtc_output_free(NvrtcOutput *o);

/* NVRTC's version; -1 with the reason in err when the library is missing. */
int nvrtc_version(int *major, int *minor, char *err, size_t errlen);

/* 1 if this NVRTC can compile for sm_<sm>. */
int nvrtc_supports(int sm);

/* Prints log and, after it, each `name(LINE): error` line's source context. */
void nvrtc_print_log(FILE *f, const char *log, const char *src, const char *name);

#endif
