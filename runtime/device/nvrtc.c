/* nvrtc.c: NVRTC through dlopen: compile a generated source to a cubin. */
#include "nvrtc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynlib.h"
#include "hash.h"
#include "util.h"

typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

static struct {
    int state; /* 0 not tried, 1 loaded, -1 missing */
    char err[512];
    void *lib;
    const char *(*GetErrorString)(nvrtcResult);
    nvrtcResult (*Version)(int *, int *);
    nvrtcResult (*GetNumSupportedArchs)(int *);
    nvrtcResult (*GetSupportedArchs)(int *);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int,
                                 const char *const *, const char *const *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
} nv;
static pthread_mutex_t nv_lock = PTHREAD_MUTEX_INITIALIZER;

static int nv_load(char *err, size_t errlen)
{
    pthread_mutex_lock(&nv_lock);
    if (!nv.state) {
        nv.lib = dynlib_open("KANC_NVRTC", DYNLIB_NVRTC, NULL, 0);
        nv.state = -1;
        if (!nv.lib) {
            snprintf(nv.err, sizeof nv.err,
                     "NVRTC not found (libnvrtc.so.13 or .12): install the CUDA toolkit's NVRTC "
                     "or set KANC_NVRTC to the library's path");
        } else {
            struct {
                void **fp;
                const char *name;
            } syms[] = {
                {(void **)&nv.GetErrorString, "nvrtcGetErrorString"},
                {(void **)&nv.Version, "nvrtcVersion"},
                {(void **)&nv.GetNumSupportedArchs, "nvrtcGetNumSupportedArchs"},
                {(void **)&nv.GetSupportedArchs, "nvrtcGetSupportedArchs"},
                {(void **)&nv.CreateProgram, "nvrtcCreateProgram"},
                {(void **)&nv.DestroyProgram, "nvrtcDestroyProgram"},
                {(void **)&nv.CompileProgram, "nvrtcCompileProgram"},
                {(void **)&nv.GetCUBINSize, "nvrtcGetCUBINSize"},
                {(void **)&nv.GetCUBIN, "nvrtcGetCUBIN"},
                {(void **)&nv.GetProgramLogSize, "nvrtcGetProgramLogSize"},
                {(void **)&nv.GetProgramLog, "nvrtcGetProgramLog"},
            };
            nv.state = 1;
            for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
                if (!(*syms[i].fp = dlsym(nv.lib, syms[i].name))) {
                    snprintf(nv.err, sizeof nv.err, "NVRTC library has no %s (too old: CUDA 11.1+ needed)",
                             syms[i].name);
                    nv.state = -1;
                    break;
                }
        }
    }
    int ok = nv.state > 0;
    if (!ok) snprintf(err, errlen, "%s", nv.err);
    pthread_mutex_unlock(&nv_lock);
    return ok ? 0 : -1;
}

int nvrtc_version(int *major, int *minor, char *err, size_t errlen)
{
    if (nv_load(err, errlen)) return -1;
    nv.Version(major, minor);
    return 0;
}

int nvrtc_supports(int sm)
{
    char err[64];
    int n = 0, ok = 0;
    if (nv_load(err, sizeof err) || nv.GetNumSupportedArchs(&n) || n <= 0) return 0;
    int *a = xcalloc((size_t)n, sizeof *a);
    if (!nv.GetSupportedArchs(a))
        for (int i = 0; i < n; i++) ok |= a[i] == sm;
    free(a);
    return ok;
}

int nvrtc_parse_arch(const char *arch, int *sm, char *err, size_t errlen)
{
    static const int ok[] = {80, 86, 89, 90};
    char *end;
    if (arch && !strncmp(arch, "sm_", 3)) {
        long v = strtol(arch + 3, &end, 10);
        if (!*end && end != arch + 3)
            for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
                if (v == ok[i]) {
                    *sm = (int)v;
                    return 0;
                }
    }
    snprintf(err, errlen, "unsupported architecture '%s' (use one of %s)", arch ? arch : "",
             NVRTC_ARCHS);
    return -1;
}

/* the n-th line (1-based) of src: pointer and length, or NULL */
static const char *source_line(const char *src, long n, size_t *len)
{
    const char *p = src;
    for (long i = 1; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    *len = e ? (size_t)(e - p) : strlen(p);
    return p;
}

void nvrtc_print_log(FILE *f, const char *log, const char *src, const char *name)
{
    if (!f || !log) return;
    fputs(log, f);
    if (*log && log[strlen(log) - 1] != '\n') fputc('\n', f);
    size_t nl = strlen(name);
    int header = 0;
    for (const char *p = log; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) || p[nl] != '(') continue;
        char *end;
        long line = strtol(p + nl + 1, &end, 10);
        if (*end != ')' || strncmp(end, "): error", 8)) continue;
        if (!header++) fprintf(f, "-- the generated source at each error --\n");
        const char *eol = strchr(p, '\n');
        fprintf(f, "%.*s\n", eol ? (int)(eol - p) : (int)strlen(p), p);
        for (long l = line - 2; l <= line + 2; l++) {
            size_t len;
            const char *s = l >= 1 ? source_line(src, l, &len) : NULL;
            if (s) fprintf(f, "%s %6ld | %.*s\n", l == line ? ">>" : "  ", l, (int)(len > 240 ? 240 : len), s);
        }
    }
}

void nvrtc_output_free(NvrtcOutput *o)
{
    free(o->cubin);
    free(o->log);
    memset(o, 0, sizeof *o);
}

/* extra options from $KANC_NVRTC_FLAGS (space-separated), at most 8 */
static int extra_flags(char *buf, size_t n, const char **opts, int max)
{
    const char *env = getenv("KANC_NVRTC_FLAGS");
    int k = 0;
    if (!env) return 0;
    snprintf(buf, n, "%s", env);
    for (char *t = strtok(buf, " \t"); t && k < max; t = strtok(NULL, " \t")) opts[k++] = t;
    return k;
}

static int compile_raw(const char *src, const char *name, int sm, NvrtcOutput *out, FILE *diag,
                       char *err, size_t errlen)
{
    if (!nvrtc_supports(sm)) {
        int ma = 0, mi = 0;
        nv.Version(&ma, &mi);
        snprintf(err, errlen, "NVRTC %d.%d cannot compile for sm_%d", ma, mi, sm);
        return -1;
    }
    nvrtcProgram prog;
    nvrtcResult r = nv.CreateProgram(&prog, src, name, 0, NULL, NULL);
    if (r) {
        snprintf(err, errlen, "nvrtcCreateProgram: %s", nv.GetErrorString(r));
        return -1;
    }
    char archopt[48], incopt[300] = "";
    snprintf(archopt, sizeof archopt, "--gpu-architecture=sm_%d", sm);
    const char *opts[20];
    char flagbuf[512];
    int nopt = 0;
    opts[nopt++] = archopt;
    opts[nopt++] = "--std=c++17";
    opts[nopt++] = "--split-compile=0"; /* ptxas on every core (dropped if NVRTC refuses it) */
    const char *home = getenv("CUDA_HOME");
    struct stat st;
    snprintf(incopt, sizeof incopt, "%s/include", home ? home : "/usr/local/cuda");
    if (!stat(incopt, &st) && S_ISDIR(st.st_mode)) {
        snprintf(incopt, sizeof incopt, "--include-path=%s/include", home ? home : "/usr/local/cuda");
        opts[nopt++] = incopt;
    }
    nopt += extra_flags(flagbuf, sizeof flagbuf, opts + nopt, 8);
    r = nv.CompileProgram(prog, nopt, opts);
    if (r == 5 /* NVRTC_ERROR_INVALID_OPTION */) { /* an older NVRTC: no --split-compile */
        nv.DestroyProgram(&prog);
        if ((r = nv.CreateProgram(&prog, src, name, 0, NULL, NULL))) {
            snprintf(err, errlen, "nvrtcCreateProgram: %s", nv.GetErrorString(r));
            return -1;
        }
        memmove(opts + 2, opts + 3, sizeof *opts * (size_t)(nopt - 3));
        r = nv.CompileProgram(prog, --nopt, opts);
    }
    size_t logn = 0;
    nv.GetProgramLogSize(prog, &logn);
    out->log = xcalloc(logn + 1, 1);
    if (logn) nv.GetProgramLog(prog, out->log);
    if (r) {
        int nerr = 0;
        for (const char *p = strstr(out->log, "): error"); p; p = strstr(p + 1, "): error")) nerr++;
        nvrtc_print_log(diag, out->log, src, name);
        snprintf(err, errlen, "NVRTC could not compile the generated CUDA source for sm_%d: %s%s%d error%s%s",
                 sm, nv.GetErrorString(r), nerr ? ", " : "", nerr, nerr == 1 ? "" : "s",
                 diag ? " (log above)" : "");
        nv.DestroyProgram(&prog);
        return -1;
    }
    size_t n = 0;
    if ((r = nv.GetCUBINSize(prog, &n)) || !n) {
        snprintf(err, errlen, "nvrtcGetCUBINSize: %s", r ? nv.GetErrorString(r) : "empty cubin");
        nv.DestroyProgram(&prog);
        return -1;
    }
    out->cubin = xmalloc(n);
    out->size = n;
    if ((r = nv.GetCUBIN(prog, (char *)out->cubin))) {
        snprintf(err, errlen, "nvrtcGetCUBIN: %s", nv.GetErrorString(r));
        nv.DestroyProgram(&prog);
        nvrtc_output_free(out);
        return -1;
    }
    nv.DestroyProgram(&prog);
    return 0;
}

/* ---- the cubin cache: NVRTC's ptxas pass takes tens of seconds for a step ---- */

static uint64_t fnv64(uint64_t h, const char *s) { return fnv1a64(h, s, strlen(s)); }

/* the cache folder, or NULL when caching is off ($KANC_CACHE=0) */
static const char *cache_dir(char *buf, size_t n)
{
    const char *off = getenv("KANC_CACHE"), *dir = getenv("KANC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (off && !strcmp(off, "0")) return NULL;
    if (dir && *dir) snprintf(buf, n, "%s", dir);
    else if (xdg && *xdg) snprintf(buf, n, "%s/kanc", xdg);
    else if (home && *home) snprintf(buf, n, "%s/.cache/kanc", home);
    else return NULL;
    return buf;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0777);
            *p = '/';
        }
    return mkdir(path, 0777) && errno != EEXIST ? -1 : 0;
}

int nvrtc_compile(const char *src, const char *name, int sm, NvrtcOutput *out, FILE *diag,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (nv_load(err, errlen)) return -1;
    char dir[1024], path[1200];
    int ma = 0, mi = 0;
    nv.Version(&ma, &mi);
    const char *flags = getenv("KANC_NVRTC_FLAGS");
    if (!cache_dir(dir, sizeof dir)) return compile_raw(src, name, sm, out, diag, err, errlen);
    char key[96];
    snprintf(key, sizeof key, "nvrtc %d.%d sm_%d %s|", ma, mi, sm, flags ? flags : "");
    uint64_t h = fnv64(fnv64(FNV1A64_INIT, key), src);
    snprintf(path, sizeof path, "%s/step-%016llx-sm_%d.cubin", dir, (unsigned long long)h, sm);
    size_t n = 0;
    unsigned char *bytes = (unsigned char *)read_file(path, &n);
    if (bytes && n > 64 && !memcmp(bytes, "\x7f" "ELF", 4)) {
        out->cubin = bytes;
        out->size = n;
        out->log = xstrdup("");
        return 0;
    }
    free(bytes);
    if (compile_raw(src, name, sm, out, diag, err, errlen)) return -1;
    /* best effort: a cache that cannot be written is no error */
    if (!mkdirs(dir)) {
        char tmp[1300];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(out->cubin, 1, out->size, f) == out->size;
            if (fclose(f) || !ok || rename(tmp, path)) unlink(tmp);
        }
    }
    return 0;
}
