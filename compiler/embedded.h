/* embedded.h: source files compiled into kanc (scripts/embed.sh -> build/gen/cuda_lib.c):
 * the CUDA library in cuda/ and the runtime headers it includes. */
#ifndef KANC_EMBEDDED_H
#define KANC_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *name; /* base name, as a quoted #include spells it */
    const char *text; /* NUL-terminated */
    size_t len;
} EmbeddedFile;

extern const EmbeddedFile kanc_embedded_files[];
extern const int kanc_n_embedded_files;

/* The file of that base name, or NULL. */
const EmbeddedFile *embedded_file(const char *name);

#endif
