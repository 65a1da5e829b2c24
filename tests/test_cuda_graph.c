/* test_cuda_graph.c: the step as a CUDA graph and the step records, on the mock driver.
 *
 *   - the mock's capture: launches, memsets and page-locked copies recorded,
 *     not run, and replayed in order by cuGraphLaunch (the copy reading the
 *     page-locked buffer at the replay); a synchronisation, a pageable or
 *     synchronous copy, an allocation during a capture refused with
 *     CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, the capture then invalidated;
 *   - a hand-built kernel that reads the per-step scalars: replayed graphs see
 *     each step's lr and step (written by an async copy before the launch),
 *     equal to launch by launch; KANC_CUDA_SYNC=1 and KANC_CUDA_GRAPH=0 launch
 *     no graph; KANC_CUDA_SYNC=1 names the failing launch;
 *   - a small kansformers step emulated: deferred runs with the loss as a log
 *     node, as graphs and launch by launch, bit-identical losses, gradient
 *     norms and parameters over five steps; the records equal what the CPU
 *     device logs for the same steps.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_api.h"
#include "init.h"
#include "model.h"
#include "rng.h"
#include "util.h"
#include "test_util.h"

/* ------------------------------------------------------------ the mock's capture */

Test(cuda_graph, mock_capture_records_and_replays_in_order)
{
    const CudaApi *api = cuda_api_mock();
    CUstream s;
    CUdeviceptr d;
    float *pinned;
    cr_assert(api->cuStreamCreate(&s, 0) == CUDA_SUCCESS);
    cr_assert(api->cuMemAlloc(&d, 64) == CUDA_SUCCESS);
    cr_assert(api->cuMemAllocHost((void **)&pinned, 16) == CUDA_SUCCESS);
    unsigned char *dev = (unsigned char *)(uintptr_t)d;
    memset(dev, 0, 64);
    int st = -1;
    cr_assert(api->cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_NONE);
    cr_assert(api->cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
    cr_expect(api->cuStreamIsCapturing(s, &st) == CUDA_SUCCESS && st == CU_STREAM_CAPTURE_STATUS_ACTIVE);
    /* the memset first, then the copy over part of it: order matters */
    cr_assert(api->cuMemsetD8Async(d, 7, 64, s) == CUDA_SUCCESS);
    cr_assert(api->cuMemcpyHtoDAsync(d, pinned, 16, s) == CUDA_SUCCESS);
    cr_assert(api->cuMemcpyDtoHAsync(pinned + 2, d + 32, 4, s) == CUDA_SUCCESS);
    CUgraph g = NULL;
    cr_assert(api->cuStreamEndCapture(s, &g) == CUDA_SUCCESS && g);
    cr_expect(cuda_mock_graph_nodes(g) == 3, "%d nodes", cuda_mock_graph_nodes(g));
    for (int i = 0; i < 64; i++) cr_expect(dev[i] == 0, "captured work ran: byte %d is %d", i, dev[i]);
    CUgraphExec x;
    cr_assert(api->cuGraphInstantiate(&x, g, 0) == CUDA_SUCCESS);
    cr_assert(api->cuGraphDestroy(g) == CUDA_SUCCESS); /* the executable graph stands alone */
    int64_t launches = cuda_mock_graph_launches();
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < 4; i++) pinned[i] = (float)(10 * rep + i); /* read at the replay */
        cr_assert(api->cuGraphLaunch(x, s) == CUDA_SUCCESS);
        const float *f = (const float *)dev;
        for (int i = 0; i < 4; i++) cr_expect(f[i] == (float)(10 * rep + i), "replay %d: %g", rep, f[i]);
        for (int i = 16; i < 64; i++) cr_expect(dev[i] == 7);
        unsigned char sevens[4] = {7, 7, 7, 7};
        cr_expect(!memcmp(&pinned[2], sevens, 4), "the device-to-host node did not run after the memset");
    }
    cr_expect(cuda_mock_graph_launches() == launches + 3);
    cr_expect(api->cuGraphExecDestroy(x) == CUDA_SUCCESS);
    cr_expect(api->cuMemFreeHost(pinned) == CUDA_SUCCESS);
    cr_expect(api->cuMemFree(d) == CUDA_SUCCESS);
    cr_expect(api->cuStreamDestroy(s) == CUDA_SUCCESS);
}

/* begins a capture on s, makes the refused call (its result), ends the capture:
   invalidated, no graph */
static void expect_refused(const CudaApi *api, CUstream s, int which, const char *what)
{
    cr_assert(api->cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_SUCCESS);
    static float pageable[4];
    CUdeviceptr d = 0;
    CUresult r;
    void *h = NULL;
    switch (which) {
    case 0: r = api->cuStreamSynchronize(s); break;
    case 1: r = api->cuMemcpyHtoDAsync((CUdeviceptr)(uintptr_t)pageable, pageable + 2, 8, s); break;
    case 2: r = api->cuMemcpyDtoHAsync(pageable, (CUdeviceptr)(uintptr_t)(pageable + 2), 8, s); break;
    case 3: r = api->cuCtxSynchronize(); break;
    case 4: r = api->cuMemcpyHtoD((CUdeviceptr)(uintptr_t)pageable, pageable + 2, 8); break;
    case 5: r = api->cuMemAlloc(&d, 64); break;
    default: r = api->cuMemAllocHost(&h, 64); break;
    }
    cr_expect(r == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "%s during a capture: %d, not refused", what, r);
    int st = -1;
    api->cuStreamIsCapturing(s, &st);
    cr_expect(st == CU_STREAM_CAPTURE_STATUS_INVALIDATED, "%s: capture status %d", what, st);
    CUgraph g = (CUgraph)(uintptr_t)1;
    r = api->cuStreamEndCapture(s, &g);
    cr_expect(r == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED && !g, "%s: end of capture %d, graph %p", what, r,
              (void *)g);
}

Test(cuda_graph, mock_refuses_syncs_and_host_copies_during_capture)
{
    const CudaApi *api = cuda_api_mock();
    CUstream s;
    cr_assert(api->cuStreamCreate(&s, 0) == CUDA_SUCCESS);
    const char *what[] = {"cuStreamSynchronize", "a pageable host-to-device copy", "a pageable device-to-host copy",
                          "cuCtxSynchronize", "a synchronous copy", "cuMemAlloc", "cuMemAllocHost"};
    for (int i = 0; i < 7; i++) expect_refused(api, s, i, what[i]);
    /* outside a capture all of it is fine again; ending a capture never begun is not */
    cr_expect(api->cuStreamSynchronize(s) == CUDA_SUCCESS);
    cr_expect(api->cuCtxSynchronize() == CUDA_SUCCESS);
    CUgraph g;
    cr_expect(api->cuStreamEndCapture(s, &g) == CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
    cr_expect(api->cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
              "the legacy stream cannot capture");
    cr_expect(api->cuStreamDestroy(s) == CUDA_SUCCESS);
}

/* ------------------------------------------------------------ a hand-built step */

/* inputs x (64 floats) and a scalar s, and an OP_ADAMW node owning the launch */
static void tiny_graph(Graph *g, Plan *p)
{
    graph_init(g);
    GNode in = {0};
    in.op = OP_INPUT;
    in.shape = shape_of(1, (int64_t)64);
    in.dtype = DT_REAL;
    in.fwd = in.init_ref = in.gparam = -1;
    in.name = "x";
    graph_add(g, &in);
    in.shape = shape_of(0);
    in.name = "s";
    graph_add(g, &in);
    g->n_forward = g->n;
    GNode adam = {0};
    adam.op = OP_ADAMW;
    adam.fwd = adam.init_ref = adam.gparam = -1;
    graph_add(g, &adam);
    plan_build(p, g, 4);
}

/* an emulation-style shared object: x = 2 x + lr + step, grad_norm = step */
static char *tiny_kernel_so(void)
{
    char *dir = test_tmpdir();
    char *src = xasprintf("%s/k.c", dir), *so = xasprintf("%s/k.so", dir);
    FILE *f = fopen(src, "w");
    cr_assert(f);
    fputs("typedef struct { unsigned x, y, z; } D3;\n"
          "typedef struct { unsigned long long arena, params, grads, m, v, buffers, ws, scalars; } A;\n"
          "typedef struct { float lr, b1, b2, eps, wd, clip, gn, cs; unsigned long long seed, step; int tr, pad; } S;\n"
          "typedef struct { unsigned long long v[16]; } L;\n"
          "void step__host(D3 g, D3 b, unsigned smem, void **params) {\n"
          "  const A *a = *(const A **)params[0]; const L *la = (const L *)params[1];\n"
          "  float *x = (float *)la->v[0]; S *s = (S *)a->scalars;\n"
          "  for (unsigned i = 0; i < g.x * b.x; i++) x[i] = 2 * x[i] + s->lr + (float)s->step;\n"
          "  s->gn = (float)s->step; s->cs = s->lr; }\n",
          f);
    fclose(f);
    char *cmd = xasprintf("cc -shared -fPIC -o '%s' '%s'", so, src);
    cr_assert(system(cmd) == 0);
    free(cmd), free(src), free(dir);
    return so;
}

static Device *tiny_device(Plan *p, const char *so, unsigned block)
{
    CudaProgram prog = {0};
    prog.n_launch = 1;
    prog.launch = xcalloc(1, sizeof *prog.launch);
    prog.launch[0] = (CudaLaunch){.kind = LAUNCH_KERNEL, .node = 2, .name = "step", .grid = {2, 1, 1},
                                  .block = {block, 1, 1}, .n_args = 1, .arg = {{AREA_ARENA, 0}}};
    char *image = cuda_mock_image_so(so), err[1024];
    Device *dev = device_cuda_open_image(p, "emu", &prog, image, err, sizeof err);
    free(image);
    cr_assert(dev, "%s", err);
    return dev;
}

/* five steps of the tiny program under the environment's settings: x after each
   into xs[5][64], grad_norm and clip_scale into gn[5], cs[5]; graph launches made */
static int64_t tiny_steps(const char *so, float xs[5][64], double gn[5], double cs[5])
{
    Graph g;
    Plan p;
    tiny_graph(&g, &p);
    Device *dev = tiny_device(&p, so, 16);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    dev->ops->write_value(dev, 0, x);
    int64_t before = cuda_mock_graph_launches();
    for (int s = 0; s < 5; s++) {
        dev->opt.lr = 0.125 * (s + 1);
        dev->ops->run(dev, 0, 3);
        dev->ops->read_value(dev, 0, xs[s]);
        gn[s] = dev->grad_norm, cs[s] = dev->clip_scale;
    }
    int64_t made = cuda_mock_graph_launches() - before;
    cr_expect(dev->step == 5);
    dev->ops->destroy(dev);
    plan_free(&p);
    graph_free(&g);
    return made;
}

Test(cuda_graph, replayed_graphs_see_each_steps_scalars)
{
    char *so = tiny_kernel_so();
    float a[5][64], b[5][64], c[5][64];
    double ga[5], ca[5], gb[5], cb[5], gc[5], cc[5];
    unsetenv("KANC_CUDA_SYNC");
    unsetenv("KANC_CUDA_GRAPH");
    int64_t with = tiny_steps(so, a, ga, ca);
    setenv("KANC_CUDA_GRAPH", "0", 1);
    int64_t without = tiny_steps(so, b, gb, cb);
    unsetenv("KANC_CUDA_GRAPH");
    setenv("KANC_CUDA_SYNC", "1", 1);
    int64_t synced = tiny_steps(so, c, gc, cc);
    unsetenv("KANC_CUDA_SYNC");
    /* the first run is launch by launch, the second captured, every later one a replay */
    cr_expect(with == 4, "%lld graph launches in 5 steps", (long long)with);
    cr_expect(without == 0 && synced == 0, "KANC_CUDA_GRAPH=0: %lld, KANC_CUDA_SYNC=1: %lld graph launches",
              (long long)without, (long long)synced);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < 32; i++) x[i] = 2 * x[i] + 0.125f * (s + 1) + (float)s;
        cr_expect(!memcmp(a[s], x, sizeof x), "step %d: the graph's x differs from the expected", s);
        cr_expect(!memcmp(a[s], b[s], sizeof x) && !memcmp(a[s], c[s], sizeof x), "step %d differs", s);
        cr_expect(ga[s] == s && ca[s] == 0.125 * (s + 1), "step %d: grad norm %g clip %g", s, ga[s], ca[s]);
        cr_expect(ga[s] == gb[s] && ca[s] == cb[s] && ga[s] == gc[s] && ca[s] == cc[s]);
    }
    free(so);
}

Test(cuda_graph, deferred_runs_keep_step_records)
{
    char *so = tiny_kernel_so();
    Graph g;
    Plan p;
    tiny_graph(&g, &p);
    Device *dev = tiny_device(&p, so, 16);
    float x[64] = {0}, v = 3.5f;
    dev->ops->write_value(dev, 0, x);
    dev->ops->write_value(dev, 1, &v);
    dev->deferred = 1;
    dev->ops->run(dev, 0, 3);
    DeviceStepLog rec[1200];
    cr_expect(device_read_log(dev, rec, 8) == 0, "a record without log nodes");
    dev->log_nodes[0] = 1;
    dev->n_log_nodes = 1;
    /* more steps than the device's page-locked ring holds, read at two points */
    int total = 1100;
    for (int s = 1; s <= total; s++) {
        dev->opt.lr = 0.5 * s;
        dev->ops->run(dev, 0, 3);
        cr_expect(isnan(dev->grad_norm), "a deferred run left grad_norm %g (not read back)", dev->grad_norm);
        if (s == 7) {
            cr_expect(device_read_log(dev, rec, 1200) == 7);
            for (int i = 0; i < 7; i++)
                cr_expect(rec[i].step == i + 1 && rec[i].value[0] == 3.5 && rec[i].grad_norm == i + 1 &&
                              rec[i].clip_scale == 0.5 * (i + 1),
                          "record %d: step %lld value %g norm %g clip %g", i, (long long)rec[i].step,
                          rec[i].value[0], rec[i].grad_norm, rec[i].clip_scale);
        }
    }
    int n = device_read_log(dev, rec, 1200);
    cr_expect(n == total - 7, "%d records", n);
    for (int i = 0; i < n; i++) {
        int64_t step = i + 8;
        if (rec[i].step != step || rec[i].grad_norm != (double)step || rec[i].clip_scale != 0.5 * (double)step) {
            cr_expect(0, "record %d: step %lld norm %g clip %g, expected step %lld", i, (long long)rec[i].step,
                      rec[i].grad_norm, rec[i].clip_scale, (long long)step);
            break;
        }
    }
    dev->ops->destroy(dev);
    plan_free(&p);
    graph_free(&g);
    free(so);
}

/* KANC_CUDA_SYNC=1: a launch that fails is named (kernel, node, op), in a child
   process since a failure inside a step is fatal */
Test(cuda_graph, sync_mode_names_the_failing_launch)
{
    char *so = tiny_kernel_so();
    int fd[2];
    cr_assert(pipe(fd) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        setenv("KANC_CUDA_SYNC", "1", 1);
        Graph g;
        Plan p;
        tiny_graph(&g, &p);
        Device *dev = tiny_device(&p, so, 2048); /* more threads than a block may have */
        dev->ops->run(dev, 0, 3);
        _exit(0);
    }
    close(fd[1]);
    char buf[4096] = "";
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof buf && (r = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "the failing step did not stop (status %d)", status);
    cr_expect(strstr(buf, "cuLaunchKernel(step") && strstr(buf, "node 2") && strstr(buf, "adamw"), "%s", buf);
    free(so);
}

/* ------------------------------------------------------------ a model's step */

static void small_model(Model *m, const char *device)
{
    char *path = test_repo_path("models/kansformers.kdl");
    KdlSet sets[] = {{"n_layer", "1", 1}, {"batch", "2", 1},  {"block_size", "8", 1},
                     {"n_embd", "12", 1}, {"n_head", "2", 1}, {"vocab_size", "29", 1}};
    cr_assert(model_compile(m, path, NULL, sets, 6, MODEL_TRAIN, 4, device, stderr) == 0, "%s", device);
    char err[512];
    cr_assert(model_init_params(m, 3, err, sizeof err) == 0, "%s", err);
    free(path);
}

/* five whole steps, deferred, the loss as the log node; the records into rec,
   the parameters after into params (caller frees); graph launches made */
static int64_t model_steps(const char *device, DeviceStepLog rec[5], float **params, size_t *np)
{
    Model m;
    small_model(&m, device);
    Device *d = m.dev;
    int idx = model_input(&m, "idx"), tgt = model_input(&m, "targets");
    int64_t n = shape_numel(&m.g.nodes[idx].shape), V = graph_vocab(&m.g, idx);
    int32_t *x = xmalloc(sizeof(int32_t) * (size_t)n), *y = xmalloc(sizeof(int32_t) * (size_t)n);
    char err[512];
    d->deferred = 1;
    d->log_nodes[0] = m.g.loss;
    d->n_log_nodes = 1;
    d->training = 1;
    d->seed = 77;
    int64_t before = cuda_mock_graph_launches();
    for (int s = 0; s < 5; s++) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = (int32_t)(kanc_rng_bits(9, (uint64_t)s, (uint64_t)i) % (uint64_t)V);
            y[i] = (int32_t)(kanc_rng_bits(10, (uint64_t)s, (uint64_t)i) % (uint64_t)V);
        }
        cr_assert(model_set_tokens(&m, idx, x, err, sizeof err) == 0, "%s", err);
        cr_assert(model_set_tokens(&m, tgt, y, err, sizeof err) == 0, "%s", err);
        d->opt.lr = 1e-2 * (s + 1);
        d->opt.clip = s == 2 ? 1e-3 : 1.0; /* step 2 clips hard */
        d->ops->run(d, 0, m.g.n);
    }
    int64_t made = cuda_mock_graph_launches() - before;
    cr_expect(device_read_log(d, rec, 5) == 5, "%s: not five records", device);
    DeviceStepLog more[1];
    cr_expect(device_read_log(d, more, 1) == 0, "%s: a record read twice", device);
    double last;
    model_read_value(&m, m.g.loss, &last);
    cr_expect(rec[4].value[0] == last, "%s: the last record's loss %.9g, the value %.9g", device, rec[4].value[0], last);
    *np = (size_t)m.plan.n_param_elems;
    *params = xmalloc(sizeof(float) * *np);
    d->ops->read_area(d, AREA_PARAMS, *params);
    free(x), free(y);
    model_free(&m);
    return made;
}

Test(cuda_graph, emulated_steps_as_graphs_are_bit_identical)
{
    DeviceStepLog rg[5], rl[5], rc[5];
    float *pg, *pl, *pc;
    size_t ng, nl, nc;
    unsetenv("KANC_CUDA_SYNC");
    unsetenv("KANC_CUDA_GRAPH");
    int64_t with = model_steps("emu", rg, &pg, &ng);
    setenv("KANC_CUDA_GRAPH", "0", 1);
    int64_t without = model_steps("emu", rl, &pl, &nl);
    unsetenv("KANC_CUDA_GRAPH");
    model_steps("cpu", rc, &pc, &nc);
    cr_expect(with == 4 && without == 0, "graph launches: %lld with graphs, %lld without", (long long)with,
              (long long)without);
    cr_assert(ng == nl && ng == nc);
    for (int s = 0; s < 5; s++) {
        cr_expect(rg[s].step == s && rl[s].step == s && rc[s].step == s, "step numbers");
        cr_expect(rg[s].value[0] == rl[s].value[0] && rg[s].grad_norm == rl[s].grad_norm &&
                      rg[s].clip_scale == rl[s].clip_scale,
                  "step %d: graph loss %.9g norm %.9g clip %.9g, launches %.9g %.9g %.9g", s, rg[s].value[0],
                  rg[s].grad_norm, rg[s].clip_scale, rl[s].value[0], rl[s].grad_norm, rl[s].clip_scale);
        cr_expect(isfinite(rg[s].value[0]) && rg[s].value[0] > 0);
        cr_expect(fabs(rg[s].value[0] - rc[s].value[0]) <= 1e-5 * rc[s].value[0], "step %d: loss emu %.8f cpu %.8f",
                  s, rg[s].value[0], rc[s].value[0]);
        cr_expect(fabs(rg[s].grad_norm - rc[s].grad_norm) <= 1e-4 * rc[s].grad_norm, "step %d: norm %g cpu %g", s,
                  rg[s].grad_norm, rc[s].grad_norm);
        cr_expect(fabs(rg[s].clip_scale - rc[s].clip_scale) <= 1e-4 * rc[s].clip_scale, "step %d: clip %g cpu %g",
                  s, rg[s].clip_scale, rc[s].clip_scale);
    }
    cr_expect(rg[2].clip_scale < 0.1, "step 2 did not clip: %g", rg[2].clip_scale);
    cr_expect(!memcmp(pg, pl, ng * sizeof(float)), "parameters after five steps differ");
    free(pg), free(pl), free(pc);
}
