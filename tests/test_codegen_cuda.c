/* test_codegen_cuda.c: every generated CUDA kernel, emulated on the CPU, against the CPU target.
 *
 * Each case builds a small graph by hand (ragged shapes, not multiples of the
 * tiles), differentiates it, plans it in float, generates the CUDA program and
 * builds it under the emulation prelude (runtime/device/emu). The CPU executor and
 * the emulated kernels then run from the same initial state, node by node:
 * before a node, its inputs must agree (nothing clobbered them); its output,
 * aux tensor and the workspace are poisoned with NaN on the emulated side (so
 * an element a kernel fails to write fails the comparison); after it, its
 * value, aux, the gradient area (for nodes that write gradients), the norm,
 * and the parameters and moments (AdamW) must agree to a relative error norm
 * of 1e-5 (integers exactly). The single-op cases then copy the CPU's inputs
 * into the emulated storage before each node, so that every kernel is
 * measured on its own; the transformer cases run the emulated step
 * independently from start to end, for several training steps. NVRTC (loaded
 * with dlopen; the check is skipped without it) must compile the sources for
 * sm_80 and sm_90 without a warning. With --verbose, each case logs its worst
 * relative error; KANC_DUMP_CUDA=FILE writes the last generated source.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "codegen_cuda.h"
#include "dynlib.h"
#include "embedded.h"
#include "emu_launch.h"
#include "exec_cpu.h"
#include "plan.h"
#include "ops.h"
#include "rng.h"
#include "graph_build.h"
#include "kan_basis.h"
#include "test_util.h"

TestSuite(cuda_codegen, .timeout = 600);

#define TOL 1e-5

/* ------------------------------------------------------------------------ */
/* building graphs (as tests/test_autodiff.c)                                */
/* ------------------------------------------------------------------------ */

static float urand(uint64_t seed, uint64_t stream, uint64_t i)
{
    return (float)(2.0 * (double)(kanc_rng_bits(seed, stream, i) >> 11) / 9007199254740992.0 - 1.0);
}

/* ------------------------------------------------------------------------ */
/* NVRTC, loaded at run time                                                 */
/* ------------------------------------------------------------------------ */

typedef int (*NvCreate)(void **, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*NvCompile)(void *, int, const char *const *);
typedef int (*NvLogSize)(void *, size_t *);
typedef int (*NvLog)(void *, char *);
typedef int (*NvDestroy)(void **);

static void *nvrtc_lib(void)
{
    static void *lib;
    static int tried;
    if (!tried) {
        tried = 1;
        lib = dynlib_open("KANC_NVRTC", DYNLIB_NVRTC, NULL, 0);
    }
    return lib;
}

/* 1 when NVRTC compiles src for arch without errors or warnings; 0 and the log otherwise */
static int nvrtc_compile(const char *src, const char *arch, char **log_out)
{
    void *lib = nvrtc_lib();
    NvCreate create = (NvCreate)dlsym(lib, "nvrtcCreateProgram");
    NvCompile compile = (NvCompile)dlsym(lib, "nvrtcCompileProgram");
    NvLogSize logsize = (NvLogSize)dlsym(lib, "nvrtcGetProgramLogSize");
    NvLog getlog = (NvLog)dlsym(lib, "nvrtcGetProgramLog");
    NvDestroy destroy = (NvDestroy)dlsym(lib, "nvrtcDestroyProgram");
    cr_assert(create && compile && logsize && getlog && destroy, "NVRTC symbols missing");
    void *prog = NULL;
    cr_assert_eq(create(&prog, src, "kanc_step.cu", 0, NULL, NULL), 0);
    char opt[64];
    snprintf(opt, sizeof opt, "--gpu-architecture=%s", arch);
    const char *opts[] = {opt, "--std=c++17"};
    int rc = compile(prog, 2, opts);
    size_t n = 0;
    logsize(prog, &n);
    char *log = calloc(1, n + 1);
    getlog(prog, log);
    destroy(&prog);
    int ok = rc == 0 && !strstr(log, "warning");
    *log_out = log;
    return ok;
}

static void nvrtc_check(const char *src)
{
    if (!nvrtc_lib()) {
        cr_log_warn("NVRTC not found: skipping the NVRTC compile check");
        return;
    }
    const char *archs[] = {"sm_80", "sm_90"};
    for (int i = 0; i < 2; i++) {
        char *log;
        int ok = nvrtc_compile(src, archs[i], &log);
        cr_expect(ok, "NVRTC %s rejected the generated source (or warned):\n%s", archs[i], log);
        free(log);
    }
}

/* ------------------------------------------------------------------------ */
/* running a case on the CPU and emulated, node by node                      */
/* ------------------------------------------------------------------------ */

typedef void (*FillFn)(Case *c, CpuExec *e);

typedef struct {
    int steps;      /* full passes over the graph (training steps); default 1 */
    int training;   /* dropout active */
    int use_cublas; /* plain GEMMs as LAUNCH_GEMM, applied with the CPU GEMM */
    int tm, tn, tk; /* tiles (0: defaults) */
    KanKernel kan_kernel;   /* 0: the cost model's pick */
    int64_t kan_block_rows; /* blocked KAN: rows per block (0: from the budget) */
    int nvrtc;      /* also compile with NVRTC for sm_80 and sm_90 */
    int independent; /* 0: after checking a node's inputs, copy the CPU's into the emulated
                        storage, so that each kernel is measured alone; 1: the emulated run
                        carries its own values from start to end */
    FillFn fill;
} RunOpts;

typedef struct {
    const Plan *p;
    CpuExec *e;
    unsigned char *arena, *ws;
    float *params, *grads, *m, *v, *buffers;
    KancScalars sc;
    KancArgs a;
    int resync;
    int failures;
    int compared;      /* comparisons made */
    double worst;      /* largest relative error norm seen */
    const char *what;  /* the case, for messages */
} Emu;

static void *emu_value(Emu *u, int i)
{
    const GNode *n = &u->p->g->nodes[i];
    if (n->op == OP_PARAM) return u->params + u->p->pos[i];
    if (n->op == OP_BUFFER) return u->buffers + u->p->pos[i];
    return u->arena + u->p->off[i];
}

static void poison(void *p, int64_t bytes)
{
    float nan = NAN;
    for (int64_t i = 0; i < bytes / 4; i++) memcpy((char *)p + 4 * i, &nan, 4);
}

/* relative error norm of emu against cpu; reports and counts a failure */
static int cmp_real(Emu *u, int node, const char *what, const float *emu, const float *cpu, int64_t n)
{
    double d2 = 0, r2 = 0, dmax = 0, rmax = 0;
    int64_t bad = -1, nan_bad = 0, first_nan = -1;
    for (int64_t i = 0; i < n; i++) {
        double x = emu[i], y = cpu[i];
        if (isnan(x) != isnan(y)) {
            if (!nan_bad++) first_nan = i;
            continue;
        }
        if (isnan(y)) continue;
        double d = fabs(x - y);
        d2 += d * d;
        r2 += y * y;
        if (d > dmax) {
            dmax = d;
            if (bad < 0 && d > 0) bad = i;
        }
        if (fabs(y) > rmax) rmax = fabs(y);
    }
    double rel = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
    if (first_nan >= 0) bad = first_nan;
    u->compared++;
    if (rel > u->worst) u->worst = rel;
    int ok = nan_bad == 0 && rel <= TOL && dmax <= 10 * TOL * (rmax > 0 ? rmax : 1);
    if (!ok) {
        u->failures++;
        if (u->failures <= 6) {
            const GNode *nd = &u->p->g->nodes[node];
            cr_log_error("%s: node %d %s: %s: rel err %.3e, max |diff| %.3e (max |ref| %.3e), "
                         "%lld NaN mismatches; first bad element %lld: emu %.9g cpu %.9g",
                         u->what, node, op_name(nd->op), what, rel, dmax, rmax, (long long)nan_bad,
                         (long long)bad, bad >= 0 ? emu[bad] : 0.0, bad >= 0 ? cpu[bad] : 0.0);
        }
    }
    cr_expect(ok, "%s: node %d (%s) %s differs from the CPU (rel %.3e)", u->what, node,
              op_name(u->p->g->nodes[node].op), what, rel);
    return ok;
}

static void cmp_value(Emu *u, int node, int i, const char *what)
{
    const GNode *n = &u->p->g->nodes[i];
    int64_t numel = shape_numel(&n->shape);
    void *x = emu_value(u, i), *y = cpu_exec_value(u->e, i);
    if (n->dtype == DT_I32) {
        int same = memcmp(x, y, (size_t)numel * 4) == 0;
        if (!same) u->failures++;
        cr_expect(same, "%s: node %d: %s (int32 node %d) differs", u->what, node, what, i);
    } else {
        cmp_real(u, node, what, x, y, numel);
    }
}


/* [a, a+na) and [b, b+nb) overlap */
static int overlap(const void *a, int64_t na, const void *b, int64_t nb)
{
    const char *x = a, *y = b;
    return x < y + nb && y < x + na;
}

static void run_node_pair(Emu *u, EmuModule *mod, const CudaProgram *prog, int i)
{
    const Graph *g = u->p->g;
    const GNode *n = &g->nodes[i];
    char what[64];
    /* inputs agree before the node runs */
    for (int j = 0; j < n->nin; j++) {
        snprintf(what, sizeof what, "input %d (node %d) before the node", j, n->in[j]);
        cmp_value(u, i, n->in[j], what);
    }
    if (n->fwd >= 0 && u->p->aux_off[n->fwd] >= 0 && (op_info(n->op)->flags & OPF_READS_FWD_AUX))
        cmp_real(u, i, "forward aux before the node", (float *)(u->arena + u->p->aux_off[n->fwd]),
                 (float *)(u->e->arena + u->p->aux_off[n->fwd]), g->nodes[n->fwd].aux_numel);
    if (u->resync) { /* the kernel starts from the CPU's inputs */
        for (int j = 0; j < n->nin; j++)
            memcpy(emu_value(u, n->in[j]), cpu_exec_value(u->e, n->in[j]),
                   (size_t)node_bytes(&g->nodes[n->in[j]], 4));
        if (n->fwd >= 0 && u->p->aux_off[n->fwd] >= 0)
            memcpy(u->arena + u->p->aux_off[n->fwd], u->e->arena + u->p->aux_off[n->fwd],
                   (size_t)g->nodes[n->fwd].aux_numel * 4);
        if (op_is_backward(n->op)) memcpy(u->grads, u->e->grads, (size_t)u->p->n_param_elems * 4);
        if (n->op == OP_ADAMW) {
            u->sc.grad_norm = (float)u->e->grad_norm;
            memcpy(u->params, u->e->params, (size_t)u->p->n_param_elems * 4);
            memcpy(u->m, u->e->m, (size_t)u->p->n_param_elems * 4);
            memcpy(u->v, u->e->v, (size_t)u->p->n_param_elems * 4);
        }
    }
    /* poison what the node writes (not an accumulation target, not an input) */
    if (node_has_value(n) && n->op != OP_INPUT && !(op_is_backward(n->op) && n->a.acc)) {
        int64_t bytes = node_bytes(n, 4);
        void *y = emu_value(u, i);
        int clash = 0;
        for (int j = 0; j < n->nin; j++)
            clash |= overlap(y, bytes, emu_value(u, n->in[j]), node_bytes(&g->nodes[n->in[j]], 4));
        if (!clash) poison(y, bytes);
    }
    if (u->p->aux_off[i] >= 0) poison(u->arena + u->p->aux_off[i], n->aux_numel * 4);
    poison(u->ws, prog->ws_bytes);

    cpu_exec_run(u->e, i, i + 1);
    char err[256];
    cr_assert_eq(emu_run_nodes(mod, prog, i, i + 1, &u->a, err, sizeof err), 0, "%s", err);

    if (node_has_value(n)) cmp_value(u, i, i, "value");
    if (u->p->aux_off[i] >= 0)
        cmp_real(u, i, "aux", (float *)(u->arena + u->p->aux_off[i]),
                 (float *)(u->e->arena + u->p->aux_off[i]), n->aux_numel);
    if (op_writes_param_grads(n))
        cmp_real(u, i, "gradient area", u->grads, u->e->grads, u->p->n_param_elems);
    if (n->op == OP_GRAD_NORM) {
        float cn = (float)u->e->grad_norm;
        cmp_real(u, i, "scalars.grad_norm", &u->sc.grad_norm, &cn, 1);
    }
    if (n->op == OP_ADAMW) {
        u->sc.step++; /* the host advances the step after a step that ran AdamW */
        float cs = (float)u->e->clip_scale;
        cmp_real(u, i, "scalars.clip_scale", &u->sc.clip_scale, &cs, 1);
        cmp_real(u, i, "parameters", u->params, u->e->params, u->p->n_param_elems);
        cmp_real(u, i, "adam m", u->m, u->e->m, u->p->n_param_elems);
        cmp_real(u, i, "adam v", u->v, u->e->v, u->p->n_param_elems);
    }
}

static void fill_default(Case *c, CpuExec *e)
{
    Graph *g = &c->g;
    for (int i = 0; i < g->n; i++) {
        GNode *n = &g->nodes[i];
        if (n->op == OP_PARAM || n->op == OP_BUFFER || (n->op == OP_INPUT && n->dtype == DT_REAL)) {
            float *v = cpu_exec_value(e, i);
            for (int64_t j = 0; j < shape_numel(&n->shape); j++) v[j] = urand(c->seed, (uint64_t)i, (uint64_t)j);
        } else if (n->op == OP_INPUT) {
            int32_t *ids = cpu_exec_value(e, i);
            int64_t V = 11;
            for (int64_t j = 0; j < shape_numel(&n->shape); j++) ids[j] = (int32_t)((j * 7 + 3) % V);
            if (n->name && !strcmp(n->name, "targets")) ids[2] = ids[shape_numel(&n->shape) - 1] = -1;
        }
    }
}

/* Runs case c on the CPU and emulated; returns the number of failed comparisons. */
static int run_case(Case *c, const char *what, const RunOpts *ro)
{
    Graph *g = &c->g;
    Plan p;
    plan_build(&p, g, 4);
    CudaOptions o;
    cuda_options_default(&o);
    o.use_cublas = ro->use_cublas;
    if (ro->tm) o.tile_m = ro->tm;
    if (ro->tn) o.tile_n = ro->tn;
    if (ro->tk) o.tile_k = ro->tk;
    o.kan_kernel = ro->kan_kernel;
    o.kan_block_rows = ro->kan_block_rows;
    CudaProgram prog;
    char err[512];
    cr_assert_eq(codegen_cuda(&p, &o, &prog, err, sizeof err), 0, "%s: %s", what, err);
    if (getenv("KANC_DUMP_CUDA")) {
        FILE *f = fopen(getenv("KANC_DUMP_CUDA"), "w");
        if (f) fputs(prog.source, f), fclose(f);
    }
    if (ro->nvrtc) nvrtc_check(prog.source);
    EmuModule *mod = emu_module_build(prog.source, err, sizeof err);
    cr_assert(mod, "%s: %s", what, err);

    CpuExec e;
    cpu_exec_init(&e, &p);
    e.training = ro->training;
    e.seed = 1234;
    e.step = 3;
    e.opt = (AdamWConfig){.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                          .clip = 1.0};
    fill_default(c, &e);
    test_fill_kan_grids(&c->g, &e);
    if (ro->fill) ro->fill(c, &e);

    Emu u = {.p = &p, .e = &e, .what = what, .resync = !ro->independent};
    int64_t pb = p.n_param_elems * 4 + 64, ab = p.arena_bytes + 64, wb = prog.ws_bytes + 64;
    u.arena = malloc((size_t)ab);
    u.ws = malloc((size_t)wb);
    u.params = malloc((size_t)pb);
    u.grads = malloc((size_t)pb);
    u.m = malloc((size_t)pb);
    u.v = malloc((size_t)pb);
    u.buffers = malloc((size_t)(p.n_buffer_elems * 4 + 64));
    poison(u.arena, ab);
    poison(u.ws, wb);
    poison(u.grads, pb);
    memcpy(u.params, e.params, (size_t)p.n_param_elems * 4);
    memcpy(u.m, e.m, (size_t)p.n_param_elems * 4);
    memcpy(u.v, e.v, (size_t)p.n_param_elems * 4);
    memcpy(u.buffers, e.buffers, (size_t)p.n_buffer_elems * 4);
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT)
            memcpy(emu_value(&u, i), cpu_exec_value(&e, i), (size_t)node_bytes(&g->nodes[i], 4));
    u.sc = (KancScalars){.lr = (float)e.opt.lr, .beta1 = (float)e.opt.beta1, .beta2 = (float)e.opt.beta2,
                         .eps = (float)e.opt.eps, .weight_decay = (float)e.opt.weight_decay,
                         .clip = (float)e.opt.clip, .seed = e.seed, .step = (uint64_t)e.step,
                         .training = ro->training};
    u.a = (KancArgs){.arena = (uint64_t)(uintptr_t)u.arena, .params = (uint64_t)(uintptr_t)u.params,
                         .grads = (uint64_t)(uintptr_t)u.grads, .m = (uint64_t)(uintptr_t)u.m,
                         .v = (uint64_t)(uintptr_t)u.v, .buffers = (uint64_t)(uintptr_t)u.buffers,
                         .ws = (uint64_t)(uintptr_t)u.ws, .scalars = (uint64_t)(uintptr_t)&u.sc};

    /* node by node: the CPU executor zeroes the gradients whenever a range
       reaches past the forward graph, so the zeroing is done here, once per
       step, on both sides (as the CUDA runtime does) */
    int nf = g->n_forward;
    g->n_forward = g->n;
    int steps = ro->steps ? ro->steps : 1;
    for (int s = 0; s < steps; s++) {
        memset(e.grads, 0, (size_t)p.n_param_elems * 4);
        memset(u.grads, 0, (size_t)p.n_param_elems * 4);
        for (int i = 0; i < g->n && u.failures < 20; i++) run_node_pair(&u, mod, &prog, i);
        if (g->loss >= 0) {
            float le = *(float *)emu_value(&u, g->loss), lc = (float)cpu_exec_scalar(&e, g->loss);
            cr_log_info("%s: step %d: loss emu %.9g cpu %.9g", what, s, le, lc);
        }
    }
    g->n_forward = nf;
    cr_expect_eq((int64_t)u.sc.step, e.step, "%s: steps taken", what);
    cr_log_info("%s: %d launches, %d comparisons, worst relative error %.2e", what, prog.n_launch,
                u.compared, u.worst);

    int failures = u.failures;
    free(u.arena);
    free(u.ws);
    free(u.params);
    free(u.grads);
    free(u.m);
    free(u.v);
    free(u.buffers);
    cpu_exec_free(&e);
    emu_module_free(mod);
    cuda_program_free(&prog);
    plan_free(&p);
    return failures;
}

/* ------------------------------------------------------------------------ */
/* cases                                                                     */
/* ------------------------------------------------------------------------ */

static GShape s2(int64_t a, int64_t b) { return shape_of(2, a, b); }
static GShape s3(int64_t a, int64_t b, int64_t c) { return shape_of(3, a, b, c); }

Test(cuda_codegen, elementwise_broadcast_fanout)
{
    Case c = {.seed = 1};
    graph_init(&c.g);
    GShape s = s3(3, 7, 5), t = s2(7, 5);
    int a = value(&c, "a", s), b = param(&c, "b", t), d = value(&c, "d", t);
    int x = op(&c, OP_ADD, (int[]){a, b}, 2, s, (GAttr){0});
    int y = op(&c, OP_MUL, (int[]){x, d}, 2, s, (GAttr){0});
    int z = op(&c, OP_SUB, (int[]){y, a}, 2, s, (GAttr){0}); /* a fans out */
    int w = op(&c, OP_MUL, (int[]){z, z}, 2, s, (GAttr){0}); /* same value twice */
    int q = op(&c, OP_SUB, (int[]){w, d}, 2, s, (GAttr){0}); /* broadcast subtrahend */
    finish(&c, q);
    cr_expect_eq(run_case(&c, "elementwise", &(RunOpts){0}), 0);
    graph_free(&c.g);
}

/* the gradient norm and AdamW over 350,000 parameters: 1024 partial sums, so
   that each thread of the final sum adds several; the 350,000-element loss
   sum takes the same path */
Test(cuda_codegen, grad_norm_over_many_parts)
{
    Case c = {.seed = 3};
    graph_init(&c.g);
    GShape s = s2(700, 500);
    int a = value(&c, "a", s), w = param(&c, "w", s);
    int y = op(&c, OP_MUL, (int[]){a, w}, 2, s, (GAttr){0});
    finish(&c, y);
    autodiff_add_optimizer(&c.g);
    cr_expect_eq(run_case(&c, "grad norm, 1024 parts", &(RunOpts){.steps = 2, .independent = 1}), 0);
    graph_free(&c.g);
}

/* the broadcast gradients (column sums of dy, and of dy * other) over 100 rows:
   7 chunks of 15, the last of 10 */
Test(cuda_codegen, column_sums_in_chunks)
{
    Case c = {.seed = 2};
    graph_init(&c.g);
    GShape s = s3(100, 7, 5), t = s2(7, 5);
    int a = value(&c, "a", s), b = param(&c, "b", t), d = param(&c, "d", t);
    int x = op(&c, OP_ADD, (int[]){a, b}, 2, s, (GAttr){0});
    int y = op(&c, OP_MUL, (int[]){x, d}, 2, s, (GAttr){0});
    finish(&c, y);
    cr_expect_eq(run_case(&c, "column sums", &(RunOpts){0}), 0);
    graph_free(&c.g);
}

Test(cuda_codegen, scale_reshape_slice_concat)
{
    Case c = {.seed = 2};
    graph_init(&c.g);
    int a = value(&c, "a", s2(13, 7));
    int b = param(&c, "b", s2(13, 3));
    int s1 = op(&c, OP_SLICE, &a, 1, s2(13, 3), (GAttr){.start = 2, .len = 3});
    int cat = op(&c, OP_CONCAT, (int[]){s1, b}, 2, s2(13, 6), (GAttr){0});
    int sc = op(&c, OP_SCALE, &cat, 1, s2(13, 6), (GAttr){.scale = -2.5});
    int r = op(&c, OP_RESHAPE, &sc, 1, s3(13, 2, 3), (GAttr){0});
    int sl = op(&c, OP_SLICE, &a, 1, s2(13, 2), (GAttr){.start = 5, .len = 2});
    int m = op(&c, OP_MUL, (int[]){sl, sl}, 2, s2(13, 2), (GAttr){0});
    int flat = op(&c, OP_RESHAPE, &r, 1, s2(13, 6), (GAttr){0});
    int cat2 = op(&c, OP_CONCAT, (int[]){m, flat}, 2, s2(13, 8), (GAttr){0});
    finish(&c, cat2);
    cr_expect_eq(run_case(&c, "slices", &(RunOpts){0}), 0);
    graph_free(&c.g);
}

/* y = linear(x), y2 = linear(x) with the same W (and b): x's gradient
   accumulates (acc = 1), W's and b's accumulate in the gradient area */
static void linear_case(int bias, int cublas, int64_t B, int64_t T, int tiles)
{
    Case c = {.seed = 3 + (uint64_t)bias};
    graph_init(&c.g);
    int64_t in = 5, out = 9;
    int x = value(&c, "x", s3(B, T, in));
    int w = param(&c, "w", s2(out, in));
    int bb = bias ? param(&c, "b", shape_of(1, out)) : -1;
    int ins[3] = {x, w, bb};
    int y = op(&c, OP_LINEAR, ins, bias ? 3 : 2, s3(B, T, out), (GAttr){.has_bias = bias});
    int y2 = op(&c, OP_LINEAR, ins, bias ? 3 : 2, s3(B, T, out), (GAttr){.has_bias = bias});
    int m = op(&c, OP_MUL, (int[]){y, y2}, 2, s3(B, T, out), (GAttr){0});
    finish(&c, m);
    char what[96];
    snprintf(what, sizeof what, "linear bias=%d cublas=%d N=%lld", bias, cublas, (long long)(B * T));
    RunOpts ro = {.use_cublas = cublas};
    if (tiles) ro.tm = ro.tn = 16, ro.tk = 3;
    cr_expect_eq(run_case(&c, what, &ro), 0, "%s", what);
    graph_free(&c.g);
}

Test(cuda_codegen, linear)
{
    for (int bias = 0; bias < 2; bias++)
        for (int cublas = 0; cublas < 2; cublas++) {
            linear_case(bias, cublas, 1, 7, 0);
            linear_case(bias, cublas, 3, 11, 0);
        }
    linear_case(1, 0, 5, 13, 1); /* several 16 x 16 tiles, K in steps of 3 */
}

/* two KAN layers on the same x (so x's gradient accumulates); x a value or,
   with !through_value, a parameter (its gradient accumulates in the gradient
   area) */
/* A KAN case on both paths: the fused kernels (tiles of 16 with `tiles`), and
   the blocked one in row blocks of 16 (the last one ragged when N is not a
   multiple), its GEMMs as cuBLASLt launches and as generated kernels */
static void run_kan_variants(Case *c, const char *what, int tiles, FillFn fill)
{
    char w[192];
    RunOpts ro = {.kan_kernel = KAN_KERNEL_FUSED, .fill = fill};
    if (tiles) ro.tm = ro.tn = 16, ro.tk = 4;
    snprintf(w, sizeof w, "%s fused", what);
    cr_expect_eq(run_case(c, w, &ro), 0, "%s", w);
    for (int cublas = 0; cublas < 2; cublas++) {
        ro = (RunOpts){.kan_kernel = KAN_KERNEL_BLOCKED, .kan_block_rows = 16, .use_cublas = cublas, .fill = fill};
        snprintf(w, sizeof w, "%s blocked%s", what, cublas ? " cublas" : "");
        cr_expect_eq(run_case(c, w, &ro), 0, "%s", w);
    }
}

/* x (the first node named "x") times 3: inputs past the grid range and past the
   support, on the uniform rows and the warped ones (test_knot), so that every
   path of the B-spline basis runs: the uniform closed form, de Boor's triangle,
   the full recursion, all zero */
static void fill_wide_x(Case *c, CpuExec *e)
{
    for (int i = 0; i < c->g.n; i++)
        if (c->g.nodes[i].name && !strcmp(c->g.nodes[i].name, "x")) {
            float *v = cpu_exec_value(e, i);
            for (int64_t j = 0; j < shape_numel(&c->g.nodes[i].shape); j++) v[j] *= 3;
            return;
        }
}

static void kan_case_fill(uint64_t seed, int64_t N, int64_t in, int64_t out, int G, int k, int act,
                          int scaler, int through_value, int tiles, FillFn fill)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    GShape xs = s2(N, in);
    int x = through_value ? value(&c, "x", xs) : param(&c, "x", xs);
    int grid = leaf(&c, OP_BUFFER, "grid", s2(in, G + 2 * k + 1), DT_REAL);
    int base = param(&c, "base_weight", s2(out, in));
    int spline = param(&c, "spline_weight", s3(out, in, G + k));
    int sc = scaler ? param(&c, "spline_scaler", s2(out, in)) : -1;
    GAttr a = {.grid_size = G, .spline_order = k, .has_scaler = scaler, .act = act};
    int ins[5] = {x, grid, base, spline, sc};
    int y = op(&c, OP_KAN, ins, scaler ? 5 : 4, s2(N, out), a);
    int y2 = op(&c, OP_KAN, ins, scaler ? 5 : 4, s2(N, out), a);
    int m = op(&c, OP_MUL, (int[]){y, y2}, 2, s2(N, out), (GAttr){0});
    finish(&c, m);
    char what[128];
    snprintf(what, sizeof what, "kan N=%lld in=%lld out=%lld G=%d k=%d act=%d scaler=%d value=%d tiles=%d%s",
             (long long)N, (long long)in, (long long)out, G, k, act, scaler, through_value, tiles,
             fill ? " wide x" : "");
    run_kan_variants(&c, what, tiles, fill);
    graph_free(&c.g);
}

static void kan_case(uint64_t seed, int64_t N, int64_t in, int64_t out, int G, int k, int act,
                     int scaler, int through_value, int tiles)
{
    kan_case_fill(seed, N, in, out, G, k, act, scaler, through_value, tiles, NULL);
}

Test(cuda_codegen, kan_inputs_past_the_grid)
{
    kan_case_fill(19, 40, 6, 9, 5, 3, ACT_SILU, 1, 1, 0, fill_wide_x);
    kan_case_fill(20, 40, 6, 9, 4, 2, ACT_GELU, 1, 1, 0, fill_wide_x);
    kan_case_fill(21, 40, 6, 9, 3, 1, ACT_SILU, 0, 1, 0, fill_wide_x);
}

Test(cuda_codegen, kan_orders_grids_activations)
{
    kan_case(10, 7, 5, 9, 3, 1, ACT_SILU, 1, 1, 0);
    kan_case(11, 13, 5, 9, 5, 3, ACT_GELU, 0, 1, 0);
    kan_case(12, 33, 5, 9, 8, 2, ACT_RELU, 1, 1, 0);
    kan_case(13, 13, 5, 9, 4, 3, ACT_NONE, 1, 0, 0);
    kan_case(14, 7, 5, 9, 6, 0, ACT_SILU, 1, 1, 0);
    kan_case(15, 33, 5, 9, 7, 1, ACT_SILU, 0, 0, 0);
}

Test(cuda_codegen, kan_multi_tile)
{
    /* tiles of 16: several row, output and input tiles, stages of one input */
    kan_case(16, 70, 7, 20, 5, 3, ACT_SILU, 1, 1, 1);
    kan_case(17, 37, 11, 33, 3, 2, ACT_GELU, 0, 1, 1);
    /* default tiles with more rows than one tile */
    kan_case(18, 130, 6, 70, 5, 3, ACT_SILU, 1, 1, 0);
}

/* the launches of node i (kernels only) */
static int node_kernel_launches(const CudaProgram *prog, int i, const CudaLaunch **out, int max)
{
    int n = 0;
    for (int j = 0; j < prog->node_count[i]; j++) {
        const CudaLaunch *l = &prog->launch[prog->node_first[i] + j];
        if (l->kind == LAUNCH_KERNEL && n < max) out[n++] = l;
    }
    return n;
}

/* Two KAN layers of one shape (their own parameters, in sequence) and two
   dropouts of one shape: each pair runs one kernel with different arguments
   (tensor offsets; dropout's node stream), and the emulation still gives the
   CPU's results, through three training steps. */
Test(cuda_codegen, one_kernel_serves_launches_with_different_offsets)
{
    Case c = {.seed = 70};
    graph_init(&c.g);
    int64_t N = 9, C = 6;
    int G = 5, k = 3;
    int x = value(&c, "x", s2(N, C));
    int layer[2], drop[2], h = x;
    for (int l = 0; l < 2; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "l%d.grid", l);
        int grid = leaf(&c, OP_BUFFER, nm, s2(C, G + 2 * k + 1), DT_REAL);
        snprintf(nm, sizeof nm, "l%d.base", l);
        int base = param(&c, nm, s2(C, C));
        snprintf(nm, sizeof nm, "l%d.spline", l);
        int spline = param(&c, nm, s3(C, C, G + k));
        snprintf(nm, sizeof nm, "l%d.scaler", l);
        int sc = param(&c, nm, s2(C, C));
        h = layer[l] = op(&c, OP_KAN, (int[]){h, grid, base, spline, sc}, 5, s2(N, C),
                          (GAttr){.grid_size = G, .spline_order = k, .has_scaler = 1, .act = ACT_SILU});
        h = drop[l] = op(&c, OP_DROPOUT, &h, 1, s2(N, C), (GAttr){.p = 0.25});
    }
    int y = op(&c, OP_MUL, (int[]){h, x}, 2, s2(N, C), (GAttr){0});
    finish(&c, y);

    Plan p;
    plan_build(&p, &c.g, 4);
    CudaProgram prog;
    char err[512];
    cr_assert_eq(codegen_cuda(&p, NULL, &prog, err, sizeof err), 0, "%s", err);
    int nk = 0;
    for (int i = 0; i < prog.n_launch; i++) nk += prog.launch[i].kind == LAUNCH_KERNEL;
    cr_expect(prog.n_kernels > 0 && prog.n_kernels < nk, "%d distinct kernels for %d kernel launches",
              prog.n_kernels, nk);
    int pairs[2][2] = {{layer[0], layer[1]}, {drop[0], drop[1]}};
    for (int q = 0; q < 2; q++) {
        const CudaLaunch *a[4], *b[4];
        int na = node_kernel_launches(&prog, pairs[q][0], a, 4), nb = node_kernel_launches(&prog, pairs[q][1], b, 4);
        cr_assert(na == 1 && nb == 1, "node %d: %d launches, node %d: %d", pairs[q][0], na, pairs[q][1], nb);
        cr_expect_str_eq(a[0]->name, b[0]->name, "nodes %d and %d of one shape run different kernels",
                         pairs[q][0], pairs[q][1]);
        cr_expect(a[0]->n_args == b[0]->n_args && a[0]->n_args > 0);
        cr_expect(memcmp(a[0]->arg, b[0]->arg, sizeof(CudaArg) * (size_t)a[0]->n_args) != 0,
                  "the two launches of %s have the same arguments", a[0]->name);
        /* the kernel is in the source once, with both launches in its header */
        char sig[160];
        snprintf(sig, sizeof sig, " %s(const KancArgs *args, const KancLaunchArgs la)", a[0]->name);
        const char *at = strstr(prog.source, sig);
        cr_expect(at && !strstr(at + 1, sig), "%s is defined %s", a[0]->name, at ? "twice" : "nowhere");
    }
    /* dropout's node stream is an integer argument: the nodes' ids */
    const CudaLaunch *d0 = NULL, *d1 = NULL;
    cr_assert(node_kernel_launches(&prog, drop[0], &d0, 1) == 1 && node_kernel_launches(&prog, drop[1], &d1, 1) == 1);
    int found = 0;
    for (int i = 0; i < d0->n_args; i++)
        found |= d0->arg[i].area == CUDA_ARG_INT && d0->arg[i].value == drop[0] &&
                 d1->arg[i].area == CUDA_ARG_INT && d1->arg[i].value == drop[1];
    cr_expect(found, "dropout's stream is not a launch argument");
    cuda_program_free(&prog);
    plan_free(&p);

    RunOpts ro = {.steps = 3, .training = 1, .independent = 1, .nvrtc = 1};
    cr_expect_eq(run_case(&c, "two layers of one shape", &ro), 0);
    graph_free(&c.g);
}

/* the regularization loss of two layers' spline weights, summed (one of them fans out) */
/* another basis family (no base, no scaler, a shared grid), emulated against the CPU */
static void kan_basis_case(uint64_t seed, KanBasisId basis, int G, int64_t N, int64_t in, int64_t out, int tiles)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    const KanBasis *b = kan_basis(basis);
    int x = value(&c, "x", s2(N, in));
    int grid = leaf(&c, OP_BUFFER, "grid", shape_of(1, (int64_t)b->grid_len(G, 0)), DT_REAL);
    c.g.nodes[grid].init = INIT_KAN_GRID;
    c.g.nodes[grid].init_a = -1.5, c.g.nodes[grid].init_b = 1.5;
    int nf = b->nf(G, 0);
    int w = param(&c, "w", b->weight_in_major ? s3(in, out, nf) : s3(out, in, nf));
    GAttr a = {.grid_size = G, .no_base = 1, .basis = basis};
    int y = op(&c, OP_KAN, (int[]){x, grid, w}, 3, s2(N, out), a);
    int y2 = op(&c, OP_KAN, (int[]){x, grid, w}, 3, s2(N, out), a);
    int m = op(&c, OP_MUL, (int[]){y, y2}, 2, s2(N, out), (GAttr){0});
    finish(&c, m);
    char what[128];
    snprintf(what, sizeof what, "kan %s G=%d N=%lld in=%lld out=%lld tiles=%d", b->name, G, (long long)N,
             (long long)in, (long long)out, tiles);
    run_kan_variants(&c, what, tiles, NULL);
    graph_free(&c.g);
}

Test(cuda_codegen, kan_chebyshev_and_rbf)
{
    kan_basis_case(30, KAN_BASIS_CHEBYSHEV, 4, 13, 5, 9, 0);
    kan_basis_case(31, KAN_BASIS_CHEBYSHEV, 3, 37, 11, 33, 1);
    kan_basis_case(32, KAN_BASIS_RBF, 8, 13, 5, 9, 0);
    kan_basis_case(33, KAN_BASIS_RBF, 5, 37, 11, 33, 1);
}

Test(cuda_codegen, kan_regularization)
{
    Case c = {.seed = 25};
    graph_init(&c.g);
    int w1 = param(&c, "a.spline_weight", s3(9, 7, 8)), w2 = param(&c, "b.spline_weight", s3(300, 5, 6));
    GAttr at = {.reg_activation = 0.7, .reg_entropy = 1.3};
    int r1 = with_aux(&c, OP_KAN_REG, &w1, 1, shape_of(0), at, shape_of(1, (int64_t)2));
    int r2 = with_aux(&c, OP_KAN_REG, &w2, 1, shape_of(0), at, shape_of(1, (int64_t)2));
    int r3 = with_aux(&c, OP_KAN_REG, &w2, 1, shape_of(0), (GAttr){.reg_activation = 2, .reg_entropy = 0.5},
                      shape_of(1, (int64_t)2));
    int s12 = op(&c, OP_ADD, (int[]){r1, r2}, 2, shape_of(0), (GAttr){0});
    int sum = op(&c, OP_ADD, (int[]){s12, r3}, 2, shape_of(0), (GAttr){0});
    finish(&c, sum);
    cr_expect_eq(run_case(&c, "kan_regularization", &(RunOpts){0}), 0);
    graph_free(&c.g);
}

static void layernorm_case(uint64_t seed, GShape s)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int64_t C = shape_last(&s), N = shape_rows(&s);
    int x = value(&c, "x", s);
    int w = param(&c, "w", shape_of(1, C)), b = param(&c, "b", shape_of(1, C));
    int y = with_aux(&c, OP_LAYERNORM, (int[]){x, w, b}, 3, s, (GAttr){.eps = 1e-5}, s2(N, 2));
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0}); /* x's gradient accumulates */
    finish(&c, z);
    char what[64];
    snprintf(what, sizeof what, "layernorm N=%lld C=%lld", (long long)N, (long long)C);
    cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
    graph_free(&c.g);
}

Test(cuda_codegen, layernorm)
{
    layernorm_case(20, s3(2, 7, 6));
    layernorm_case(21, s2(13, 70));
    layernorm_case(22, s2(5, 300));
    /* the weight and bias sums in 63 chunks of 16 rows (the last of 8), and in
       21 chunks over two column tiles (the last chunk of 13 rows) */
    layernorm_case(23, s2(1000, 7));
    layernorm_case(24, s2(333, 300));
}

static void rmsnorm_case(uint64_t seed, GShape s)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int64_t C = shape_last(&s), N = shape_rows(&s);
    int x = value(&c, "x", s);
    int w = param(&c, "w", shape_of(1, C));
    int y = with_aux(&c, OP_RMSNORM, (int[]){x, w}, 2, s, (GAttr){.eps = 1e-6}, shape_of(1, N));
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0}); /* x's gradient accumulates */
    finish(&c, z);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm N=%lld C=%lld", (long long)N, (long long)C);
    cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
    graph_free(&c.g);
}

Test(cuda_codegen, rmsnorm)
{
    rmsnorm_case(26, s3(2, 7, 6));
    rmsnorm_case(27, s2(13, 70));
    rmsnorm_case(28, s2(5, 300));
    rmsnorm_case(29, s2(1000, 7)); /* dw in many row chunks */
    rmsnorm_case(30, s2(333, 300)); /* and over two column tiles */
}

/* rope on [B, T, W] rotating the first R columns in heads of D; x's gradient
   accumulates (the rope_bwd kernel's ACC) */
static void rope_case(uint64_t seed, int64_t B, int64_t T, int64_t W, int64_t R, int64_t D)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    GShape s = s3(B, T, W);
    int x = value(&c, "x", s);
    int y = op(&c, OP_ROPE, &x, 1, s, (GAttr){.heads = (int)(R / D), .len = R, .rope_base = 10000.0});
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
    finish(&c, z);
    char what[96];
    snprintf(what, sizeof what, "rope B=%lld T=%lld W=%lld R=%lld D=%lld", (long long)B, (long long)T,
             (long long)W, (long long)R, (long long)D);
    cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
    graph_free(&c.g);
}

Test(cuda_codegen, rope)
{
    rope_case(40, 2, 7, 30, 20, 10);   /* q and k of a qkv with C = 10, one head each */
    rope_case(41, 3, 13, 18, 18, 6);   /* every column */
    rope_case(42, 1, 129, 99, 64, 16); /* long positions, ragged width */
}

static void attention_case(uint64_t seed, int64_t B, int64_t T, int64_t C, int64_t H, int causal,
                           double p, int training, int cublas)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int qkv = value(&c, "qkv", s3(B, T, 3 * C));
    GAttr a = {.heads = (int)H, .causal = causal, .p = p};
    int y = with_aux(&c, OP_ATTENTION, &qkv, 1, s3(B, T, C), a, shape_of(4, B, H, T, T));
    int z = with_aux(&c, OP_ATTENTION, &qkv, 1, s3(B, T, C), a, shape_of(4, B, H, T, T));
    int m = op(&c, OP_MUL, (int[]){y, z}, 2, s3(B, T, C), (GAttr){0}); /* dqkv accumulates */
    finish(&c, m);
    char what[96];
    snprintf(what, sizeof what, "attention B=%lld T=%lld C=%lld H=%lld causal=%d p=%g training=%d%s",
             (long long)B, (long long)T, (long long)C, (long long)H, causal, p, training, cublas ? " cublas" : "");
    cr_expect_eq(run_case(&c, what, &(RunOpts){.training = training, .use_cublas = cublas}), 0, "%s", what);
    graph_free(&c.g);
}

/* every case with the fused kernels and, with cuBLASLt's GEMMs, on strided-batched
   GEMMs where there is no dropout (dropout keeps the fused kernels there too) */
Test(cuda_codegen, attention)
{
    for (int cublas = 0; cublas < 2; cublas++) {
        attention_case(30, 2, 5, 6, 3, 1, 0, 1, cublas);
        attention_case(31, 2, 5, 6, 3, 0, 0, 1, cublas);
        attention_case(32, 2, 5, 6, 3, 1, 0.3, 1, cublas);
        attention_case(33, 2, 5, 6, 3, 0, 0.3, 1, cublas);
        attention_case(34, 2, 5, 6, 3, 1, 0.3, 0, cublas); /* dropout off outside training */
        attention_case(35, 1, 37, 8, 2, 1, 0.3, 1, cublas); /* rows longer than a warp */
        attention_case(36, 3, 33, 4, 1, 0, 0.3, 1, cublas);
    }
    /* ragged: T not a multiple of 16, several heads, rows past two warps' width */
    attention_case(37, 2, 37, 12, 3, 1, 0, 1, 1);
    attention_case(38, 3, 21, 12, 3, 0, 0, 1, 1);
    attention_case(39, 1, 70, 8, 2, 1, 0, 1, 1);
}

Test(cuda_codegen, activations_and_dropout)
{
    GOp ops[] = {OP_GELU, OP_SILU, OP_RELU, OP_DROPOUT, OP_DROPOUT};
    for (int i = 0; i < 5; i++) {
        Case c = {.seed = 40 + (uint64_t)i};
        graph_init(&c.g);
        GShape s = s2(13, 9);
        int x = value(&c, "x", s);
        int y = op(&c, ops[i], &x, 1, s, (GAttr){.p = 0.25});
        int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
        finish(&c, z);
        char what[64];
        snprintf(what, sizeof what, "%s training=%d", op_name(ops[i]), i != 4);
        cr_expect_eq(run_case(&c, what, &(RunOpts){.training = i != 4}), 0, "%s", what);
        graph_free(&c.g);
    }
}

/* the unary ops behind an affine scale (log and 1/x of positive values), ragged */
Test(cuda_codegen, unary_ops_and_affine_scale)
{
    GOp ops[] = {OP_TANH, OP_SIGMOID, OP_EXP, OP_LOG, OP_ABS, OP_RECIP};
    for (int i = 0; i < 6; i++) {
        Case c = {.seed = 70 + (uint64_t)i};
        graph_init(&c.g);
        GShape s = s3(3, 13, 9);
        int positive = ops[i] == OP_LOG || ops[i] == OP_RECIP;
        int x = value(&c, "x", s);
        int u = op(&c, OP_SCALE, &x, 1, s, positive ? (GAttr){.scale = 1, .shift = 2.5} : (GAttr){.scale = 3, .shift = -0.5});
        int y = op(&c, ops[i], &u, 1, s, (GAttr){0});
        int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
        finish(&c, z);
        char what[64];
        snprintf(what, sizeof what, "%s", op_name(ops[i]));
        cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
        graph_free(&c.g);
    }
}

/* softmax rows shorter than a warp, of several warps, longer than a block */
static void softmax_case(uint64_t seed, GShape s)
{
    Case c = {.seed = seed};
    graph_init(&c.g);
    int x = value(&c, "x", s);
    int u = op(&c, OP_SCALE, &x, 1, s, (GAttr){.scale = 4}); /* logits in [-4, 4] */
    int y = op(&c, OP_SOFTMAX, &u, 1, s, (GAttr){0});
    int z = op(&c, OP_MUL, (int[]){y, x}, 2, s, (GAttr){0});
    finish(&c, z);
    char what[64];
    snprintf(what, sizeof what, "softmax rows %lld x %lld", (long long)shape_rows(&s), (long long)shape_last(&s));
    cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
    graph_free(&c.g);
}

Test(cuda_codegen, softmax)
{
    softmax_case(90, s3(2, 7, 5));
    softmax_case(91, s2(13, 70));
    softmax_case(92, s2(3, 700));
}

/* axis sums of [A, K, B] views: a middle axis, the last (B = 1: a block per
   row, rows longer than a block; a short row: a thread per row), the first
   (A = 1), K = 1 */
Test(cuda_codegen, sum_axis)
{
    int64_t dims[6][3] = {{3, 17, 5}, {13, 70, 1}, {1, 300, 7}, {9, 1, 4}, {4, 700, 1}, {11, 5, 1}};
    for (int i = 0; i < 6; i++) {
        Case c = {.seed = 95 + (uint64_t)i};
        graph_init(&c.g);
        int64_t A = dims[i][0], K = dims[i][1], B = dims[i][2];
        int x = value(&c, "x", s3(A, K, B));
        int y = op(&c, OP_SUM_AXIS, &x, 1, s2(A, B), (GAttr){.scale = i % 2 ? 1.0 : 1.0 / (double)K});
        int w = param(&c, "w", s3(A, K, B)); /* a parameter's gradient straight from sum_axis_bwd */
        int v = op(&c, OP_SUM_AXIS, &w, 1, s2(A, B), (GAttr){.scale = 1});
        int z = op(&c, OP_MUL, (int[]){y, v}, 2, s2(A, B), (GAttr){0});
        finish(&c, z);
        char what[64];
        snprintf(what, sizeof what, "sum_axis [%lld, %lld, %lld]", (long long)A, (long long)K, (long long)B);
        cr_expect_eq(run_case(&c, what, &(RunOpts){0}), 0, "%s", what);
        graph_free(&c.g);
    }
}

Test(cuda_codegen, mse)
{
    Case c = {.seed = 71};
    graph_init(&c.g);
    GShape s = s2(37, 3);
    int pred = value(&c, "pred", s), target = param(&c, "target", s);
    int m = op(&c, OP_MSE, (int[]){pred, target}, 2, shape_of(0), (GAttr){0});
    int other = value(&c, "other", s);
    int m2 = op(&c, OP_MSE, (int[]){other, pred}, 2, shape_of(0), (GAttr){0}); /* pred's gradient accumulates */
    finish(&c, op(&c, OP_ADD, (int[]){m, m2}, 2, shape_of(0), (GAttr){0}));
    cr_expect_eq(run_case(&c, "mse", &(RunOpts){0}), 0);
    graph_free(&c.g);
}

Test(cuda_codegen, embedding_and_cross_entropy)
{
    for (int cublas = 0; cublas < 2; cublas++) {
        Case c = {.seed = 50};
        graph_init(&c.g);
        int64_t B = 3, T = 11, V = 11, C = 4;
        int idx = leaf(&c, OP_INPUT, "idx", s2(B, T), DT_I32);
        int targets = leaf(&c, OP_INPUT, "targets", s2(B, T), DT_I32);
        int wte = param(&c, "wte", s2(V, C));
        int emb = op(&c, OP_EMBEDDING, (int[]){idx, wte}, 2, s3(B, T, C), (GAttr){0});
        int w = param(&c, "w", s2(V, C));
        int logits = op(&c, OP_LINEAR, (int[]){emb, w}, 2, s3(B, T, V), (GAttr){0});
        int loss = with_aux(&c, OP_CROSS_ENTROPY, (int[]){logits, targets}, 2, shape_of(0), (GAttr){0},
                            shape_of(1, B * T));
        c.g.n_forward = c.g.n;
        c.g.loss = loss;
        char err[256];
        cr_assert_eq(autodiff(&c.g, loss, -1, 0, err, sizeof err), 0, "%s", err);
        cr_expect_eq(run_case(&c, cublas ? "embedding+ce cublas" : "embedding+ce", &(RunOpts){.use_cublas = cublas}), 0);
        graph_free(&c.g);
    }
}

/* a small transformer: embedding + positions, layernorm, KAN qkv, causal
   attention with dropout, linear projection, residuals, KAN MLP with GELU,
   dropout, linear head, cross-entropy; AdamW with clipping */
static void build_transformer(Case *c)
{
    graph_init(&c->g);
    int64_t B = 2, T = 5, C = 6, H = 3, V = 11;
    Graph *g = &c->g;
    int idx = leaf(c, OP_INPUT, "idx", s2(B, T), DT_I32);
    int targets = leaf(c, OP_INPUT, "targets", s2(B, T), DT_I32);
    int wte = param(c, "wte", s2(V, C)), wpe = param(c, "wpe", s2(T, C));
    g->nodes[wte].decay = g->nodes[wpe].decay = 0;
    int tok = op(c, OP_EMBEDDING, (int[]){idx, wte}, 2, s3(B, T, C), (GAttr){0});
    int x = op(c, OP_ADD, (int[]){tok, wpe}, 2, s3(B, T, C), (GAttr){0});
    /* attention block */
    int l1w = param(c, "ln1.w", shape_of(1, C)), l1b = param(c, "ln1.b", shape_of(1, C));
    g->nodes[l1w].decay = g->nodes[l1b].decay = 0;
    int h = with_aux(c, OP_LAYERNORM, (int[]){x, l1w, l1b}, 3, s3(B, T, C), (GAttr){.eps = 1e-5}, s2(B * T, 2));
    int G = 5, k = 3;
    int grid1 = leaf(c, OP_BUFFER, "attn.grid", s2(C, G + 2 * k + 1), DT_REAL);
    int bw1 = param(c, "attn.base", s2(3 * C, C)), sw1 = param(c, "attn.spline", s3(3 * C, C, G + k));
    int sc1 = param(c, "attn.scaler", s2(3 * C, C));
    int qkv = op(c, OP_KAN, (int[]){h, grid1, bw1, sw1, sc1}, 5, s3(B, T, 3 * C),
                 (GAttr){.grid_size = G, .spline_order = k, .has_scaler = 1, .act = ACT_SILU});
    int att = with_aux(c, OP_ATTENTION, &qkv, 1, s3(B, T, C), (GAttr){.heads = (int)H, .causal = 1, .p = 0.3},
                       shape_of(4, B, H, T, T));
    int pw = param(c, "proj.w", s2(C, C)), pb = param(c, "proj.b", shape_of(1, C));
    g->nodes[pb].decay = 0;
    int proj = op(c, OP_LINEAR, (int[]){att, pw, pb}, 3, s3(B, T, C), (GAttr){.has_bias = 1});
    int x2 = op(c, OP_ADD, (int[]){x, proj}, 2, s3(B, T, C), (GAttr){0});
    /* MLP block */
    int l2w = param(c, "ln2.w", shape_of(1, C)), l2b = param(c, "ln2.b", shape_of(1, C));
    g->nodes[l2w].decay = g->nodes[l2b].decay = 0;
    int h2 = with_aux(c, OP_LAYERNORM, (int[]){x2, l2w, l2b}, 3, s3(B, T, C), (GAttr){.eps = 1e-5}, s2(B * T, 2));
    int grid2 = leaf(c, OP_BUFFER, "mlp.grid", s2(C, 4 + 2 * 2 + 1), DT_REAL);
    int bw2 = param(c, "mlp.base", s2(4 * C, C)), sw2 = param(c, "mlp.spline", s3(4 * C, C, 4 + 2));
    int up = op(c, OP_KAN, (int[]){h2, grid2, bw2, sw2}, 4, s3(B, T, 4 * C),
                (GAttr){.grid_size = 4, .spline_order = 2, .has_scaler = 0, .act = ACT_GELU});
    int act = op(c, OP_GELU, &up, 1, s3(B, T, 4 * C), (GAttr){0});
    int dw = param(c, "mlp.down", s2(C, 4 * C));
    int down = op(c, OP_LINEAR, (int[]){act, dw}, 2, s3(B, T, C), (GAttr){0});
    int drop = op(c, OP_DROPOUT, &down, 1, s3(B, T, C), (GAttr){.p = 0.2});
    int x3 = op(c, OP_ADD, (int[]){x2, drop}, 2, s3(B, T, C), (GAttr){0});
    /* head */
    int hw = param(c, "head.w", s2(V, C)), hb = param(c, "head.b", shape_of(1, V));
    g->nodes[hb].decay = 0;
    int logits = op(c, OP_LINEAR, (int[]){x3, hw, hb}, 3, s3(B, T, V), (GAttr){.has_bias = 1});
    int loss = with_aux(c, OP_CROSS_ENTROPY, (int[]){logits, targets}, 2, shape_of(0), (GAttr){0},
                        shape_of(1, B * T));
    g->n_forward = g->n;
    g->loss = loss;
    g->output = logits;
    char err[256];
    cr_assert_eq(autodiff(g, loss, -1, 0, err, sizeof err), 0, "%s", err);
    autodiff_add_optimizer(g);
}

/* parameters scaled down so that the model is in a sane regime */
static void fill_transformer(Case *c, CpuExec *e)
{
    for (int i = 0; i < c->g.n; i++) {
        GNode *n = &c->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        float *v = cpu_exec_value(e, i);
        int ln_w = n->name && strstr(n->name, ".w") && strstr(n->name, "ln");
        for (int64_t j = 0; j < shape_numel(&n->shape); j++) v[j] = ln_w ? 1 + 0.1f * v[j] : 0.5f * v[j];
    }
}

Test(cuda_codegen, transformer_training_steps)
{
    for (int cublas = 0; cublas < 2; cublas++) {
        Case c = {.seed = 60};
        build_transformer(&c);
        RunOpts ro = {.steps = 3, .training = 1, .use_cublas = cublas, .nvrtc = 1, .independent = 1,
                      .fill = fill_transformer};
        cr_expect_eq(run_case(&c, cublas ? "transformer (cublas)" : "transformer", &ro), 0);
        graph_free(&c.g);
    }
}

/* every KAN layer on the blocked path in row blocks of 4, 4 and 2, three steps
   carried through; NVRTC compiles the blocked kernels */
Test(cuda_codegen, transformer_blocked_kan)
{
    Case c = {.seed = 62};
    build_transformer(&c);
    RunOpts ro = {.steps = 3, .training = 1, .use_cublas = 1, .nvrtc = 1, .independent = 1,
                  .kan_kernel = KAN_KERNEL_BLOCKED, .kan_block_rows = 4, .fill = fill_transformer};
    cr_expect_eq(run_case(&c, "transformer (blocked KAN)", &ro), 0);
    graph_free(&c.g);
}

Test(cuda_codegen, transformer_small_tiles)
{
    Case c = {.seed = 61};
    build_transformer(&c);
    RunOpts ro = {.steps = 2, .training = 1, .use_cublas = 0, .tm = 16, .tn = 32, .tk = 5,
                  .independent = 1, .fill = fill_transformer};
    cr_expect_eq(run_case(&c, "transformer (16x32x5 tiles)", &ro), 0);
    graph_free(&c.g);
}

Test(cuda_codegen, nvrtc_compiles_every_template)
{
    /* one source with every op and both GEMM paths' kernels: the transformer
       with generated GEMMs plus the leftover ops (slice, concat, reshape,
       scale, sub, relu, silu, sum, the unary ops, softmax, sum_axis) in a second graph */
    Case c = {.seed = 62};
    build_transformer(&c);
    Plan p;
    plan_build(&p, &c.g, 4);
    CudaOptions o;
    cuda_options_default(&o);
    o.use_cublas = 0;
    CudaProgram prog;
    char err[256];
    cr_assert_eq(codegen_cuda(&p, &o, &prog, err, sizeof err), 0, "%s", err);
    nvrtc_check(prog.source);
    cuda_program_free(&prog);
    plan_free(&p);
    graph_free(&c.g);

    Case d = {.seed = 63};
    graph_init(&d.g);
    int a = value(&d, "a", s2(4, 7));
    int sl = op(&d, OP_SLICE, &a, 1, s2(4, 3), (GAttr){.start = 1, .len = 3});
    int r = op(&d, OP_RELU, &sl, 1, s2(4, 3), (GAttr){0});
    int si = op(&d, OP_SILU, &a, 1, s2(4, 7), (GAttr){0});
    int cat = op(&d, OP_CONCAT, (int[]){r, si}, 2, s2(4, 10), (GAttr){0});
    int rs = op(&d, OP_RESHAPE, &cat, 1, s2(8, 5), (GAttr){0});
    int sub = op(&d, OP_SUB, (int[]){rs, rs}, 2, s2(8, 5), (GAttr){0});
    /* the unary ops, affine scale, softmax and the axis sum */
    int af = op(&d, OP_SCALE, &sub, 1, s2(8, 5), (GAttr){.scale = 0.5, .shift = 3});
    int un = af;
    GOp unary[] = {OP_TANH, OP_SIGMOID, OP_EXP, OP_LOG, OP_ABS, OP_RECIP, OP_SOFTMAX};
    for (int i = 0; i < 7; i++) un = op(&d, unary[i], &un, 1, s2(8, 5), (GAttr){0});
    int r3 = op(&d, OP_RESHAPE, &un, 1, s3(2, 4, 5), (GAttr){0});
    int sa = op(&d, OP_SUM_AXIS, &r3, 1, s2(2, 5), (GAttr){.scale = 0.25});
    finish(&d, sa);
    autodiff_add_optimizer(&d.g);
    plan_build(&p, &d.g, 4);
    cr_assert_eq(codegen_cuda(&p, &o, &prog, err, sizeof err), 0, "%s", err);
    nvrtc_check(prog.source);
    cuda_program_free(&prog);
    plan_free(&p);
    graph_free(&d.g);
}

Test(cuda_codegen, rejects_double_plans_and_bad_tiles)
{
    Case c = {.seed = 70};
    graph_init(&c.g);
    int a = value(&c, "a", s2(3, 4));
    finish(&c, a);
    Plan p;
    plan_build(&p, &c.g, 8);
    CudaProgram prog;
    char err[256];
    cr_expect_eq(codegen_cuda(&p, NULL, &prog, err, sizeof err), -1);
    cr_expect(strstr(err, "float") != NULL, "%s", err);
    plan_free(&p);
    plan_build(&p, &c.g, 4);
    CudaOptions o;
    cuda_options_default(&o);
    o.tile_m = 24;
    cr_expect_eq(codegen_cuda(&p, &o, &prog, err, sizeof err), -1);
    cr_expect(strstr(err, "multiples of 16") != NULL, "%s", err);
    cuda_options_default(&o);
    o.precision = CUDA_BF16; /* bf16 products run on cuBLASLt; the generated GEMM kernels are fp32 */
    o.use_cublas = 0;
    cr_expect_eq(codegen_cuda(&p, &o, &prog, err, sizeof err), -1);
    cr_expect(strstr(err, "fp32 only") != NULL, "%s", err);
    plan_free(&p);
    graph_free(&c.g);
}

/* the prelude's primitives on a hand-written kernel: shuffles, __syncthreads,
   warp sync, dynamic shared memory, atomics; threads of a partial last warp */
static const char PRELUDE_SRC[] =
    "struct KancArgs { unsigned long long arena, params, grads, m, v, buffers, ws, scalars; };\n"
    "struct KancLaunchArgs { unsigned long long v[16]; };\n"
    "extern \"C\" __global__ void prims(const KancArgs *args, const KancLaunchArgs la)\n"
    "{\n"
    "    float *out = (float *)args->arena + la.v[1];\n"
    "    __shared__ float tile[64];\n"
    "    extern_smem_decl\n"
    "    int t = threadIdx.x, lane = t & 31;\n"
    "    float v = (float)(t + 1);\n"
    "    float x = v;\n"
    "    for (int m = 16; m > 0; m >>= 1) x += __shfl_xor_sync(0xffffffffu, x, m);\n"
    "    float d = __shfl_down_sync(0xffffffffu, v, 1);\n"
    "    float b = __shfl_sync(0xffffffffu, v, 3);\n"
    "    dyn[t] = v * 2.0f;\n"
    "    tile[t] = v;\n"
    "    __syncthreads();\n"
    "    int base = blockIdx.x * 64 * 5 + t * 5;\n"
    "    out[base + 0] = x;\n"
    "    out[base + 1] = d;\n"
    "    out[base + 2] = b;\n"
    "    out[base + 3] = tile[63 - t] + dyn[63 - t];\n"
    "    atomicAdd(&out[1000], 1.0f);\n"
    "    (void)lane;\n"
    "}\n"
    "#ifdef KANC_EMU\nKANC_EMU_HOST(prims, 1)\n#endif\n";

Test(cuda_codegen, prelude_primitives)
{
    char src[4096], err[256];
    const char *decl = "float *dyn = (float *)kanc_emu_dyn_smem();";
    const char *at = strstr(PRELUDE_SRC, "extern_smem_decl");
    snprintf(src, sizeof src, "%.*s%s%s", (int)(at - PRELUDE_SRC), PRELUDE_SRC, decl,
             at + strlen("extern_smem_decl"));
    EmuModule *m = emu_module_build(src, err, sizeof err);
    cr_assert(m, "%s", err);
    EmuHostFn fn = emu_module_lookup(m, "prims");
    cr_assert(fn);
    float *out = calloc(2048, sizeof(float));
    KancArgs a = {.arena = (uint64_t)(uintptr_t)out};
    /* the parameters as cuLaunchKernel's kernelParams: the KancArgs address, the launch's values */
    uint64_t ap = (uint64_t)(uintptr_t)&a;
    KancLaunchArgs la = {.v = {7, 3}}; /* la.v[1]: the kernel writes from out + 3 */
    void *params[2] = {&ap, &la};
    fn((KancDim3){2, 1, 1}, (KancDim3){64, 1, 1}, 64 * sizeof(float), params);
    for (int blk = 0; blk < 2; blk++)
        for (int t = 0; t < 64; t++) {
            const float *o = out + 3 + blk * 320 + t * 5;
            int w = t / 32;
            float sum = 0;
            for (int l = 0; l < 32; l++) sum += (float)(32 * w + l + 1);
            cr_expect_eq(o[0], sum, "warp sum t=%d", t);
            cr_expect_eq(o[1], (t & 31) == 31 ? (float)(t + 1) : (float)(t + 2), "shfl_down t=%d", t);
            cr_expect_eq(o[2], (float)(32 * w + 4), "shfl t=%d", t);
            cr_expect_eq(o[3], 3.0f * (float)(64 - t), "shared t=%d", t);
        }
    cr_expect_eq(out[1003], 128.0f);
    cr_expect_eq(out[0], 0.0f);
    free(out);
    emu_module_free(m);
}

Test(cuda_codegen, emu_reports_compile_errors)
{
    /* a private TMPDIR: a failed build keeps its directory for inspection */
    char tmp[] = "/tmp/kanc-emu-test-XXXXXX", err[256], cmd[64];
    cr_assert(mkdtemp(tmp));
    setenv("TMPDIR", tmp, 1);
    EmuModule *m = emu_module_build("int broken( { this is not C++ }\n", err, sizeof err);
    cr_expect_null(m);
    cr_expect(strstr(err, "rejected") != NULL, "%s", err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}

/* ------------------------------------------------------------------------ */
/* the library's files (cuda/)                                               */
/* ------------------------------------------------------------------------ */

Test(cuda_codegen, the_library_compiles_with_nvcc)
{
    char *out = NULL;
    if (test_run(&out, "command -v nvcc") != 0) cr_skip_test("nvcc is not on the PATH");
    free(out);
    char *dir = test_tmpdir();
    const char *arch[] = {"sm_80", "sm_90"};
    for (int i = 0; i < 2; i++) {
        int rc = test_run(&out,
                          "nvcc -std=c++17 -arch=%s -Icuda -Iruntime/exec -Werror all-warnings "
                          "-c tests/cuda/lib_instantiate.cu -o %s/lib_%s.o",
                          arch[i], dir, arch[i]);
        cr_assert_eq(rc, 0, "nvcc %s failed:\n%s", arch[i], out);
        free(out);
    }
    test_run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* Each embedded file's text, between its quoted includes, appears in the
   generated source once, and no quoted include is left for NVRTC to find. */
Test(cuda_codegen, the_generated_source_holds_the_library_files)
{
    Case c = {.seed = 64};
    graph_init(&c.g);
    int a = value(&c, "a", s2(4, 7));
    int r = op(&c, OP_RELU, &a, 1, s2(4, 7), (GAttr){0});
    finish(&c, r);
    Plan p;
    plan_build(&p, &c.g, 4);
    CudaProgram prog;
    char err[256];
    cr_assert_eq(codegen_cuda(&p, NULL, &prog, err, sizeof err), 0, "%s", err);
    cr_assert_null(strstr(prog.source, "#include \""), "a quoted include is left in the source");
    cr_assert_gt(kanc_n_embedded_files, 2);
    for (int i = 0; i < kanc_n_embedded_files; i++) {
        const EmbeddedFile *f = &kanc_embedded_files[i];
        cr_assert_eq(embedded_file(f->name), f);
        cr_assert_eq(strlen(f->text), f->len, "%s holds a NUL byte", f->name);
        const char *seg = f->text;
        while (*seg) {
            const char *inc = strstr(seg, "#include \"");
            size_t n = inc ? (size_t)(inc - seg) : strlen(seg);
            char *piece = strndup(seg, n);
            const char *at = strstr(prog.source, piece);
            cr_assert_not_null(at, "%s: a part of it is missing from the source:\n%s", f->name, piece);
            if (n > 64) cr_assert_null(strstr(at + 1, piece), "%s: a part of it appears twice", f->name);
            free(piece);
            if (!inc) break;
            seg = strchr(inc, '\n');
            if (!seg) break;
            seg++;
        }
    }
    cuda_program_free(&prog);
    plan_free(&p);
    graph_free(&c.g);
}
