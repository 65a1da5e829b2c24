/* dynlib.h: the CUDA libraries (driver, cuBLASLt, NVRTC) are opened at run time, never linked,
 * so kanc and kanrun start on any machine; one search order for all of them. */
#ifndef KANC_DYNLIB_H
#define KANC_DYNLIB_H

#include <stddef.h>

/* NVRTC's names, newest first (also used by the tests) */
extern const char *const DYNLIB_NVRTC[];

/* dlopen of the path in environment variable env (when set and non-empty),
   else of the first of names (NULL-terminated) that opens. The opened name
   goes to path (may be NULL). Returns the handle, or NULL. */
void *dynlib_open(const char *env, const char *const *names, char *path, size_t pathlen);

#endif
