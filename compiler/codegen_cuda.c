/* codegen_cuda.c: the CUDA target: one CUDA C++ source for every kernel of a planned step.
 *
 * The source has two parts. The fixed library (cuda/kanc_lib.cuh and the files
 * it includes, embedded at build time: the kernel ABI of cuda/kanc_abi.h, the
 * counter RNG of runtime/exec/rng.h, the warp and block primitives, and templates
 * for the fused KAN products, the GEMM, layernorm, attention, cross-entropy
 * and the reductions), then the kernels: one or more small launches per graph
 * node, each a call of the library (or a one-line loop for elementwise ops)
 * with the node's shapes and attributes compiled in and its tensors (and
 * dropout's stream) as launch arguments. A kernel is emitted once for all the
 * launches whose text is the same (cuda_emit.c, cg_kernel_end), at the place
 * of its first launch, with their list in its header comment. The launch
 * list (CudaProgram.launch) records the kernels, their arguments and the
 * plain GEMMs in execution order.
 *
 * Every kernel computes what the CPU kernels of ops/<family>_cpu.inc compute
 * for the same node (their runners show how a node's inputs map to a kernel); reductions run in a fixed order, so repeated runs give the
 * same bits. Under the emulation prelude (runtime/device/emu/cuda_emu.h, KANC_EMU)
 * each kernel also gets a host entry NAME__host that runs it on the CPU.
 *
 * One emitter per op (cuda_emit_<op> in ops/<family>.c, from the table below);
 * compiler/cuda_emit.h holds what they write with.
 */
#include "codegen_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_emit.h"
#include "embedded.h"
#include "strbuf.h"
#include "util.h"
#include "ops.h"

/* The emitters, one per op of ops/ops.def (cuda_emit_<name> in ops/<family>.c). */
#define OP(kind, ENUM, name, family, flags) void cuda_emit_##name(CudaGen *G);
#include "ops.def"
#define OP(kind, ENUM, name, family, flags) [OP_##ENUM] = cuda_emit_##name,
static const CudaEmitter EMITTERS[] = {
#include "ops.def"
};
#undef OP
_Static_assert(sizeof EMITTERS / sizeof *EMITTERS == OP__COUNT, "a CUDA emitter per op");

int codegen_cuda_has_emitter(GOp op) { return op >= 0 && op < OP__COUNT && EMITTERS[op] != NULL; }

void cuda_options_default(CudaOptions *o)
{
    memset(o, 0, sizeof *o);
    o->tile_m = 64;
    o->tile_n = 64;
    o->tile_k = 32;
    o->use_cublas = 1;
    o->kan_kernel = KAN_KERNEL_AUTO;
    o->kan_block_bytes = 64ll << 20;
    o->precision = CUDA_FP32;
    o->gemm_copy_bytes = 64ll << 20;
}

int cuda_kan_kernel_parse(const char *s, KanKernel *k)
{
    static const char *const names[] = {"auto", "fused", "blocked"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *k = (KanKernel)i;
            return 0;
        }
    return -1;
}

int cuda_precision_parse(const char *s, CudaPrecision *p)
{
    if (!strcmp(s, "fp32")) *p = CUDA_FP32;
    else if (!strcmp(s, "bf16")) *p = CUDA_BF16;
    else return -1;
    return 0;
}

int cuda_options_from_env(CudaOptions *o, char *err, size_t errlen)
{
    const char *k = getenv("KANC_KAN_KERNEL");
    if (k && *k && cuda_kan_kernel_parse(k, &o->kan_kernel)) {
        snprintf(err, errlen, "KANC_KAN_KERNEL=%s: expected auto, fused or blocked", k);
        return -1;
    }
    const char *pr = getenv("KANC_PRECISION");
    if (pr && *pr && cuda_precision_parse(pr, &o->precision)) {
        snprintf(err, errlen, "KANC_PRECISION=%s: expected fp32 or bf16", pr);
        return -1;
    }
    const char *cb = getenv("KANC_GEMM_COPY_BYTES");
    if (cb && *cb) {
        char *end;
        long long v = strtoll(cb, &end, 10);
        if (*end || v < 256) {
            snprintf(err, errlen, "KANC_GEMM_COPY_BYTES=%s: expected a number of bytes, at least 256", cb);
            return -1;
        }
        o->gemm_copy_bytes = v;
    }
    return 0;
}

int cuda_options_for_device(CudaOptions *o, const char *mode, char *err, size_t errlen)
{
    cuda_options_default(o);
    o->precision = mode && !strcmp(mode, "cuda") ? CUDA_BF16 : CUDA_FP32;
    return cuda_options_from_env(o, err, errlen);
}

/* The bf16 copies of GEMM operands are placed after the kernels' workspace,
   whose size is known only at the end: until then they live in a pseudo area
   (cuda_emit.h, CG_AREA_CAST), moved here into AREA_WS at offset base. */
static void place_casts(CudaGen *G, int64_t base)
{
    for (int i = 0; i < G->n_launch; i++) {
        CudaLaunch *l = &G->launch[i];
        for (int a = 0; l->kind == LAUNCH_KERNEL && a < l->n_args; a++)
            if (l->arg[a].area == CG_AREA_CAST) l->arg[a] = (CudaArg){AREA_WS, base + l->arg[a].value};
        if (l->kind != LAUNCH_GEMM) continue;
        GemmDesc *m = &l->gemm;
        if (m->area_a == CG_AREA_CAST) m->area_a = AREA_WS, m->off_a += base;
        if (m->area_b == CG_AREA_CAST) m->area_b = AREA_WS, m->off_b += base;
    }
}

/* Appends embedded file `name`, its quoted includes replaced by their text,
   each file once (the include guards would drop a second copy anyway). */
static int emit_embedded(CudaGen *G, const char *name, unsigned char *done)
{
    const EmbeddedFile *f = embedded_file(name);
    if (!f) {
        cg_fail(G, "cuda: the library file %s is not embedded in kanc", name);
        return -1;
    }
    int idx = (int)(f - kanc_embedded_files);
    if (done[idx]) return 0;
    done[idx] = 1;
    for (const char *l = f->text; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
        char inc[64];
        if (sscanf(l, "#include \"%63[^\"]\"", inc) == 1) {
            if (emit_embedded(G, inc, done)) return -1;
        } else {
            sb_append(&G->src, l, n);
        }
        l += n;
    }
    return 0;
}

/* The fixed library (cuda/kanc_lib.cuh, self-contained). */
static void emit_library(CudaGen *G)
{
    unsigned char *done = xcalloc((size_t)kanc_n_embedded_files, 1);
    emit_embedded(G, "kanc_lib.cuh", done);
    free(done);
}

static int count_kernel_launches(const CudaGen *G)
{
    int n = 0;
    for (int i = 0; i < G->n_launch; i++) n += G->launch[i].kind == LAUNCH_KERNEL;
    return n;
}

int cuda_launch_args(const CudaLaunch *l, const uint64_t base[KANC_N_AREAS], const int64_t *area_bytes,
                     KancLaunchArgs *la, char *err, size_t errlen)
{
    memset(la, 0, sizeof *la);
    if (l->n_args < 0 || l->n_args > KANC_MAX_LAUNCH_ARGS) {
        snprintf(err, errlen, "kernel %s (node %d): %d launch arguments (at most %d)", l->name, l->node,
                 l->n_args, KANC_MAX_LAUNCH_ARGS);
        return -1;
    }
    for (int i = 0; i < l->n_args; i++) {
        const CudaArg *a = &l->arg[i];
        if (a->area == CUDA_ARG_INT) {
            la->v[i] = (uint64_t)a->value;
            continue;
        }
        if (a->area < 0 || a->area >= KANC_N_AREAS || a->value < 0 ||
            (area_bytes && a->value > area_bytes[a->area])) {
            snprintf(err, errlen, "kernel %s (node %d): argument %d (area %d, offset %lld) is outside its "
                     "storage area", l->name, l->node, i, a->area, (long long)a->value);
            return -1;
        }
        la->v[i] = base[a->area] + (uint64_t)a->value;
    }
    return 0;
}

int codegen_cuda(const Plan *p, const CudaOptions *o, CudaProgram *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    CudaGen G = {.p = p, .g = p->g, .err = err, .errlen = errlen};
    if (o)
        G.o = *o;
    else
        cuda_options_default(&G.o);
    if (p->real_size != 4) {
        snprintf(err, errlen, "cuda: the CUDA target runs in float (plan real size %zu)", p->real_size);
        return -1;
    }
    if (G.o.tile_m < 16 || G.o.tile_m % 16 || G.o.tile_n < 16 || G.o.tile_n % 16 || G.o.tile_k < 1 ||
        G.o.tile_m > 128 || G.o.tile_n > 128 || G.o.tile_k > 64) {
        snprintf(err, errlen,
                 "cuda: tiles %dx%dx%d: tile_m and tile_n must be multiples of 16 in [16, 128], "
                 "tile_k in [1, 64]",
                 G.o.tile_m, G.o.tile_n, G.o.tile_k);
        return -1;
    }
    if (G.o.precision != CUDA_FP32 && G.o.precision != CUDA_BF16) {
        snprintf(err, errlen, "cuda: unknown precision %d (fp32 or bf16)", (int)G.o.precision);
        return -1;
    }
    if (p->gemm_bf16 && (G.o.precision != CUDA_BF16 || !G.o.use_cublas)) {
        snprintf(err, errlen, "cuda: the plan is laid out for bf16 GEMM operands on cuBLASLt (attention's P in "
                 "bf16): generate it at precision bf16 with cuBLASLt");
        return -1;
    }
    if (G.o.precision == CUDA_BF16 && !G.o.use_cublas) {
        snprintf(err, errlen, "cuda: precision bf16 runs its matrix products on cuBLASLt; the generated "
                 "GEMM kernels (use_cublas 0) are fp32 only");
        return -1;
    }
    if ((int64_t)G.o.tile_k * (G.o.tile_m + G.o.tile_n + 2) * 4 > CG_SMEM_LIMIT) {
        snprintf(err, errlen, "cuda: tiles %dx%dx%d: the GEMM tile needs more than %d bytes of shared memory",
                 G.o.tile_m, G.o.tile_n, G.o.tile_k, CG_SMEM_LIMIT);
        return -1;
    }
    const Graph *g = p->g;
    sb_printf(&G.src,
           "/* Generated by kanc (compiler/codegen_cuda.c): every kernel of one training step.\n"
           "   %d graph nodes; arena %lld bytes; %lld parameter and %lld buffer elements.\n"
           "   Tiles %d x %d x %d; plain GEMMs %s; precision %s. */\n\n",
           g->n, (long long)p->arena_bytes, (long long)p->n_param_elems, (long long)p->n_buffer_elems,
           G.o.tile_m, G.o.tile_n, G.o.tile_k,
           G.o.use_cublas ? "as LAUNCH_GEMM for cuBLASLt" : "as generated kernels",
           G.o.precision == CUDA_BF16 ? "bf16 GEMM operands, fp32 accumulation" : "fp32");
    if (G.o.precision == CUDA_BF16) /* the library's bf16 kernels (kanc_core.cuh) */
        sb_printf(&G.src, "#define KANC_BF16 1\n#include <cuda_bf16.h>\n\n");
    emit_library(&G);
    sb_printf(&G.src, "\n/* ---- the step's launches, in execution order; each kernel at its first launch ---- */\n\n");
    out->node_first = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
    out->node_count = xcalloc((size_t)(g->n ? g->n : 1), sizeof(int));
    for (int i = 0; i < g->n && !G.failed; i++) {
        int first = G.n_launch;
        G.n = &g->nodes[i];
        EMITTERS[G.n->op](&G);
        out->node_first[i] = G.n_launch > first ? first : -1;
        out->node_count[i] = G.n_launch - first;
    }
    if (!G.failed)
        sb_printf(&G.src, "/* ---- %d launches (%d kernel launches of %d distinct kernels) ---- */\n", G.n_launch,
                  count_kernel_launches(&G), G.n_kern);
    if (G.failed) {
        free(G.src.s);
        cg_free_kernels(&G);
        free(G.launch);
        free(out->node_first);
        free(out->node_count);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->source = cg_assemble(&G);
    out->n_kernels = G.n_kern;
    free(G.src.s);
    cg_free_kernels(&G);
    out->n_launch = G.n_launch;
    out->launch = G.launch;
    int64_t cast_base = (G.ws_bytes + 255) / 256 * 256;
    place_casts(&G, cast_base);
    out->ws_cast_bytes = (G.cast_bytes + 255) / 256 * 256;
    out->ws_bytes = cast_base + out->ws_cast_bytes;
    out->precision = G.o.precision;
    out->n_nodes = g->n;
    return 0;
}

void cuda_program_free(CudaProgram *prog)
{
    free(prog->source);
    free(prog->launch);
    free(prog->node_first);
    free(prog->node_count);
    memset(prog, 0, sizeof *prog);
}
