/* test_formats.c: the cubin reader (artifact.c) against damaged and unusual files.
 *
 *   - a small cubin built here byte by byte with <elf.h> (the sections kanc's
 *     reader uses: .symtab/.strtab, kanc_plan in .nv.global.init, a kernel with
 *     .nv.info, .nv.info.<kernel> and .nv.shared.<kernel>), so these tests run
 *     without NVRTC; where NVRTC is installed, a real one too;
 *   - mutation fuzzing in process (bytes, header fields, section and symbol
 *     fields, truncations): accepted or refused with a message, never a crash;
 *   - a SHT_NULL section pointing outside the file is named in the error;
 *   - kanrun info prints a plan with a very long shape in full.
 * KANC_CUBIN_FUZZ_ITERS raises the number of mutations.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "nvrtc.h"
#include "rng.h"
#include "test_util.h"
#include "util.h"

TestSuite(formats, .timeout = 300);

/* ------------------------------------------------------------ a cubin by hand */

enum { S_NULL, S_SHSTR, S_STR, S_SYM, S_INFO, S_TEXT, S_INIT, S_SHARED, S_INFO_K, NSEC };

typedef struct {
    unsigned char *d;
    size_t n, cap;
} Buf;

static size_t put(Buf *b, const void *p, size_t n, size_t align)
{
    while (b->n % align) {
        if (b->n == b->cap) b->d = xrealloc(b->d, b->cap = 2 * b->cap + 64);
        b->d[b->n++] = 0;
    }
    if (b->n + n > b->cap) b->d = xrealloc(b->d, b->cap = 2 * (b->n + n) + 64);
    size_t at = b->n;
    memcpy(b->d + at, p, n);
    b->n += n;
    return at;
}

/* an EM_CUDA ELF holding the plan `json` as kanc_plan (packed as kanc -o packs
   it, or as the plain JSON of older cubins) and one kernel "k" with 42 registers */
static unsigned char *hand_cubin_as(const char *json, int packed, size_t *size)
{
    static const char shstr[] = "\0.shstrtab\0.strtab\0.symtab\0.nv.info\0.text.k\0.nv.global.init\0"
                                ".nv.shared.k\0.nv.info.k";
    static const char str[] = "\0kanc_plan\0k";
    const uint32_t names[NSEC] = {0, 1, 11, 19, 27, 36, 44, 60, 73};
    Buf b = {0};
    Elf64_Ehdr eh = {0};
    put(&b, &eh, sizeof eh, 1);
    Elf64_Shdr sh[NSEC] = {{0}};
    sh[S_SHSTR] = (Elf64_Shdr){.sh_type = SHT_STRTAB, .sh_size = sizeof shstr, .sh_addralign = 1};
    sh[S_SHSTR].sh_offset = put(&b, shstr, sizeof shstr, 1);
    sh[S_STR] = (Elf64_Shdr){.sh_type = SHT_STRTAB, .sh_size = sizeof str, .sh_addralign = 1};
    sh[S_STR].sh_offset = put(&b, str, sizeof str, 1);
    size_t plen = strlen(json) + 1;
    unsigned char *plan = packed ? artifact_pack_plan(json, &plen) : (unsigned char *)xstrdup(json);
    if (packed) plan = xrealloc(plan, ++plen), plan[plen - 1] = 0; /* the string literal's NUL */
    Elf64_Sym sym[3] = {{0}};
    sym[1] = (Elf64_Sym){.st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT), .st_shndx = S_INIT,
                         .st_size = plen};
    sym[2] = (Elf64_Sym){.st_name = 11, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC), .st_other = 0x10,
                         .st_shndx = S_TEXT, .st_size = 32};
    sh[S_SYM] = (Elf64_Shdr){.sh_type = SHT_SYMTAB, .sh_size = sizeof sym, .sh_link = S_STR, .sh_info = 1,
                             .sh_entsize = sizeof(Elf64_Sym), .sh_addralign = 8};
    sh[S_SYM].sh_offset = put(&b, sym, sizeof sym, 8);
    /* EIFMT_SVAL EIATTR_REGCOUNT for symbol 2: 42; EIFMT_SVAL EIATTR_FRAME_SIZE: 0 */
    const unsigned char info[] = {4, 0x2f, 8, 0, 2, 0, 0, 0, 42, 0, 0, 0, 4, 0x11, 8, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    sh[S_INFO] = (Elf64_Shdr){.sh_type = SHT_LOPROC, .sh_size = sizeof info, .sh_link = S_SYM, .sh_addralign = 4};
    sh[S_INFO].sh_offset = put(&b, info, sizeof info, 4);
    unsigned char code[32] = {0};
    sh[S_TEXT] = (Elf64_Shdr){.sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR, .sh_size = 32,
                              .sh_addralign = 128};
    sh[S_TEXT].sh_offset = put(&b, code, sizeof code, 128);
    sh[S_INIT] = (Elf64_Shdr){.sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_WRITE, .sh_size = plen,
                              .sh_addralign = 8};
    sh[S_INIT].sh_offset = put(&b, plan, plen, 8);
    free(plan);
    sh[S_SHARED] = (Elf64_Shdr){.sh_type = SHT_NOBITS, .sh_flags = SHF_ALLOC | SHF_WRITE, .sh_size = 1280,
                                .sh_offset = b.n, .sh_addralign = 16};
    /* EIFMT_SVAL EIATTR_MAX_THREADS: 128 x 1 x 1 */
    const unsigned char info_k[] = {4, 0x05, 12, 0, 128, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    sh[S_INFO_K] = (Elf64_Shdr){.sh_type = SHT_LOPROC, .sh_size = sizeof info_k, .sh_link = S_SYM,
                                .sh_info = S_TEXT, .sh_addralign = 4};
    sh[S_INFO_K].sh_offset = put(&b, info_k, sizeof info_k, 4);
    for (int i = 0; i < NSEC; i++) sh[i].sh_name = names[i];
    size_t shoff = put(&b, sh, sizeof sh, 8);
    Elf64_Ehdr *h = (Elf64_Ehdr *)b.d;
    memcpy(h->e_ident, ELFMAG, SELFMAG);
    h->e_ident[EI_CLASS] = ELFCLASS64;
    h->e_ident[EI_DATA] = ELFDATA2LSB;
    h->e_ident[EI_VERSION] = EV_CURRENT;
    h->e_ident[EI_OSABI] = 0x33;
    h->e_type = ET_EXEC;
    h->e_machine = EM_CUDA;
    h->e_version = EV_CURRENT;
    h->e_flags = 0x5a << 8 | 0x5a;
    h->e_ehsize = sizeof(Elf64_Ehdr);
    h->e_shoff = shoff;
    h->e_shentsize = sizeof(Elf64_Shdr);
    h->e_shnum = NSEC;
    h->e_shstrndx = S_SHSTR;
    *size = b.n;
    return b.d;
}

static unsigned char *hand_cubin(const char *json, size_t *size) { return hand_cubin_as(json, 1, size); }

static const char *PLAN = "{\"format\":\"kanc-step\",\"version\":2,\"arch\":\"sm_90\",\"source\":\"param x = 1\","
                          "\"hyperparameters\":{\"x\":\"1\"},\"launches\":[],\"params\":[]}";

static Elf64_Shdr *shdr(unsigned char *d, int i)
{
    return (Elf64_Shdr *)(d + ((Elf64_Ehdr *)d)->e_shoff) + i;
}

static char *write_temp(const char *dir, const char *name, const void *d, size_t n)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(d, 1, n, f) == n && fclose(f) == 0, "%s", path);
    return path;
}

static void rm_tree(char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    cr_expect(system(cmd) == 0);
    free(cmd);
    free(dir);
}

Test(formats, hand_built_cubin_reads_back)
{
    size_t n;
    unsigned char *d = hand_cubin(PLAN, &n);
    Artifact a;
    char err[1024];
    cr_assert(artifact_parse(&a, d, n, "hand.cubin", err, sizeof err) == 0, "%s", err);
    cr_expect(a.elf_sm == 90);
    cr_expect(!strcmp(artifact_str(&a, "source"), "param x = 1"));
    cr_assert(a.n_kernels == 1 && !strcmp(a.kernels[0].name, "k"));
    cr_expect(a.kernels[0].regs == 42 && a.kernels[0].frame_bytes == 0 && a.kernels[0].max_threads == 128);
    cr_expect(a.kernels[0].static_smem == 1280 && a.kernels[0].code_bytes == 32);
    artifact_free(&a);
    free(d);
}

Test(formats, plain_json_plans_of_older_cubins_read_back)
{
    size_t n;
    unsigned char *d = hand_cubin_as(PLAN, 0, &n);
    Artifact a;
    char err[1024];
    cr_assert(artifact_parse(&a, d, n, "plain.cubin", err, sizeof err) == 0, "%s", err);
    cr_expect(!strcmp(a.json, PLAN));
    artifact_free(&a);
    free(d);
    /* packed or plain, a plan that is not JSON is named as such */
    for (int packed = 0; packed < 2; packed++) {
        d = hand_cubin_as("{\"format\": \"kanc-step\", ", packed, &n);
        cr_expect(artifact_parse(&a, d, n, "bad.cubin", err, sizeof err) == -1);
        cr_expect(strstr(err, "bad.cubin") && strstr(err, "not valid JSON"), "%s", err);
        free(d);
    }
}

/* the packed plan's own damage: each refused with its own message */
Test(formats, damaged_packed_plans_are_named)
{
    size_t n;
    unsigned char *p = artifact_pack_plan(PLAN, &n);
    char err[512];
    char *json = artifact_unpack_plan(p, n, "x.cubin", err, sizeof err);
    cr_assert(json && !strcmp(json, PLAN), "%s", json ? json : err);
    free(json);
    struct {
        size_t cut;       /* bytes kept (0: all) */
        int at, xor_with; /* a byte changed (at < 0: none) */
        const char *want;
    } cases[] = {
        {8, -1, 0, "cut short (8 bytes"},
        {n - 5, -1, 0, "stream is cut short"},
        {0, 11, 0x80, "claims"},                       /* 2^63 bytes */
        {0, ARTIFACT_PACK_HEADER + 20, 0xff, NULL},    /* inside the stream */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char *b = xmalloc(n);
        memcpy(b, p, n);
        if (cases[c].at >= 0) b[cases[c].at] ^= (unsigned char)cases[c].xor_with;
        err[0] = 0;
        json = artifact_unpack_plan(b, cases[c].cut ? cases[c].cut : n, "x.cubin", err, sizeof err);
        cr_expect(!json, "case %zu accepted", c);
        cr_expect(strstr(err, "x.cubin") && (!cases[c].want || strstr(err, cases[c].want)),
                  "case %zu: '%s' (wanted '%s')", c, err, cases[c].want ? cases[c].want : "x.cubin");
        free(json);
        free(b);
    }
    /* a stated length that is not the stream's */
    const int64_t delta[] = {-1, 1, 300};
    for (int k = 0; k < 3; k++) {
        unsigned char *b = xmalloc(n);
        memcpy(b, p, n);
        uint64_t len = strlen(PLAN) + (uint64_t)delta[k];
        for (int i = 0; i < 8; i++) b[4 + i] = (unsigned char)(len >> (8 * i));
        json = artifact_unpack_plan(b, n, "x.cubin", err, sizeof err);
        cr_expect(!json && strstr(err, delta[k] < 0 ? "longer than its header says" : "shorter than its header says"),
                  "length %+lld: '%s'", (long long)delta[k], err);
        free(json);
        free(b);
    }
    free(p);
}

/* ------------------------------------------------------------ mutation fuzzing */

static uint64_t rnd_state;
static uint64_t rnd(void) { return kanc_mix64(rnd_state++); }

/* a value for an offset, size or index field: small, near the file's size, or huge */
static uint64_t wild(size_t n)
{
    switch (rnd() % 8) {
    case 0: return 0;
    case 1: return rnd() % 64;
    case 2: return n - rnd() % 16;
    case 3: return n + rnd() % 16;
    case 4: return UINT64_MAX - rnd() % 16;
    case 5: return (uint64_t)1 << (rnd() % 64);
    case 6: return rnd() % (2 * n + 1);
    default: return rnd();
    }
}

static void mutate(unsigned char *b, size_t n, int nsec, const unsigned char *good)
{
    const Elf64_Ehdr *h = (const Elf64_Ehdr *)good;
    int kind = (int)(rnd() % 5);
    if (kind == 0) { /* bytes anywhere, the headers often */
        int flips = 1 + (int)(rnd() % 8);
        for (int k = 0; k < flips; k++) b[rnd() % (rnd() % 2 ? n : (n < 1024 ? n : 1024))] = (unsigned char)rnd();
    } else if (kind == 1) { /* an ELF header field */
        Elf64_Ehdr *e = (Elf64_Ehdr *)b;
        uint64_t v = wild(n);
        switch (rnd() % 7) {
        case 0: e->e_shoff = v; break;
        case 1: e->e_shnum = (Elf64_Half)v; break;
        case 2: e->e_shstrndx = (Elf64_Half)(rnd() % 2 ? v : SHN_XINDEX); break;
        case 3: e->e_shentsize = (Elf64_Half)v; break;
        case 4: e->e_phoff = v, e->e_phnum = (Elf64_Half)(1 + rnd() % 4), e->e_phentsize = sizeof(Elf64_Phdr); break;
        case 5: e->e_ehsize = (Elf64_Half)v; break;
        default: e->e_shnum = 0; break; /* extended numbering: the count in section 0 */
        }
    } else if (kind == 2 || kind == 3) { /* a section header field */
        Elf64_Shdr *s = (Elf64_Shdr *)(b + h->e_shoff) + rnd() % (uint64_t)nsec;
        uint64_t v = wild(n);
        switch (rnd() % 7) {
        case 0: s->sh_type = (Elf64_Word)(rnd() % 2 ? SHT_NULL : rnd() % 4 ? rnd() % 12 : v); break;
        case 1: s->sh_offset = v; break;
        case 2: s->sh_size = v; break;
        case 3: s->sh_name = (Elf64_Word)v; break;
        case 4: s->sh_link = (Elf64_Word)v; break;
        case 5: s->sh_entsize = v; break;
        default: s->sh_type = SHT_NULL, s->sh_offset = v; break;
        }
    } else { /* a field of a symbol of the (first) symbol table */
        for (int i = 0; i < nsec; i++) {
            const Elf64_Shdr *s = (const Elf64_Shdr *)(good + h->e_shoff) + i;
            if (s->sh_type != SHT_SYMTAB || s->sh_size < sizeof(Elf64_Sym)) continue;
            Elf64_Sym *y = (Elf64_Sym *)(b + s->sh_offset) + rnd() % (s->sh_size / sizeof(Elf64_Sym));
            uint64_t v = wild(n);
            switch (rnd() % 4) {
            case 0: y->st_name = (Elf64_Word)v; break;
            case 1: y->st_shndx = (Elf64_Section)(rnd() % 2 ? rnd() % (uint64_t)(nsec + 2) : v); break;
            case 2: y->st_value = v; break;
            default: y->st_size = v; break;
            }
            break;
        }
    }
}

/* Mutations of `good` in process: each one parses or is refused with a
   message naming the file; what parses is usable (plan, kernels). */
static void fuzz(const unsigned char *good, size_t n, uint64_t seed)
{
    int iters = 4000;
    const char *env = getenv("KANC_CUBIN_FUZZ_ITERS");
    if (env && atoi(env) > 0) iters = atoi(env);
    int nsec = ((const Elf64_Ehdr *)good)->e_shnum;
    unsigned char *b = xmalloc(n);
    int refused = 0;
    rnd_state = seed;
    for (int it = 0; it < iters; it++) {
        memcpy(b, good, n);
        int rounds = 1 + (int)(rnd() % 3);
        for (int r = 0; r < rounds; r++) mutate(b, n, nsec, good);
        size_t len = rnd() % 8 ? n : rnd() % (n + 1); /* sometimes cut too */
        Artifact a;
        char err[1024] = "";
        if (artifact_parse(&a, b, len, "fuzz.cubin", err, sizeof err) == 0) {
            cr_assert(strlen(a.json) < len);
            for (int k = 0; k < a.n_kernels; k++) cr_assert(strlen(a.kernels[k].name) < sizeof a.kernels[k].name);
            char *out = NULL;
            size_t olen = 0;
            FILE *f = open_memstream(&out, &olen);
            artifact_print_info(&a, f);
            fclose(f);
            free(out);
            artifact_free(&a);
        } else {
            refused++;
            cr_assert(strstr(err, "fuzz.cubin"), "iteration %d: message '%s'", it, err);
        }
    }
    cr_log_info("cubin mutations: %d of %d refused", refused, iters);
    cr_expect(refused > iters / 4, "only %d of %d mutations refused", refused, iters);
    free(b);
}

Test(formats, mutated_hand_cubins_never_crash)
{
    size_t n;
    unsigned char *d = hand_cubin(PLAN, &n);
    fuzz(d, n, 1);
    free(d);
}

Test(formats, mutated_real_cubins_never_crash)
{
    int ma, mi;
    char err[512];
    if (nvrtc_version(&ma, &mi, err, sizeof err)) cr_skip_test("NVRTC is not installed");
    char *src = artifact_embed("extern \"C\" __global__ void k(float *p) { __shared__ float s[64]; "
                               "s[threadIdx.x] = p[threadIdx.x]; __syncthreads(); p[threadIdx.x] = s[63 - threadIdx.x]; }\n",
                               PLAN);
    NvrtcOutput o;
    setenv("KANC_CACHE", "0", 1);
    cr_assert(nvrtc_compile(src, "fuzz.cu", 90, &o, stderr, err, sizeof err) == 0, "%s", err);
    free(src);
    Artifact a;
    cr_assert(artifact_parse(&a, o.cubin, o.size, "real.cubin", err, sizeof err) == 0, "%s", err);
    artifact_free(&a);
    fuzz(o.cubin, o.size, 2);
    nvrtc_output_free(&o);
}

/* ------------------------------------------------------------ specific damage */

static void expect_refused(const unsigned char *d, size_t n, const char *want1, const char *want2)
{
    Artifact a;
    char err[1024] = "";
    cr_assert(artifact_parse(&a, d, n, "bad.cubin", err, sizeof err) == -1, "accepted (wanted '%s')", want1);
    cr_expect(strstr(err, "bad.cubin") && strstr(err, want1) && (!want2 || strstr(err, want2)),
              "message '%s' (wanted '%s', '%s')", err, want1, want2 ? want2 : "");
}

Test(formats, null_sections_outside_the_file_are_named)
{
    size_t n;
    unsigned char *good = hand_cubin(PLAN, &n);
    unsigned char *b = xmalloc(n);
    /* .nv.info and the plan's section, each made SHT_NULL and pointed far away */
    const int which[] = {S_INFO, S_INIT, S_INFO_K};
    const char *names[] = {".nv.info", ".nv.global.init", ".nv.info.k"};
    for (int w = 0; w < 3; w++) {
        memcpy(b, good, n);
        shdr(b, which[w])->sh_type = SHT_NULL;
        shdr(b, which[w])->sh_offset = (uint64_t)1 << 40;
        expect_refused(b, n, names[w], "past the end");
        memcpy(b, good, n);
        shdr(b, which[w])->sh_type = SHT_NULL;
        shdr(b, which[w])->sh_size = UINT64_MAX - 8; /* offset + size wraps */
        expect_refused(b, n, names[w], "past the end");
    }
    /* every section is checked, whatever its type */
    memcpy(b, good, n);
    shdr(b, S_TEXT)->sh_type = 0x7000000b;
    shdr(b, S_TEXT)->sh_offset = n - 4;
    expect_refused(b, n, ".text.k", "past the end");
    /* header fields */
    memcpy(b, good, n);
    ((Elf64_Ehdr *)b)->e_shoff = UINT64_MAX - 32;
    expect_refused(b, n, "section header", NULL);
    memcpy(b, good, n);
    ((Elf64_Ehdr *)b)->e_shnum = 0xff00;
    expect_refused(b, n, "section header", NULL);
    memcpy(b, good, n);
    ((Elf64_Ehdr *)b)->e_shstrndx = NSEC;
    expect_refused(b, n, "section-name table", NULL);
    memcpy(b, good, n);
    ((Elf64_Ehdr *)b)->e_ehsize = 12;
    expect_refused(b, n, "ELF header size", NULL);
    memcpy(b, good, n);
    ((Elf64_Ehdr *)b)->e_phnum = 1; /* a program header table that runs past the end */
    ((Elf64_Ehdr *)b)->e_phentsize = sizeof(Elf64_Phdr);
    ((Elf64_Ehdr *)b)->e_phoff = n - 8;
    expect_refused(b, n, "program header", NULL);
    /* the section-name table's last name runs off its end (no NUL inside it) */
    memcpy(b, good, n);
    shdr(b, S_SHSTR)->sh_size -= 1;
    expect_refused(b, n, "section-name table", "NUL");
    /* a symbol name past the string table */
    memcpy(b, good, n);
    ((Elf64_Sym *)(b + shdr(b, S_SYM)->sh_offset))[1].st_name = 1u << 30;
    expect_refused(b, n, "symbol 1", "name");
    free(b);
    free(good);
}

/* ------------------------------------------------------------ kanrun info */

Test(formats, info_prints_a_very_long_shape_in_full)
{
    /* 27 ones bring the old fixed buffer to its limit, then 19-digit sizes and
       more dimensions than any buffer on the stack would hold */
    size_t cap = 1 << 16;
    char *shape = xmalloc(cap), *w = shape;
    w += sprintf(w, "[");
    for (int i = 0; i < 400; i++) w += sprintf(w, "%s%s", i ? ", " : "", i < 27 ? "1" : "1000000000000000000");
    sprintf(w, "]");
    char *json_shape = xstrdup(shape);
    for (char *c = json_shape; *c; c++)
        if (*c == ' ') memmove(c, c + 1, strlen(c)); /* [1,1,...] in the JSON */
    char *plan = xasprintf("{\"format\":\"kanc-step\",\"version\":2,\"arch\":\"sm_90\",\"source\":\"param x = 1\","
                           "\"hyperparameters\":{\"x\":\"1\"},\"launches\":[],"
                           "\"params\":[{\"name\":\"w\",\"shape\":%s,\"offset\":0,\"init\":\"zeros\",\"decay\":true}],"
                           "\"buffers\":[{\"name\":\"b\",\"shape\":%s,\"offset\":0,\"init\":\"ones\"}]}",
                           json_shape, json_shape);
    size_t n;
    unsigned char *d = hand_cubin(plan, &n);
    char *dir = test_tmpdir();
    char *path = write_temp(dir, "long.cubin", d, n);
    char *out = NULL;
    int rc = test_run(&out, "$KANRUN info '%s'", path);
    cr_expect(rc == 0, "kanrun info: status %d: %.2000s", rc, out);
    char *first = strstr(out, shape);
    cr_expect(first && strstr(first + 1, shape), "the shape is not printed in full twice:\n%.3000s", out);
    free(out);
    free(path);
    rm_tree(dir);
    free(d);
    free(plan);
    free(json_shape);
    free(shape);
}
