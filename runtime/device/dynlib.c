/* dynlib.c: dlopen with an environment override and a list of names. */
#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

const char *const DYNLIB_NVRTC[] = {"libnvrtc.so.13",
                                    "libnvrtc.so.12",
                                    "libnvrtc.so",
                                    "/usr/local/cuda/lib64/libnvrtc.so.13",
                                    "/usr/local/cuda/lib64/libnvrtc.so.12",
                                    "/usr/local/cuda/lib64/libnvrtc.so",
                                    NULL};

static void *try_open(const char *name, char *path, size_t pathlen)
{
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h && path) snprintf(path, pathlen, "%s", name);
    return h;
}

void *dynlib_open(const char *env, const char *const *names, char *path, size_t pathlen)
{
    const char *e = env ? getenv(env) : NULL;
    if (e && e[0]) {
        void *h = try_open(e, path, pathlen);
        if (h) return h;
    }
    for (int i = 0; names[i]; i++) {
        void *h = try_open(names[i], path, pathlen);
        if (h) return h;
    }
    return NULL;
}
