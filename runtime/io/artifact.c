/* artifact.c: the cubin artifact: plan JSON in, plan JSON out, the ELF read with <elf.h>.
 *
 * Layout of what we read from a cubin (64-bit little-endian ELF, e_machine
 * EM_CUDA = 190; the ELF header, the section and program header tables, every
 * section other than NOBITS ones (whatever its type, SHT_NULL included) and
 * every segment must lie inside the file; every name is NUL-terminated inside
 * its string table):
 *   e_flags >> 8 & 0xff        the SM version (ABI 8: 0x5a = sm_90)
 *   .symtab + its .strtab      symbol kanc_plan (an OBJECT in .nv.global.init)
 *                              and the kernels (FUNC symbols marked STO_CUDA_ENTRY,
 *                              st_other & 0x10, in .text.<name>)
 *   .nv.info                   per-kernel attributes keyed by symbol index:
 *                              EIATTR_REGCOUNT (0x2f), EIATTR_FRAME_SIZE (0x11),
 *                              EIATTR_MAX_STACK_SIZE (0x23)
 *   .nv.info.<kernel>          EIATTR_MAX_THREADS (0x05) and, with older
 *                              toolchains, the same per-kernel attributes
 *   .nv.shared.<kernel>        NOBITS; its size is the kernel's static shared memory
 * .nv.info entries are [format u8][attribute u8][u16 value or size][size bytes
 * when format is EIFMT_SVAL (4)].
 */
#include "artifact.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "atomic_file.h"
#include "autodiff.h"
#include "nvrtc.h"
#include "hash.h"
#include "util.h"

/* ------------------------------------------------------------ ELF reading */

#ifndef EM_CUDA
#define EM_CUDA 190
#endif
#define STO_CUDA_ENTRY 0x10
#define MAX_SECTIONS (1 << 20)

typedef struct {
    const unsigned char *d;
    size_t n;
    const char *label;
    char *err;
    size_t errlen;
} Elf;

typedef struct {
    Elf64_Shdr h;
    const char *sname; /* "" until the names are read */
    int bytes;         /* 1 if [sh_offset, +sh_size) was checked and may be read */
} Sec;

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static int elf_fail(Elf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int elf_fail(Elf *e, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    set_err(e->err, e->errlen, "%s: not a valid cubin: %s", e->label, what);
    return -1;
}

/* 1 if [off, off+len) lies inside the file (no overflow: len is compared with what is left) */
static int in_file(const Elf *e, uint64_t off, uint64_t len)
{
    return off <= e->n && len <= e->n - off;
}

/* the structures are copied out: the file's bytes need not be aligned */
static void rd_struct(const Elf *e, uint64_t off, void *out, size_t size) { memcpy(out, e->d + off, size); }

/* a NUL-terminated string at offset `at` of string section s, or NULL */
static const char *sec_string(const Elf *e, const Sec *s, uint64_t at)
{
    if (!s || !s->bytes || at >= s->h.sh_size) return NULL;
    const char *p = (const char *)e->d + s->h.sh_offset + at;
    return memchr(p, 0, s->h.sh_size - at) ? p : NULL;
}

static const Sec *find_sec(const Sec *sec, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(sec[i].sname, name)) return &sec[i];
    return NULL;
}

/* .nv.info attributes for symbol index sym */
static void read_nv_info(const Elf *e, const Sec *s, uint32_t sym, ArtifactKernel *k)
{
    if (!s || !s->bytes) return;
    const unsigned char *p = e->d + s->h.sh_offset, *end = p + s->h.sh_size;
    while (end - p >= 4) {
        int fmt = p[0], attr = p[1];
        uint16_t v = rd16(p + 2);
        p += 4;
        if (fmt == 4) { /* EIFMT_SVAL: v bytes of payload */
            if (end - p < v) return;
            if (v >= 8) {
                uint32_t s0 = rd32(p), s1 = rd32(p + 4);
                if (s0 == sym) {
                    if (attr == 0x2f) k->regs = (int)s1;
                    else if (attr == 0x11) k->frame_bytes = (int)s1;
                    else if (attr == 0x23) k->max_stack = (int)s1;
                }
            }
            if (attr == 0x05 && v >= 12) /* EIATTR_MAX_THREADS: x, y, z */
                k->max_threads = (int)(rd32(p) * rd32(p + 4) * rd32(p + 8));
            p += v;
        } else if (fmt < 1 || fmt > 4) {
            return; /* unknown format: stop rather than guess */
        }
    }
}

/* The ELF header and the section table: every offset, size and index checked
   against the file before anything is read through it. */
static Sec *read_sections(Elf *e, int *nsec, uint32_t *flags)
{
    if (e->n < SELFMAG || memcmp(e->d, ELFMAG, SELFMAG)) {
        elf_fail(e, "no ELF header (is it a cubin?)");
        return NULL;
    }
    if (e->n < sizeof(Elf64_Ehdr)) {
        elf_fail(e, "truncated ELF header");
        return NULL;
    }
    Elf64_Ehdr h;
    rd_struct(e, 0, &h, sizeof h);
    if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB) {
        elf_fail(e, "not a 64-bit little-endian ELF file");
        return NULL;
    }
    if (h.e_machine != EM_CUDA) {
        elf_fail(e, "not a CUDA ELF file (machine is not EM_CUDA)");
        return NULL;
    }
    if (h.e_ehsize != sizeof(Elf64_Ehdr)) {
        elf_fail(e, "unexpected ELF header size %u", h.e_ehsize);
        return NULL;
    }
    if (h.e_shentsize != sizeof(Elf64_Shdr)) {
        elf_fail(e, "unexpected section header size %u", h.e_shentsize);
        return NULL;
    }
    if (h.e_shoff == 0 || !in_file(e, h.e_shoff, sizeof(Elf64_Shdr))) {
        elf_fail(e, "truncated (section headers missing)");
        return NULL;
    }
    Elf64_Shdr s0;
    rd_struct(e, h.e_shoff, &s0, sizeof s0);
    uint64_t shnum = h.e_shnum ? h.e_shnum : s0.sh_size; /* extended numbering */
    uint64_t shstrndx = h.e_shstrndx == SHN_XINDEX ? s0.sh_link : h.e_shstrndx;
    if (shnum == 0 || shnum > MAX_SECTIONS || !in_file(e, h.e_shoff, shnum * sizeof(Elf64_Shdr))) {
        elf_fail(e, "truncated (section header table past the end of the file)");
        return NULL;
    }
    if (shstrndx == 0 || shstrndx >= shnum) {
        elf_fail(e, "bad section-name table index %" PRIu64 " (%" PRIu64 " sections)", shstrndx, shnum);
        return NULL;
    }
    uint64_t phnum = h.e_phnum == PN_XNUM ? s0.sh_info : h.e_phnum;
    if (phnum) { /* the segments the driver loads */
        if (h.e_phentsize != sizeof(Elf64_Phdr)) {
            elf_fail(e, "unexpected program header size %u", h.e_phentsize);
            return NULL;
        }
        if (phnum > MAX_SECTIONS || !in_file(e, h.e_phoff, phnum * sizeof(Elf64_Phdr))) {
            elf_fail(e, "truncated (program header table past the end of the file)");
            return NULL;
        }
        for (uint64_t i = 0; i < phnum; i++) {
            Elf64_Phdr ph;
            rd_struct(e, h.e_phoff + i * sizeof ph, &ph, sizeof ph);
            if (!in_file(e, ph.p_offset, ph.p_filesz)) {
                elf_fail(e, "truncated (segment %" PRIu64 " extends past the end of the file)", i);
                return NULL;
            }
        }
    }
    int ns = (int)shnum;
    Sec *sec = xcalloc((size_t)ns, sizeof *sec);
    for (int i = 0; i < ns; i++) {
        rd_struct(e, h.e_shoff + (uint64_t)i * sizeof(Elf64_Shdr), &sec[i].h, sizeof(Elf64_Shdr));
        sec[i].sname = "";
    }
    /* section 0 is reserved (with extended numbering its fields hold counts):
       never read; every other section holds bytes of the file unless NOBITS */
    Sec *names = &sec[shstrndx];
    if (names->h.sh_type != SHT_STRTAB) {
        elf_fail(e, "the section-name table (section %" PRIu64 ") is not a string table", shstrndx);
        goto fail;
    }
    if (!in_file(e, names->h.sh_offset, names->h.sh_size)) {
        elf_fail(e, "the section-name table (section %" PRIu64 ": offset %" PRIu64 ", %" PRIu64
                 " bytes) extends past the end of the file (%zu bytes)",
                 shstrndx, (uint64_t)names->h.sh_offset, (uint64_t)names->h.sh_size, e->n);
        goto fail;
    }
    names->bytes = 1;
    for (int i = 1; i < ns; i++) {
        const char *nm = sec_string(e, names, sec[i].h.sh_name);
        if (!nm) {
            elf_fail(e, "section %d: its name (at %u) is not a NUL-terminated string inside the "
                     "section-name table", i, sec[i].h.sh_name);
            goto fail;
        }
        sec[i].sname = nm;
    }
    for (int i = 1; i < ns; i++) {
        Sec *s = &sec[i];
        if (s->h.sh_type == SHT_NOBITS) continue;
        if (!in_file(e, s->h.sh_offset, s->h.sh_size)) {
            elf_fail(e, "section %d (%s, type 0x%x: offset %" PRIu64 ", %" PRIu64 " bytes) extends "
                     "past the end of the file (%zu bytes)", i, s->sname, s->h.sh_type,
                     (uint64_t)s->h.sh_offset, (uint64_t)s->h.sh_size, e->n);
            goto fail;
        }
        s->bytes = 1;
    }
    *nsec = ns;
    *flags = h.e_flags;
    return sec;
fail:
    free(sec);
    return NULL;
}

static int parse_elf(Artifact *a, Elf *e)
{
    int ns;
    uint32_t flags;
    Sec *sec = read_sections(e, &ns, &flags);
    if (!sec) return -1;
    int rc = -1;
    a->elf_sm = (int)((flags >> 8) & 0xff);

    const Sec *symtab = NULL;
    for (int i = 1; i < ns && !symtab; i++)
        if (sec[i].h.sh_type == SHT_SYMTAB) symtab = &sec[i];
    if (!symtab || symtab->h.sh_entsize != sizeof(Elf64_Sym) || symtab->h.sh_link == 0 ||
        symtab->h.sh_link >= (uint32_t)ns || sec[symtab->h.sh_link].h.sh_type != SHT_STRTAB) {
        elf_fail(e, "no symbol table");
        goto out;
    }
    const Sec *strtab = &sec[symtab->h.sh_link];
    uint64_t nsym = symtab->h.sh_size / sizeof(Elf64_Sym);
    const Sec *info = find_sec(sec, ns, ".nv.info");
    const unsigned char *plan = NULL;
    uint64_t plan_size = 0;
    int cap = 0;
    for (uint64_t j = 0; j < nsym; j++) {
        Elf64_Sym y;
        rd_struct(e, symtab->h.sh_offset + j * sizeof y, &y, sizeof y);
        const char *name = sec_string(e, strtab, y.st_name);
        if (!name) {
            elf_fail(e, "symbol %" PRIu64 ": its name (at %u) is not a NUL-terminated string inside %s",
                     j, y.st_name, strtab->sname[0] ? strtab->sname : "the string table");
            goto out;
        }
        int type = ELF64_ST_TYPE(y.st_info);
        /* an index of a real section (not SHN_UNDEF, SHN_ABS, SHN_XINDEX, ...) */
        int in_sec = y.st_shndx != SHN_UNDEF && y.st_shndx < SHN_LORESERVE && y.st_shndx < ns;
        if (!*name) continue;
        if (type == STT_OBJECT && !strcmp(name, ARTIFACT_SYMBOL)) {
            if (!in_sec) {
                elf_fail(e, "kanc_plan is in no section");
                goto out;
            }
            const Sec *s = &sec[y.st_shndx];
            uint64_t at = y.st_value >= s->h.sh_addr && s->h.sh_addr ? y.st_value - s->h.sh_addr : y.st_value;
            if (!s->bytes || at > s->h.sh_size || y.st_size > s->h.sh_size - at || y.st_size == 0) {
                elf_fail(e, "kanc_plan lies outside its section");
                goto out;
            }
            plan = e->d + s->h.sh_offset + at;
            plan_size = y.st_size;
        } else if (type == STT_FUNC && (y.st_other & STO_CUDA_ENTRY) && in_sec) {
            if (a->n_kernels == cap) a->kernels = xrealloc(a->kernels, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *a->kernels);
            ArtifactKernel *k = &a->kernels[a->n_kernels++];
            memset(k, 0, sizeof *k);
            snprintf(k->name, sizeof k->name, "%s", name);
            k->regs = k->frame_bytes = k->max_stack = -1;
            k->code_bytes = (int64_t)(y.st_size ? y.st_size : sec[y.st_shndx].h.sh_size);
            char *sn = xasprintf(".nv.shared.%s", name);
            const Sec *sh = find_sec(sec, ns, sn);
            free(sn);
            if (sh) k->static_smem = (int64_t)sh->h.sh_size;
            read_nv_info(e, info, (uint32_t)j, k);
            sn = xasprintf(".nv.info.%s", name);
            read_nv_info(e, find_sec(sec, ns, sn), (uint32_t)j, k);
            free(sn);
        }
    }
    if (!plan) {
        snprintf(e->err, e->errlen,
                 "%s: no kanc plan in this cubin (symbol %s missing): it was not made by kanc -o",
                 e->label, ARTIFACT_SYMBOL);
        goto out;
    }
    if (!(a->json = artifact_unpack_plan(plan, plan_size, e->label, e->err, e->errlen))) goto out;
    rc = 0;
out:
    free(sec);
    return rc;
}

void artifact_free(Artifact *a)
{
    free(a->path);
    free(a->data);
    free(a->json);
    free(a->kernels);
    cJSON_Delete(a->plan);
    memset(a, 0, sizeof *a);
}

int artifact_parse(Artifact *a, const void *data, size_t size, const char *label, char *err,
                   size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->path = xstrdup(label);
    a->data = xmalloc(size ? size : 1);
    if (size) memcpy(a->data, data, size);
    a->size = size;
    Elf e = {a->data, size, label, err, errlen};
    if (parse_elf(a, &e)) goto fail;
    if (!(a->plan = cJSON_Parse(a->json)) || !cJSON_IsObject(a->plan)) {
        snprintf(err, errlen, "%s: the embedded plan is not valid JSON (corrupt cubin?)", label);
        goto fail;
    }
    const char *fmt = artifact_str(a, "format");
    int version = (int)artifact_num(a, "version", -1);
    if (!fmt || strcmp(fmt, ARTIFACT_FORMAT)) {
        snprintf(err, errlen, "%s: the embedded plan is not a kanc step plan", label);
        goto fail;
    }
    if (version != ARTIFACT_VERSION) {
        snprintf(err, errlen, "%s: plan format version %d%s; this kanrun reads version %d: recompile it "
                 "with kanc", label, version,
                 version == 1 ? " (one kernel per launch, offsets compiled in)" : "", ARTIFACT_VERSION);
        goto fail;
    }
    if (!artifact_str(a, "source") || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(a->plan, "hyperparameters")) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(a->plan, "launches"))) {
        snprintf(err, errlen, "%s: the embedded plan lacks its model source, hyperparameters or launches", label);
        goto fail;
    }
    return 0;
fail:
    artifact_free(a);
    return -1;
}

int artifact_read(Artifact *a, const char *path, char *err, size_t errlen)
{
    size_t n;
    char why[256];
    char *d = read_file_why(path, &n, why, sizeof why);
    if (!d) {
        memset(a, 0, sizeof *a);
        snprintf(err, errlen, "%s: cannot read: %s", path, why);
        return -1;
    }
    int rc = artifact_parse(a, d, n, path, err, errlen);
    free(d);
    return rc;
}

int artifact_is_cubin(const char *path)
{
    size_t l = strlen(path);
    if (l > 6 && !strcmp(path + l - 6, ".cubin")) return 1;
    int fd = open_regular(path, NULL, 0); /* a FIFO is not waited on: its reader says what it is */
    if (fd < 0) return 0;
    unsigned char m[4] = {0};
    ssize_t got = read(fd, m, 4);
    close(fd);
    return got == 4 && !memcmp(m, "\x7f" "ELF", 4);
}

/* ------------------------------------------------------------ plan fields */

const char *artifact_str(const Artifact *a, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->plan, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double artifact_num(const Artifact *a, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->plan, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

const char *artifact_model_source(const Artifact *a, const char **model_path)
{
    if (model_path) {
        const char *p = artifact_str(a, "model");
        *model_path = p ? p : a->path;
    }
    return artifact_str(a, "source");
}

void artifact_model_sets(const Artifact *a, ConfigSets *cs)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(a->plan, "hyperparameters"), *v;
    cJSON_ArrayForEach(v, h) if (cJSON_IsString(v)) config_sets_add(cs, v->string, v->valuestring, 0);
}

/* ------------------------------------------------------------ fingerprint */

uint64_t artifact_graph_hash(const Graph *g)
{
    uint64_t h = FNV1A64_INIT;
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        int64_t v[] = {n->op, n->nin, n->dtype, n->shape.nd, n->aux_numel, n->fwd, n->gparam,
                       n->trainable, n->decay, n->init,
#define HASH_INT(type, name) (int64_t)n->a.name,
#define HASH_SKIP(type, name)
                       GATTR_FIELDS(HASH_INT, HASH_SKIP)};
        h = fnv1a64(h, v, sizeof v);
        h = fnv1a64(h, n->in, sizeof(int) * (size_t)n->nin);
        h = fnv1a64(h, n->shape.d, sizeof(int64_t) * (size_t)n->shape.nd);
#define HASH_REAL(type, name) (double)n->a.name,
        double dv[] = {GATTR_FIELDS(HASH_SKIP, HASH_REAL) n->init_a, n->init_b};
#undef HASH_INT
#undef HASH_REAL
#undef HASH_SKIP
        h = fnv1a64(h, dv, sizeof dv);
        if (n->name && (n->op == OP_PARAM || n->op == OP_BUFFER || n->op == OP_INPUT))
            h = fnv1a64(h, n->name, strlen(n->name) + 1);
    }
    return h;
}

/* ------------------------------------------------------------ writing */

static const char *init_name(GInit i)
{
    static const char *names[] = {"none", "zeros", "ones", "normal", "kaiming_uniform",
                                  "kan_spline", "kan_grid", "tril"};
    return i >= 0 && i < (int)(sizeof names / sizeof *names) ? names[i] : "?";
}

static cJSON *shape_json(const GShape *s)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < s->nd; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s->d[i]));
    return a;
}

static cJSON *u3(const unsigned v[3])
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int area_index(const char *s)
{
    for (int i = 0; i < KANC_N_AREAS; i++)
        if (s && !strcmp(s, kanc_area_name(i))) return i;
    return -1;
}

static cJSON *operand(int area, int64_t off)
{
    cJSON *o = cJSON_CreateArray();
    cJSON_AddItemToArray(o, cJSON_CreateString(kanc_area_name(area)));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    return o;
}

/* the token input "idx" (or the first int32 input): batch and block size */
static int token_input(const Graph *g)
{
    int idx = graph_find(g, OP_INPUT, "idx");
    for (int i = 0; i < g->n_forward && idx < 0; i++)
        if (g->nodes[i].op == OP_INPUT && g->nodes[i].dtype == DT_I32) idx = i;
    return idx;
}

char *artifact_plan_json(const Plan *p, const CudaProgram *prog, const ArtifactMeta *meta)
{
    const Graph *g = p->g;
    cJSON *o = cJSON_CreateObject();
    char hex[32];
    cJSON_AddStringToObject(o, "format", ARTIFACT_FORMAT);
    cJSON_AddNumberToObject(o, "version", ARTIFACT_VERSION);
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d", meta->sm);
    cJSON_AddStringToObject(o, "arch", arch);
    cJSON_AddStringToObject(o, "model", meta->model_path ? meta->model_path : "");
    cJSON_AddStringToObject(o, "mode", "train");
    cJSON_AddStringToObject(o, "source", meta->source ? meta->source : "");
    cJSON *hp = cJSON_AddObjectToObject(o, "hyperparameters");
    for (int i = 0; meta->params && i < meta->params->n; i++)
        cJSON_AddStringToObject(hp, meta->params->names[i], meta->params->values[i]);
    cJSON_AddStringToObject(o, "tokenizer", meta->tokenizer ? meta->tokenizer : "bytes");
    int idx = token_input(g);
    cJSON_AddNumberToObject(o, "batch", idx >= 0 && g->nodes[idx].shape.nd >= 1 ? (double)g->nodes[idx].shape.d[0] : -1);
    cJSON_AddNumberToObject(o, "block_size", idx >= 0 && g->nodes[idx].shape.nd >= 2 ? (double)g->nodes[idx].shape.d[1] : -1);
    cJSON_AddNumberToObject(o, "vocab_size", idx >= 0 ? (double)graph_vocab(g, idx) : -1);
    cJSON_AddNumberToObject(o, "real_size", (double)p->real_size);
    snprintf(hex, sizeof hex, "%016" PRIx64, artifact_graph_hash(g));
    cJSON_AddStringToObject(o, "graph_hash", hex);
    cJSON_AddNumberToObject(o, "n_nodes", g->n);
    cJSON_AddNumberToObject(o, "n_forward", g->n_forward);
    cJSON_AddNumberToObject(o, "loss", g->loss);
    cJSON_AddNumberToObject(o, "output", g->output);
    cJSON_AddNumberToObject(o, "arena_bytes", (double)p->arena_bytes);
    cJSON_AddNumberToObject(o, "n_param_elems", (double)p->n_param_elems);
    cJSON_AddNumberToObject(o, "n_buffer_elems", (double)p->n_buffer_elems);
    cJSON_AddNumberToObject(o, "ws_elems", (double)p->ws_elems);
    cJSON_AddNumberToObject(o, "ws_bytes", (double)prog->ws_bytes);
    cJSON_AddStringToObject(o, "precision", cuda_precision_name(prog->precision));
    cJSON_AddNumberToObject(o, "ws_cast_bytes", (double)prog->ws_cast_bytes);
    cJSON_AddNumberToObject(o, "args_bytes", (double)sizeof(KancArgs));
    cJSON_AddNumberToObject(o, "scalars_bytes", (double)sizeof(KancScalars));
    cJSON_AddNumberToObject(o, "launch_args_bytes", (double)sizeof(KancLaunchArgs));
    cJSON_AddNumberToObject(o, "n_kernels", prog->n_kernels);
    int64_t nparam = 0;
    cJSON *params = cJSON_AddArrayToObject(o, "params"), *buffers = cJSON_AddArrayToObject(o, "buffers"),
          *inputs = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < g->n; i++) {
        const GNode *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_BUFFER && n->op != OP_INPUT) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", n->name ? n->name : "");
        cJSON_AddNumberToObject(e, "node", i);
        cJSON_AddItemToObject(e, "shape", shape_json(&n->shape));
        if (n->op == OP_INPUT) {
            cJSON_AddStringToObject(e, "dtype", n->dtype == DT_I32 ? "i32" : "f32");
            cJSON_AddNumberToObject(e, "offset", (double)p->off[i]);
            cJSON_AddItemToArray(inputs, e);
            continue;
        }
        cJSON_AddNumberToObject(e, "offset", (double)p->pos[i]);
        cJSON_AddStringToObject(e, "init", init_name(n->init));
        if (n->init_a || n->init_b) {
            cJSON_AddNumberToObject(e, "init_a", n->init_a);
            cJSON_AddNumberToObject(e, "init_b", n->init_b);
        }
        if (n->op == OP_PARAM) {
            cJSON_AddBoolToObject(e, "decay", n->decay);
            cJSON_AddBoolToObject(e, "trainable", n->trainable);
            nparam += shape_numel(&n->shape);
            cJSON_AddItemToArray(params, e);
        } else {
            cJSON_AddBoolToObject(e, "optional", n->optional);
            cJSON_AddItemToArray(buffers, e);
        }
    }
    cJSON_AddNumberToObject(o, "n_params", (double)nparam);
    cJSON *off = cJSON_AddArrayToObject(o, "value_offsets"), *aux = cJSON_AddArrayToObject(o, "aux_offsets");
    for (int i = 0; i < g->n; i++) {
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)p->off[i]));
        cJSON_AddItemToArray(aux, cJSON_CreateNumber((double)p->aux_off[i]));
    }
    cJSON *ls = cJSON_AddArrayToObject(o, "launches");
    for (int i = 0; i < prog->n_launch; i++) {
        const CudaLaunch *l = &prog->launch[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "node", l->node);
        if (l->node >= 0 && l->node < g->n) cJSON_AddStringToObject(e, "op", op_name(g->nodes[l->node].op));
        if (l->kind == LAUNCH_KERNEL) {
            cJSON_AddStringToObject(e, "kind", "kernel");
            cJSON_AddStringToObject(e, "name", l->name);
            cJSON_AddItemToObject(e, "grid", u3(l->grid));
            cJSON_AddItemToObject(e, "block", u3(l->block));
            cJSON_AddNumberToObject(e, "smem", l->smem);
            cJSON *args = cJSON_AddArrayToObject(e, "args"); /* la.v[i]: [area, byte offset] or an integer */
            for (int k = 0; k < l->n_args; k++)
                cJSON_AddItemToArray(args, l->arg[k].area == CUDA_ARG_INT
                                               ? cJSON_CreateNumber((double)l->arg[k].value)
                                               : operand(l->arg[k].area, l->arg[k].value));
        } else {
            const GemmDesc *m = &l->gemm;
            cJSON_AddStringToObject(e, "kind", "gemm");
            if (l->name[0]) cJSON_AddStringToObject(e, "name", l->name);
            cJSON_AddBoolToObject(e, "trans_a", m->trans_a);
            cJSON_AddBoolToObject(e, "trans_b", m->trans_b);
            cJSON_AddNumberToObject(e, "m", (double)m->m);
            cJSON_AddNumberToObject(e, "n", (double)m->n);
            cJSON_AddNumberToObject(e, "k", (double)m->k);
            cJSON_AddNumberToObject(e, "lda", (double)m->lda);
            cJSON_AddNumberToObject(e, "ldb", (double)m->ldb);
            cJSON_AddNumberToObject(e, "ldc", (double)m->ldc);
            cJSON_AddNumberToObject(e, "alpha", m->alpha);
            cJSON_AddNumberToObject(e, "beta", m->beta);
            cJSON_AddItemToObject(e, "a", operand(m->area_a, m->off_a));
            cJSON_AddItemToObject(e, "b", operand(m->area_b, m->off_b));
            cJSON_AddItemToObject(e, "c", operand(m->area_c, m->off_c));
            if (m->batch > 1) { /* a strided batch (attention's per-head products) */
                cJSON_AddNumberToObject(e, "batch", m->batch);
                cJSON_AddNumberToObject(e, "stride_a", (double)m->stride_a);
                cJSON_AddNumberToObject(e, "stride_b", (double)m->stride_b);
                cJSON_AddNumberToObject(e, "stride_c", (double)m->stride_c);
            }
            cJSON_AddStringToObject(e, "type_a", gemm_type_name(m->type_a));
            cJSON_AddStringToObject(e, "type_b", gemm_type_name(m->type_b));
        }
        cJSON_AddItemToArray(ls, e);
    }
    cJSON *nl = cJSON_AddArrayToObject(o, "node_launches"); /* [node, first, count] */
    for (int i = 0; prog->node_first && i < g->n; i++) {
        if (prog->node_first[i] < 0 || prog->node_count[i] <= 0) continue;
        cJSON *t = cJSON_CreateArray();
        cJSON_AddItemToArray(t, cJSON_CreateNumber(i));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(prog->node_first[i]));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(prog->node_count[i]));
        cJSON_AddItemToArray(nl, t);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *r = xstrdup(s);
    cJSON_free(s);
    return r;
}

/* ------------------------------------------------------------ the stored plan */

unsigned char *artifact_pack_plan(const char *json, size_t *size)
{
    size_t n = strlen(json);
    uLongf zn = compressBound((uLong)n);
    unsigned char *out = xmalloc(ARTIFACT_PACK_HEADER + zn);
    memcpy(out, ARTIFACT_PACK_MAGIC, 4);
    for (int i = 0; i < 8; i++) out[4 + i] = (unsigned char)((uint64_t)n >> (8 * i));
    if (compress2(out + ARTIFACT_PACK_HEADER, &zn, (const Bytef *)json, (uLong)n, Z_BEST_COMPRESSION) != Z_OK)
        die("kanc: zlib could not compress the %zu-byte plan", n); /* only out of memory */
    *size = ARTIFACT_PACK_HEADER + zn;
    return out;
}

char *artifact_unpack_plan(const unsigned char *d, size_t n, const char *label, char *err, size_t errlen)
{
    if (n < 4 || memcmp(d, ARTIFACT_PACK_MAGIC, 4)) { /* a plain JSON plan (cubins before the packing) */
        while (n && d[n - 1] == 0) n--;
        char *json = xmalloc(n + 1);
        memcpy(json, d, n);
        json[n] = 0;
        return json;
    }
    if (n < ARTIFACT_PACK_HEADER) {
        snprintf(err, errlen, "%s: the embedded plan is cut short (%zu bytes; its header alone is %d)", label, n,
                 ARTIFACT_PACK_HEADER);
        return NULL;
    }
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)d[4 + i] << (8 * i);
    if (len == 0 || len > ARTIFACT_PLAN_MAX) {
        snprintf(err, errlen, "%s: the embedded plan claims %" PRIu64 " bytes of JSON (at most %d MiB are "
                 "plausible): a corrupt cubin", label, len, ARTIFACT_PLAN_MAX >> 20);
        return NULL;
    }
    char *json = xmalloc((size_t)len + 1);
    z_stream z = {0};
    z.next_in = (Bytef *)(uintptr_t)(d + ARTIFACT_PACK_HEADER);
    z.avail_in = (uInt)(n - ARTIFACT_PACK_HEADER);
    z.next_out = (Bytef *)json;
    z.avail_out = (uInt)len;
    int r = inflateInit(&z);
    if (r == Z_OK) r = inflate(&z, Z_FINISH);
    /* what follows the stream is the string literal's NUL */
    int ok = r == Z_STREAM_END && z.total_out == len;
    if (!ok)
        snprintf(err, errlen, "%s: the embedded plan's zlib stream is %s (corrupt cubin?)", label,
                 r == Z_STREAM_END ? "shorter than its header says"
                 : r == Z_BUF_ERROR && z.avail_in == 0 ? "cut short"
                 : r == Z_BUF_ERROR ? "longer than its header says"
                 : z.msg ? z.msg : "damaged");
    inflateEnd(&z);
    if (!ok) {
        free(json);
        return NULL;
    }
    json[len] = 0;
    if (memchr(json, 0, (size_t)len)) {
        snprintf(err, errlen, "%s: the embedded plan holds a NUL byte (corrupt cubin?)", label);
        free(json);
        return NULL;
    }
    return json;
}

char *artifact_embed(const char *source, const char *json)
{
    size_t n, sl = strlen(source);
    unsigned char *packed = artifact_pack_plan(json, &n);
    /* worst case: 4 bytes per byte (an octal escape), plus a 3-byte break every 25 bytes */
    size_t cap = sl + 5 * n + 512;
    char *out = xmalloc(cap), *w = out;
    memcpy(w, source, sl);
    w += sl;
    if (sl && source[sl - 1] != '\n') *w++ = '\n';
    w += sprintf(w,
                 "\n/* ---- the step plan (zlib-compressed JSON), read back from the cubin by kanrun: see "
                 "docs/cuda.md ---- */\n"
                 "extern \"C\" __device__ const unsigned char %s[%zu] __attribute__((used)) =\n\"",
                 ARTIFACT_SYMBOL, n + 1);
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = packed[i];
        if (col >= 100) {
            w += sprintf(w, "\"\n\"");
            col = 0;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '?') {
            *w++ = (char)c;
            col++;
        } else {
            w += sprintf(w, "\\%03o", c);
            col += 4;
        }
    }
    w += sprintf(w, "\";\n");
    *w = 0;
    free(packed);
    return out;
}

static int write_text(const char *path, const char *text, FILE *diag)
{
    char err[512];
    if (atomic_write_file(path, text, strlen(text), err, sizeof err)) {
        fprintf(diag, "kanc: error: %s\n", err);
        return -1;
    }
    return 0;
}

int artifact_compile(const ArtifactOptions *o, FILE *diag)
{
    char err[1024];
    int sm, rc = 1;
    if (nvrtc_parse_arch(o->arch ? o->arch : "sm_90", &sm, err, sizeof err)) {
        fprintf(diag, "kanc: error: %s\n", err);
        return 1;
    }
    size_t len;
    char why[256];
    char *src = read_file_why(o->model_path, &len, why, sizeof why);
    if (!src) {
        fprintf(diag, "%s: error: cannot read the model: %s\n", o->model_path, why);
        return 1;
    }
    Graph g;
    graph_init(&g);
    KdlParams params = {0};
    Plan plan = {0};
    CudaProgram prog = {0};
    NvrtcOutput nv = {0};
    char *json = NULL, *full = NULL;
    int have_plan = 0, have_prog = 0;
    if (kdl_compile(o->model_path, src, len, o->sets, o->nsets, &g, &params, diag)) goto out;
    g.n_forward = g.n;
    if (g.loss < 0) {
        fprintf(diag, "%s: error: a training step needs the model to return a scalar named 'loss'\n",
                o->model_path);
        goto out;
    }
    if (autodiff(&g, g.loss, -1, 0, err, sizeof err)) {
        fprintf(diag, "%s: error: %s\n", o->model_path, err);
        goto out;
    }
    autodiff_add_optimizer(&g);
    CudaOptions co;
    cuda_options_default(&co);
    if (cuda_options_from_env(&co, err, sizeof err)) {
        fprintf(diag, "kanc: error: %s\n", err);
        goto out;
    }
    if (o->kan_kernel && cuda_kan_kernel_parse(o->kan_kernel, &co.kan_kernel)) {
        fprintf(diag, "kanc: error: --kan-kernel %s: expected auto, fused or blocked\n", o->kan_kernel);
        goto out;
    }
    /* a cubin is for a GPU: bf16 unless KANC_PRECISION or --precision says fp32 */
    const char *env_prec = getenv("KANC_PRECISION");
    if (!(env_prec && *env_prec)) co.precision = CUDA_BF16;
    if (o->precision && cuda_precision_parse(o->precision, &co.precision)) {
        fprintf(diag, "kanc: error: --precision %s: expected fp32 or bf16\n", o->precision);
        goto out;
    }
    plan_build_for(&plan, &g, 4, co.precision == CUDA_BF16 && co.use_cublas); /* laid out for the step's precision */
    have_plan = 1;
    if (codegen_cuda(&plan, &co, &prog, err, sizeof err)) {
        fprintf(diag, "%s: error: CUDA code generation: %s\n", o->model_path, err);
        goto out;
    }
    have_prog = 1;
    const char *tok = o->tokenizer;
    if (!tok) {
        int idx = token_input(&g);
        tok = idx >= 0 && graph_vocab(&g, idx) == 50257 ? "gpt2" : "bytes";
    }
    ArtifactMeta meta = {.model_path = o->model_path, .source = src, .params = &params,
                         .tokenizer = tok, .sm = sm};
    json = artifact_plan_json(&plan, &prog, &meta);
    full = artifact_embed(prog.source, json);
    if (o->emit_source && write_text(o->emit_source, full, diag)) goto out;
    if (o->out_path) {
        if (nvrtc_compile(full, "step.cu", sm, &nv, diag, err, sizeof err)) {
            fprintf(diag, "%s: error: %s%s\n", o->model_path, err,
                    o->emit_source ? "" : "; --emit-source FILE saves the source the line numbers refer to");
            goto out;
        }
        Artifact check; /* read it back as kanrun will */
        if (artifact_parse(&check, nv.cubin, nv.size, o->out_path, err, sizeof err)) {
            fprintf(diag, "kanc: internal error: the cubin does not read back: %s\n", err);
            goto out;
        }
        artifact_free(&check);
        if (atomic_write_file(o->out_path, nv.cubin, nv.size, err, sizeof err)) {
            fprintf(diag, "kanc: error: %s\n", err);
            goto out;
        }
        if (o->verbose) {
            int nk = 0, ng = 0;
            for (int i = 0; i < prog.n_launch; i++) *(prog.launch[i].kind == LAUNCH_GEMM ? &ng : &nk) += 1;
            printf("%s: %s for sm_%d (%zu bytes; %d kernel launches of %d distinct kernels, %d GEMMs, "
                   "arena %.1f MiB)\n",
                   o->model_path, o->out_path, sm, nv.size, nk, prog.n_kernels, ng,
                   (double)plan.arena_bytes / (1 << 20));
        }
    }
    rc = 0;
out:
    nvrtc_output_free(&nv);
    free(json);
    free(full);
    if (have_prog) cuda_program_free(&prog);
    if (have_plan) plan_free(&plan);
    graph_free(&g);
    kdl_params_free(&params);
    free(src);
    return rc;
}

/* ------------------------------------------------------------ reading the plan back */

static int64_t jint(const cJSON *o, const char *k, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

int artifact_check_plan(const Artifact *a, const Plan *p, char *err, size_t errlen)
{
    const Graph *g = p->g;
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, artifact_graph_hash(g));
    const char *want = artifact_str(a, "graph_hash");
    const char *why = NULL;
    if (jint(a->plan, "n_nodes", -1) != g->n) why = "a different number of graph nodes";
    else if (!want || strcmp(want, hex)) why = "a different graph (ops, shapes or names)";
    else if (jint(a->plan, "real_size", -1) != (int64_t)p->real_size) why = "a different real size";
    else if (jint(a->plan, "arena_bytes", -1) != p->arena_bytes) why = "a different arena size";
    else if (jint(a->plan, "n_param_elems", -1) != p->n_param_elems) why = "a different parameter area";
    else if (jint(a->plan, "n_buffer_elems", -1) != p->n_buffer_elems) why = "a different buffer area";
    else if (jint(a->plan, "ws_elems", -1) != p->ws_elems) why = "a different workspace size";
    else if (jint(a->plan, "args_bytes", -1) != (int64_t)sizeof(KancArgs) ||
             jint(a->plan, "scalars_bytes", -1) != (int64_t)sizeof(KancScalars) ||
             jint(a->plan, "launch_args_bytes", -1) != (int64_t)sizeof(KancLaunchArgs))
        why = "a different kernel argument layout (KancArgs / KancScalars / KancLaunchArgs)";
    if (why) {
        snprintf(err, errlen, "%s: the cubin was compiled for %s than this model builds now "
                 "(recompile it with kanc, or drop conflicting --set flags)", a->path, why);
        return -1;
    }
    const char *tabs[] = {"params", "buffers", "inputs"};
    for (int t = 0; t < 3; t++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(a->plan, tabs[t]))
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            int node = (int)jint(e, "node", -1);
            GOp op = t == 0 ? OP_PARAM : t == 1 ? OP_BUFFER : OP_INPUT;
            if (!cJSON_IsString(nm) || graph_find(g, op, nm->valuestring) != node) {
                snprintf(err, errlen, "%s: %s entry '%s' does not match the model", a->path, tabs[t],
                         cJSON_IsString(nm) ? nm->valuestring : "?");
                return -1;
            }
            int64_t off = t == 2 ? p->off[node] : p->pos[node];
            if (jint(e, "offset", -2) != off) {
                snprintf(err, errlen, "%s: '%s' is at offset %lld in the cubin's plan, %lld in the model's",
                         a->path, nm->valuestring, (long long)jint(e, "offset", -2), (long long)off);
                return -1;
            }
        }
    }
    const cJSON *vo = cJSON_GetObjectItemCaseSensitive(a->plan, "value_offsets"),
                *ao = cJSON_GetObjectItemCaseSensitive(a->plan, "aux_offsets");
    if (cJSON_GetArraySize(vo) != g->n || cJSON_GetArraySize(ao) != g->n) {
        snprintf(err, errlen, "%s: the plan's offset tables do not cover the graph", a->path);
        return -1;
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vo)
    {
        if (!cJSON_IsNumber(v) || (int64_t)v->valuedouble != p->off[i]) {
            snprintf(err, errlen, "%s: node %d (%s) is placed differently in the cubin's plan", a->path, i,
                     op_name(g->nodes[i].op));
            return -1;
        }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(v, ao)
    {
        if (!cJSON_IsNumber(v) || (int64_t)v->valuedouble != p->aux_off[i]) {
            snprintf(err, errlen, "%s: node %d's saved tensor is placed differently in the cubin's plan",
                     a->path, i);
            return -1;
        }
        i++;
    }
    return 0;
}

static int read_u3(const cJSON *arr, unsigned out[3])
{
    if (cJSON_GetArraySize(arr) != 3) return -1;
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 2147483647.0) return -1;
        out[i] = (unsigned)x->valuedouble;
    }
    return 0;
}

static int read_operand(const cJSON *arr, int *area, int64_t *off)
{
    const cJSON *a = cJSON_GetArrayItem(arr, 0), *o = cJSON_GetArrayItem(arr, 1);
    if (cJSON_GetArraySize(arr) != 2 || !cJSON_IsString(a) || !cJSON_IsNumber(o)) return -1;
    *area = area_index(a->valuestring);
    *off = (int64_t)o->valuedouble;
    return *area < 0 || *off < 0 ? -1 : 0;
}

/* a kernel launch's "args": [area, byte offset] for a tensor, a number for an integer */
static int read_args(const cJSON *arr, CudaLaunch *l)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > KANC_MAX_LAUNCH_ARGS) return -1;
    const cJSON *x;
    l->n_args = 0;
    cJSON_ArrayForEach(x, arr)
    {
        CudaArg *a = &l->arg[l->n_args++];
        if (cJSON_IsNumber(x)) {
            if (x->valuedouble < -9e15 || x->valuedouble > 9e15) return -1;
            *a = (CudaArg){CUDA_ARG_INT, (int64_t)x->valuedouble};
        } else if (read_operand(x, &a->area, &a->value)) {
            return -1;
        }
    }
    return 0;
}

/* a string member of a JSON object, NULL if absent */
static const char *artifact_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* a GEMM operand's type, "fp32" (also when absent: plans before bf16) or "bf16"; 1 if malformed */
static int read_gemm_type(const cJSON *e, const char *key, int *t)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    *t = GEMM_F32;
    if (!v) return 0;
    if (!cJSON_IsString(v)) return 1;
    if (!strcmp(v->valuestring, "bf16")) *t = GEMM_BF16;
    else if (strcmp(v->valuestring, "fp32")) return 1;
    return 0;
}

int artifact_program(const Artifact *a, const Plan *p, CudaProgram *prog, char *err, size_t errlen)
{
    const Graph *g = p->g;
    memset(prog, 0, sizeof *prog);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(a->plan, "launches");
    int n = cJSON_GetArraySize(ls);
    prog->n_launch = n;
    prog->launch = xcalloc((size_t)n + 1, sizeof *prog->launch);
    prog->node_first = xmalloc(sizeof(int) * (size_t)(g->n + 1));
    prog->node_count = xcalloc((size_t)g->n + 1, sizeof(int));
    prog->ws_bytes = jint(a->plan, "ws_bytes", 0);
    prog->ws_cast_bytes = jint(a->plan, "ws_cast_bytes", 0);
    const char *prec = artifact_str(a, "precision");
    prog->precision = CUDA_FP32;
    if (prec && cuda_precision_parse(prec, &prog->precision)) {
        snprintf(err, errlen, "%s: the embedded plan's precision '%s' is neither fp32 nor bf16", a->path, prec);
        goto fail;
    }
    prog->n_kernels = (int)jint(a->plan, "n_kernels", 0);
    for (int i = 0; i < g->n; i++) prog->node_first[i] = -1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ls)
    {
        CudaLaunch *l = &prog->launch[i];
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind"),
                    *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        l->node = (int)jint(e, "node", -2);
        int bad = l->node < -1 || l->node >= g->n || !cJSON_IsString(kind);
        if (cJSON_IsString(name)) snprintf(l->name, sizeof l->name, "%s", name->valuestring);
        if (!bad && !strcmp(kind->valuestring, "kernel")) {
            l->kind = LAUNCH_KERNEL;
            int64_t smem = jint(e, "smem", -1);
            bad = !cJSON_IsString(name) || read_u3(cJSON_GetObjectItemCaseSensitive(e, "grid"), l->grid) ||
                  read_u3(cJSON_GetObjectItemCaseSensitive(e, "block"), l->block) || smem < 0 ||
                  smem > (1 << 30);
            l->smem = (unsigned)smem;
            if (!bad) bad = read_args(cJSON_GetObjectItemCaseSensitive(e, "args"), l);
            if (!bad) {
                int found = 0;
                for (int k = 0; k < a->n_kernels && !found; k++) found = !strcmp(a->kernels[k].name, l->name);
                if (!found) {
                    snprintf(err, errlen, "%s: launch %d names kernel '%s', which the cubin lacks", a->path, i,
                             l->name);
                    goto fail;
                }
            }
        } else if (!bad && !strcmp(kind->valuestring, "gemm")) {
            GemmDesc *m = &l->gemm;
            l->kind = LAUNCH_GEMM;
            m->trans_a = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "trans_a"));
            m->trans_b = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "trans_b"));
            m->m = jint(e, "m", -1), m->n = jint(e, "n", -1), m->k = jint(e, "k", -1);
            m->lda = jint(e, "lda", -1), m->ldb = jint(e, "ldb", -1), m->ldc = jint(e, "ldc", -1);
            m->alpha = (float)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "alpha"));
            m->beta = (float)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "beta"));
            m->batch = (int)jint(e, "batch", 1);
            m->stride_a = jint(e, "stride_a", 0), m->stride_b = jint(e, "stride_b", 0);
            m->stride_c = jint(e, "stride_c", 0);
            bad = m->m < 0 || m->n < 0 || m->k < 0 || m->lda < 1 || m->ldb < 1 || m->ldc < 1 || m->batch < 1 ||
                  m->stride_a < 0 || m->stride_b < 0 || m->stride_c < 0 ||
                  read_operand(cJSON_GetObjectItemCaseSensitive(e, "a"), &m->area_a, &m->off_a) ||
                  read_operand(cJSON_GetObjectItemCaseSensitive(e, "b"), &m->area_b, &m->off_b) ||
                  read_operand(cJSON_GetObjectItemCaseSensitive(e, "c"), &m->area_c, &m->off_c) ||
                  read_gemm_type(e, "type_a", &m->type_a) || read_gemm_type(e, "type_b", &m->type_b);
        } else {
            bad = 1;
        }
        if (bad) {
            snprintf(err, errlen, "%s: launch %d of the embedded plan is malformed", a->path, i);
            goto fail;
        }
        i++;
    }
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(a->plan, "node_launches");
    cJSON_ArrayForEach(e, nl)
    {
        int64_t node;
        const cJSON *x0 = cJSON_GetArrayItem(e, 0), *x1 = cJSON_GetArrayItem(e, 1), *x2 = cJSON_GetArrayItem(e, 2);
        if (!cJSON_IsNumber(x0) || !cJSON_IsNumber(x1) || !cJSON_IsNumber(x2)) goto bad_nl;
        node = (int64_t)x0->valuedouble;
        int64_t first = (int64_t)x1->valuedouble, count = (int64_t)x2->valuedouble;
        if (node < 0 || node >= g->n || first < 0 || count < 1 || first > n || count > n - first) goto bad_nl;
        prog->node_first[node] = (int)first;
        prog->node_count[node] = (int)count;
    }
    return 0;
bad_nl:
    snprintf(err, errlen, "%s: the embedded plan's node_launches table is malformed", a->path);
fail:
    cuda_program_free(prog);
    memset(prog, 0, sizeof *prog);
    return -1;
}

/* ------------------------------------------------------------ kanrun info */

static void print_mib(FILE *f, const char *label, double bytes)
{
    fprintf(f, "%-18s %.0f bytes (%.2f MiB)\n", label, bytes, bytes / (1 << 20));
}

/* "[d0, d1, ...]" for a plan's shape array, however long (caller frees) */
static char *shape_text(const cJSON *shape)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *s = open_memstream(&buf, &len);
    if (!s) die("out of memory (open_memstream)");
    fputc('[', s);
    const cJSON *d;
    int k = 0;
    cJSON_ArrayForEach(d, shape)
    {
        fputs(k++ ? ", " : "", s);
        if (!cJSON_IsNumber(d)) fputs("?", s);
        else if (d->valuedouble > -9e18 && d->valuedouble < 9e18) fprintf(s, "%lld", (long long)d->valuedouble);
        else fprintf(s, "%g", d->valuedouble);
    }
    fputc(']', s);
    fclose(s);
    return buf;
}

void artifact_print_info(const Artifact *a, FILE *f)
{
    const cJSON *pl = a->plan, *e;
    const char *model_path;
    artifact_model_source(a, &model_path);
    fprintf(f, "artifact:          %s (%zu bytes, plan format %s v%d)\n", a->path, a->size,
            artifact_str(a, "format"), (int)artifact_num(a, "version", 0));
    fprintf(f, "architecture:      %s", artifact_str(a, "arch") ? artifact_str(a, "arch") : "?");
    if (a->elf_sm) fprintf(f, " (ELF header: sm_%d)", a->elf_sm);
    fprintf(f, "\nprecision:         %s", artifact_str(a, "precision") ? artifact_str(a, "precision") : "fp32");
    if (artifact_num(a, "ws_cast_bytes", 0) > 0)
        fprintf(f, " (GEMM operands; their bf16 copies: %.2f MiB of the workspace)",
                artifact_num(a, "ws_cast_bytes", 0) / (1 << 20));
    fprintf(f, "\nmodel:             %s\n", model_path);
    fprintf(f, "hyperparameters:  ");
    int i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pl, "hyperparameters"))
        fprintf(f, "%s %s = %s", i++ ? "," : "", e->string, cJSON_IsString(e) ? e->valuestring : "?");
    fprintf(f, "\ntokenizer:         %s\n", artifact_str(a, "tokenizer") ? artifact_str(a, "tokenizer") : "?");
    fprintf(f, "batch x block:     %lld x %lld (vocab %lld)\n", (long long)jint(pl, "batch", -1),
            (long long)jint(pl, "block_size", -1), (long long)jint(pl, "vocab_size", -1));
    fprintf(f, "graph:             %lld nodes (%lld forward), fingerprint %s\n",
            (long long)jint(pl, "n_nodes", -1), (long long)jint(pl, "n_forward", -1),
            artifact_str(a, "graph_hash") ? artifact_str(a, "graph_hash") : "?");
    double rs = artifact_num(a, "real_size", 4);
    print_mib(f, "arena:", artifact_num(a, "arena_bytes", 0));
    print_mib(f, "workspace:", artifact_num(a, "ws_bytes", 0));
    print_mib(f, "parameters x 4:", 4 * rs * artifact_num(a, "n_param_elems", 0));
    print_mib(f, "buffers:", rs * artifact_num(a, "n_buffer_elems", 0));

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(pl, "params");
    fprintf(f, "\nparameters: %d tensors, %lld values\n", cJSON_GetArraySize(params),
            (long long)jint(pl, "n_params", 0));
    fprintf(f, "  %-58s %-16s %10s %-16s %s\n", "name", "shape", "offset", "init", "decay");
    const char *tabs[] = {"params", "buffers"};
    for (int t = 0; t < 2; t++) {
        if (t == 1) {
            fprintf(f, "buffers: %d tensors\n", cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pl, "buffers")));
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pl, tabs[t]))
        {
            char *shape = shape_text(cJSON_GetObjectItemCaseSensitive(e, "shape"));
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *in = cJSON_GetObjectItemCaseSensitive(e, "init");
            fprintf(f, "  %-58s %-16s %10lld %-16s %s\n", cJSON_IsString(nm) ? nm->valuestring : "?", shape,
                    (long long)jint(e, "offset", -1), cJSON_IsString(in) ? in->valuestring : "?",
                    t == 1 ? "-" : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "decay")) ? "yes" : "no");
            free(shape);
        }
    }

    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(pl, "launches");
    int nk = 0, ng = 0;
    int *uses = xcalloc((size_t)a->n_kernels + 1, sizeof(int)); /* launches per cubin kernel */
    int *first = xmalloc(sizeof(int) * ((size_t)a->n_kernels + 1)); /* its first launch */
    for (int j = 0; j < a->n_kernels; j++) first[j] = INT_MAX;
    cJSON_ArrayForEach(e, ls)
    {
        const cJSON *kd = cJSON_GetObjectItemCaseSensitive(e, "kind");
        if (cJSON_IsString(kd) && !strcmp(kd->valuestring, "gemm")) ng++;
        else nk++;
    }
    fprintf(f, "\nlaunches: %d (%d of %lld distinct kernels, %d cuBLASLt GEMMs), in order\n", nk + ng, nk,
            (long long)jint(pl, "n_kernels", -1), ng);
    fprintf(f, "  %4s %-28s %5s %-14s %-18s %-12s %6s  %s\n", "#", "kernel", "node", "op", "grid", "block",
            "dsmem", "arguments (la.v[i]: area+byte offset, or an integer)");
    i = 0;
    cJSON_ArrayForEach(e, ls)
    {
        const cJSON *kd = cJSON_GetObjectItemCaseSensitive(e, "kind"), *nm = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *op = cJSON_GetObjectItemCaseSensitive(e, "op");
        const char *ops = cJSON_IsString(op) ? op->valuestring : "-";
        long long node = (long long)jint(e, "node", -1);
        if (cJSON_IsString(kd) && !strcmp(kd->valuestring, "gemm")) {
            const char *ta = artifact_jstr(e, "type_a"), *tb = artifact_jstr(e, "type_b");
            fprintf(f, "  %4d %-28s %5lld %-14s gemm m=%lld n=%lld k=%lld %s%s alpha=%g beta=%g %s/%s\n", i,
                    "(cuBLASLt)", node, ops, (long long)jint(e, "m", 0), (long long)jint(e, "n", 0),
                    (long long)jint(e, "k", 0),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "trans_a")) ? "T" : "N",
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "trans_b")) ? "T" : "N",
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "alpha")),
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "beta")), ta ? ta : "fp32",
                    tb ? tb : "fp32");
        } else {
            unsigned gr[3] = {0}, bl[3] = {0};
            read_u3(cJSON_GetObjectItemCaseSensitive(e, "grid"), gr);
            read_u3(cJSON_GetObjectItemCaseSensitive(e, "block"), bl);
            char gs[32], bs[32];
            snprintf(gs, sizeof gs, "%u,%u,%u", gr[0], gr[1], gr[2]);
            snprintf(bs, sizeof bs, "%u,%u,%u", bl[0], bl[1], bl[2]);
            int k = -1;
            for (int j = 0; j < a->n_kernels && cJSON_IsString(nm) && k < 0; j++)
                if (!strcmp(a->kernels[j].name, nm->valuestring)) k = j;
            if (k >= 0 && !uses[k]++) first[k] = i;
            fprintf(f, "  %4d %-28.28s %5lld %-14s %-18s %-12s %6lld ", i, cJSON_IsString(nm) ? nm->valuestring : "?",
                    node, ops, gs, bs, (long long)jint(e, "smem", 0));
            const cJSON *x;
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(e, "args"))
            {
                const cJSON *ar = cJSON_GetArrayItem(x, 0), *of = cJSON_GetArrayItem(x, 1);
                if (cJSON_IsNumber(x))
                    fprintf(f, " %lld", (long long)x->valuedouble);
                else if (cJSON_IsString(ar) && cJSON_IsNumber(of))
                    fprintf(f, " %s+%lld", ar->valuestring, (long long)of->valuedouble);
                else
                    fprintf(f, " ?");
            }
            fprintf(f, "%s\n", k >= 0 ? "" : "  (not in the cubin!)");
        }
        i++;
    }
    /* the kernels in the order of their first launch (the cubin lists them in reverse) */
    int *order = xmalloc(sizeof(int) * ((size_t)a->n_kernels + 1));
    for (int j = 0; j < a->n_kernels; j++) order[j] = j;
    for (int j = 1; j < a->n_kernels; j++)
        for (int q = j; q > 0 && first[order[q]] < first[order[q - 1]]; q--) {
            int t = order[q];
            order[q] = order[q - 1];
            order[q - 1] = t;
        }
    fprintf(f, "\nkernels in the cubin: %d, in the order of their first launch\n", a->n_kernels);
    fprintf(f, "  %-28s %8s %5s %8s %8s %10s\n", "kernel", "launches", "regs", "ssmem", "local", "code");
    for (int q = 0; q < a->n_kernels; q++) {
        int j = order[q];
        const ArtifactKernel *k = &a->kernels[j];
        char regs[16] = "?", lm[24] = "?";
        if (k->regs >= 0) snprintf(regs, sizeof regs, "%d", k->regs);
        if (k->frame_bytes >= 0) snprintf(lm, sizeof lm, "%d", k->frame_bytes);
        fprintf(f, "  %-28s %8d %5s %8lld %8s %10lld\n", k->name, uses[j], regs, (long long)k->static_smem, lm,
                (long long)k->code_bytes);
    }
    fprintf(f, "(regs: EIATTR_REGCOUNT; ssmem: static shared bytes, the size of .nv.shared.<kernel>, including\n"
               "the 1 KiB sm_80+ reserves; local: EIATTR_FRAME_SIZE bytes per thread; code: .text bytes;\n"
               "dsmem: dynamic shared bytes of the launch)\n");
    free(uses);
    free(first);
    free(order);
}

int artifact_sm(const Artifact *a)
{
    const char *arch = artifact_str(a, "arch");
    return arch && !strncmp(arch, "sm_", 3) ? atoi(arch + 3) : a->elf_sm;
}
