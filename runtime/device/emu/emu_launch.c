/* emu_launch.c: build a generated CUDA source into a host shared object, load it, run launches. */
#define _GNU_SOURCE
#include "emu_launch.h"

#include <cblas.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct EmuModule {
    void *dl;
};

static int readable(const char *p) { return p && p[0] && access(p, R_OK) == 0; }

const char *emu_prelude_path(void)
{
    static char found[PATH_MAX];
    char buf[PATH_MAX + 64];
    const char *env = getenv("KANC_EMU_PRELUDE");
    if (readable(env)) return env;
#ifdef KANC_EMU_PRELUDE
    if (readable(KANC_EMU_PRELUDE)) return KANC_EMU_PRELUDE;
#endif
    const char *root = getenv("KANC_ROOT");
    if (root) {
        snprintf(buf, sizeof buf, "%s/runtime/device/emu/cuda_emu.h", root);
        if (readable(buf) && realpath(buf, found)) return found;
    }
    char exe[PATH_MAX - 64]; /* room for the suffixes below */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        const char *up[] = {"..", "../.."};
        for (int i = 0; i < 2; i++) {
            snprintf(buf, sizeof buf, "%s/%s/runtime/device/emu/cuda_emu.h", exe, up[i]);
            if (readable(buf) && realpath(buf, found)) return found;
        }
    }
    if (readable("runtime/device/emu/cuda_emu.h") && realpath("runtime/device/emu/cuda_emu.h", found)) return found;
    return NULL;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) s = realloc(s, cap *= 2);
    }
    fclose(f);
    if (s) s[n] = 0;
    return s;
}

/* prints line `ln` (1-based) of the generated source */
static void print_source_line(const char *source, long ln)
{
    const char *p = source;
    for (long i = 1; i < ln && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) return;
    const char *e = strchr(p, '\n');
    fprintf(stderr, "  generated line %ld: %.*s\n", ln, (int)(e ? e - p : (long)strlen(p)), p);
}

/* the generated lines that the compiler's messages point at (the first few) */
static void print_offending_lines(const char *source, const char *log)
{
    long seen[8];
    int ns = 0;
    for (const char *p = log; (p = strstr(p, "kernels.cu:")) != NULL && ns < 8;) {
        p += strlen("kernels.cu:");
        char *end;
        long ln = strtol(p, &end, 10);
        if (end == p || ln <= 0) continue;
        int dup = 0;
        for (int i = 0; i < ns; i++) dup |= seen[i] == ln;
        if (dup) continue;
        seen[ns++] = ln;
        print_source_line(source, ln);
    }
}

static void remove_dir(const char *dir)
{
    const char *files[] = {"kernels.cu", "kernels.so", "build.log"};
    char path[PATH_MAX + 16];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* What the prelude's kanc_emu_set_shared takes. */
typedef struct {
    void *addr;
    size_t size;
} SharedRange;

/* The static shared variables of the loaded module `dl` (file so): every
   function-local static object in writable memory (Itanium names _ZZ...: in
   CUDA code these are the __shared__ declarations), handed to the module's
   kanc_emu_set_shared so that they are poisoned before every block. A module
   without that entry (not built on the prelude) is left alone. 0, or -1 with
   err. Every offset is checked against the file before it is read through. */
int emu_register_shared(void *dl, const char *so, char *err, size_t errlen)
{
    void *entry = dlsym(dl, "kanc_emu_set_shared");
    if (!entry) return 0;
    int (*set_shared)(const SharedRange *, int);
    memcpy(&set_shared, &entry, sizeof set_shared);
    struct link_map *lm = NULL;
    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) || !lm) {
        snprintf(err, errlen, "emu: dlinfo %s: %s", so, dlerror());
        return -1;
    }
    size_t len = 0;
    char *img = read_file(so, &len);
    if (!img) {
        snprintf(err, errlen, "emu: cannot read %s back to find its shared variables", so);
        return -1;
    }
    const char *bad = NULL;
    SharedRange *r = NULL;
    int n = 0, cap = 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    if (len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64)
        bad = "not a 64-bit ELF file";
    else if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > len ||
             (len - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        bad = "section header table outside the file";
    const Elf64_Shdr *sh = bad ? NULL : (const Elf64_Shdr *)(img + eh->e_shoff);
    for (int i = 0; !bad && i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB) continue;
        const Elf64_Shdr *sym = &sh[i], *str = sym->sh_link < eh->e_shnum ? &sh[sym->sh_link] : NULL;
        if (!str || sym->sh_offset > len || sym->sh_size > len - sym->sh_offset || str->sh_offset > len ||
            str->sh_size > len - str->sh_offset || sym->sh_entsize != sizeof(Elf64_Sym)) {
            bad = "symbol table outside the file";
            break;
        }
        const Elf64_Sym *syms = (const Elf64_Sym *)(img + sym->sh_offset);
        const char *names = img + str->sh_offset;
        for (size_t k = 0; k < sym->sh_size / sizeof *syms; k++) {
            const Elf64_Sym *y = &syms[k];
            if (ELF64_ST_TYPE(y->st_info) != STT_OBJECT || !y->st_size || y->st_shndx == SHN_UNDEF ||
                y->st_shndx >= eh->e_shnum || y->st_name + 4 > str->sh_size)
                continue;
            const Elf64_Shdr *home = &sh[y->st_shndx];
            if (!(home->sh_flags & SHF_WRITE) || !(home->sh_flags & SHF_ALLOC)) continue;
            if (strncmp(names + y->st_name, "_ZZ", 3)) continue; /* not a function-local static */
            if (y->st_value < home->sh_addr || y->st_size > home->sh_size ||
                y->st_value - home->sh_addr > home->sh_size - y->st_size) {
                bad = "a shared variable outside its section";
                break;
            }
            if (n == cap) r = xrealloc(r, sizeof *r * (size_t)(cap = cap ? 2 * cap : 16));
            r[n++] = (SharedRange){(void *)(uintptr_t)(lm->l_addr + y->st_value), (size_t)y->st_size};
        }
    }
    free(img);
    if (bad) {
        snprintf(err, errlen, "emu: %s: %s", so, bad);
        free(r);
        return -1;
    }
    int rc = set_shared(r, n);
    free(r);
    if (rc) snprintf(err, errlen, "emu: %s: out of memory for the shared variables", so);
    return rc ? -1 : 0;
}

EmuModule *emu_module_build(const char *source, char *err, size_t errlen)
{
    const char *prelude = emu_prelude_path();
    if (!prelude) {
        snprintf(err, errlen,
                 "emu: cannot find the prelude runtime/device/emu/cuda_emu.h (set KANC_EMU_PRELUDE or KANC_ROOT)");
        return NULL;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX - 64]; /* room for the file names */
    snprintf(dir, sizeof dir, "%s/kanc-emu-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "emu: cannot make a temporary directory in %s: %s", dir, strerror(errno));
        return NULL;
    }
    char src[PATH_MAX], so[PATH_MAX], logp[PATH_MAX];
    snprintf(src, sizeof src, "%s/kernels.cu", dir);
    snprintf(so, sizeof so, "%s/kernels.so", dir);
    snprintf(logp, sizeof logp, "%s/build.log", dir);
    if (write_file(src, source)) {
        snprintf(err, errlen, "emu: cannot write %s: %s", src, strerror(errno));
        remove_dir(dir);
        return NULL;
    }
    const char *cxx = getenv("KANC_EMU_CXX");
    if (!cxx || !cxx[0]) cxx = "c++";
    /* the emulated CUDA headers (cuda_bf16.h) beside the prelude */
    char incdir[PATH_MAX];
    snprintf(incdir, sizeof incdir, "%s", prelude);
    char *slash = strrchr(incdir, '/');
    if (slash)
        snprintf(slash + 1, sizeof incdir - (size_t)(slash + 1 - incdir), "include");
    else
        snprintf(incdir, sizeof incdir, "include");
    size_t cmdlen = strlen(cxx) + strlen(prelude) + 5 * PATH_MAX + 256;
    char *cmd = malloc(cmdlen);
    snprintf(cmd, cmdlen,
             "%s -std=c++17 -O1 -fPIC -shared -fvisibility=hidden -Wno-unknown-pragmas "
             "-isystem '%s' -x c++ -include '%s' '%s' -o '%s' -lm > '%s' 2>&1",
             cxx, incdir, prelude, src, so, logp);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        char *log = slurp(logp);
        fprintf(stderr, "emu: compiling the generated source failed (%s, kept in %s):\n%s\n", cxx,
                dir, log ? log : "(no compiler output)");
        if (log) print_offending_lines(source, log);
        snprintf(err, errlen, "emu: the host C++ compiler rejected the generated source (see %s)", logp);
        free(log);
        return NULL;
    }
    void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "emu: dlopen %s: %s", so, dlerror());
        return NULL;
    }
    if (emu_register_shared(dl, so, err, errlen)) {
        dlclose(dl);
        return NULL;
    }
    if (getenv("KANC_EMU_KEEP"))
        fprintf(stderr, "emu: generated source and shared object kept in %s\n", dir);
    else
        remove_dir(dir); /* the mapping stays valid */
    EmuModule *m = calloc(1, sizeof *m);
    m->dl = dl;
    return m;
}

void emu_module_free(EmuModule *m)
{
    if (!m) return;
    if (m->dl) dlclose(m->dl);
    free(m);
}

EmuHostFn emu_module_lookup(EmuModule *m, const char *name)
{
    char sym[128];
    snprintf(sym, sizeof sym, "%s__host", name);
    EmuHostFn fn;
    void *p = dlsym(m->dl, sym);
    memcpy(&fn, &p, sizeof fn);
    return fn;
}

void *emu_module_symbol(EmuModule *m, const char *symbol) { return dlsym(m->dl, symbol); }

static void *area_ptr(const KancArgs *a, int area, int64_t off)
{
    uint64_t base = 0;
    switch (area) {
    case 0: base = a->arena; break;
    case 1: base = a->params; break;
    case 2: base = a->grads; break;
    case 3: base = a->m; break;
    case 4: base = a->v; break;
    case 5: base = a->buffers; break;
    case 6: base = a->ws; break;
    }
    return (char *)(uintptr_t)base + off;
}

void emu_gemm(const GemmDesc *d, const KancArgs *args)
{
    for (int q = 1; q < d->batch; q++) { /* a strided batch: each product on its own */
        GemmDesc one = *d;
        one.batch = 1;
        one.off_a += q * d->stride_a * 4, one.off_b += q * d->stride_b * 4, one.off_c += q * d->stride_c * 4;
        emu_gemm(&one, args);
    }
    const float *A = area_ptr(args, d->area_a, d->off_a), *B = area_ptr(args, d->area_b, d->off_b);
    float *C = area_ptr(args, d->area_c, d->off_c);
    if (d->m <= 0 || d->n <= 0) return;
    if (d->beta == 0) /* C may hold garbage (NaN): BLAS would scale it by 0 */
        for (int64_t r = 0; r < d->m; r++) memset(C + r * d->ldc, 0, sizeof(float) * (size_t)d->n);
    if (d->k <= 0) {
        for (int64_t r = 0; r < d->m; r++)
            for (int64_t c = 0; c < d->n; c++) C[r * d->ldc + c] *= d->beta;
        return;
    }
    cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans,
                d->trans_b ? CblasTrans : CblasNoTrans, (int)d->m, (int)d->n, (int)d->k, d->alpha, A,
                (int)d->lda, B, (int)d->ldb, d->beta, C, (int)d->ldc);
}

int emu_launch(EmuModule *m, const CudaLaunch *l, const KancArgs *args, char *err, size_t errlen)
{
    if (l->kind == LAUNCH_GEMM) {
        emu_gemm(&l->gemm, args);
        return 0;
    }
    EmuHostFn fn = emu_module_lookup(m, l->name);
    if (!fn) {
        snprintf(err, errlen, "emu: kernel %s has no host entry %s__host in the module", l->name, l->name);
        return -1;
    }
    const uint64_t base[KANC_N_AREAS] = {args->arena, args->params, args->grads, args->m,
                                         args->v,     args->buffers, args->ws};
    KancLaunchArgs la;
    if (cuda_launch_args(l, base, NULL, &la, err, errlen)) return -1;
    uint64_t a = (uint64_t)(uintptr_t)args;
    void *params[2] = {&a, &la};
    KancDim3 grid = {l->grid[0], l->grid[1], l->grid[2]}, block = {l->block[0], l->block[1], l->block[2]};
    fn(grid, block, l->smem, params);
    return 0;
}

int emu_run_nodes(EmuModule *m, const CudaProgram *prog, int from, int to,
                  const KancArgs *args, char *err, size_t errlen)
{
    for (int i = from; i < to && i < prog->n_nodes; i++)
        for (int j = 0; j < prog->node_count[i]; j++)
            if (emu_launch(m, &prog->launch[prog->node_first[i] + j], args, err, errlen)) return -1;
    return 0;
}
