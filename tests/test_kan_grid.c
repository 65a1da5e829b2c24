/* test_kan_grid.c: grid update and grid extension of B-spline KAN layers.
 *
 * The update against efficient-kan's update_grid (fixture
 * kan-workflow/kan_update_grid.safetensors) in float64; the `keep` mode on
 * skewed data (the spline output on the batch is kept); rank-deficient batches
 * (every sample equal, fewer distinct values than coefficients) give finite
 * coefficients; knots that float32 cannot separate are an error, not NaN; and
 * the extension onto a finer grid keeps the function.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kan_basis.h"
#include "kan_grid.h"
#include "safetensors.h"
#include "test_util.h"
#include "util.h"

TestSuite(kan_grid);

static double *read_f64(const StFile *f, const char *name, int64_t *n)
{
    const StTensor *t = st_find(f, name);
    cr_assert(t, "the fixture has no '%s'", name);
    double *v = xmalloc(sizeof(double) * (size_t)t->numel);
    st_read_f64(t, v);
    if (n) *n = t->numel;
    return v;
}

/* the spline part of a layer at x [N, in]: y [N, out] */
static void spline_out(const double *x, int64_t N, int64_t in, int64_t out, int G, int k, const double *grid,
                       const double *spline, const double *scaler, double *y)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf = b->nf(G, k), len = b->grid_len(G, k);
    double v[64], scratch[64];
    for (int64_t t = 0; t < N; t++)
        for (int64_t o = 0; o < out; o++) {
            double acc = 0;
            for (int64_t i = 0; i < in; i++) {
                b->reference(grid + i * len, x[t * in + i], G, k, v, scratch);
                for (int c = 0; c < nf; c++) acc += v[c] * spline[(o * in + i) * nf + c] * (scaler ? scaler[o * in + i] : 1);
            }
            y[t * out + o] = acc;
        }
}

static uint64_t rng = 88172645463325252ull;
static double uniform01(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2 * log(1 - uniform01())) * cos(2 * M_PI * uniform01()); }

Test(kan_grid, the_update_matches_efficient_kan_in_float64)
{
    char *path = test_fixture_path("kan-workflow/kan_update_grid.safetensors"), err[512];
    StFile f;
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cJSON *cfg = cJSON_Parse(st_meta(&f, "config"));
    int G = cJSON_GetObjectItem(cfg, "grid_size")->valueint, k = cJSON_GetObjectItem(cfg, "spline_order")->valueint;
    int64_t in = cJSON_GetObjectItem(cfg, "in_features")->valueint, out = cJSON_GetObjectItem(cfg, "out_features")->valueint;
    int64_t nx, ng, ns;
    double *x = read_f64(&f, "x", &nx), *grid = read_f64(&f, "grid", &ng), *spline = read_f64(&f, "spline_weight", &ns);
    double *scaler = read_f64(&f, "spline_scaler", NULL), *want_grid = read_f64(&f, "after.grid", NULL);
    double *want_spline = read_f64(&f, "after.spline_weight", NULL), *idx_want = read_f64(&f, "sample_index", NULL);
    int64_t N = nx / in, idx[64];
    kan_grid_sample_index(N, G, idx);
    for (int j = 0; j <= G; j++) cr_expect_eq((double)idx[j], idx_want[j], "sample_index[%d]", j);
    /* the spline outputs before the update, per input: `unreduced` */
    int64_t nu;
    double *unreduced = read_f64(&f, "unreduced", &nu), *mine = xmalloc(sizeof(double) * (size_t)nu);
    for (int64_t i = 0; i < in; i++) { /* input i alone: the others' splines zeroed */
        double *only = xcalloc((size_t)ns, sizeof *only), *y = xmalloc(sizeof(double) * (size_t)(N * out));
        int nf = (int)(ns / (in * out));
        for (int64_t o = 0; o < out; o++) memcpy(only + (o * in + i) * nf, spline + (o * in + i) * nf, nf * sizeof *only);
        spline_out(x, N, in, out, G, k, grid, only, scaler, y);
        for (int64_t t = 0; t < N; t++)
            for (int64_t o = 0; o < out; o++) mine[(t * in + i) * out + o] = y[t * out + o];
        free(only), free(y);
    }
    cr_expect_leq(test_rel_err(mine, unreduced, nu), 1e-12, "unreduced: %.3e", test_rel_err(mine, unreduced, nu));
    KanGridOpts o = {.margin = cJSON_GetObjectItem(cfg, "margin")->valuedouble,
                     .eps = cJSON_GetObjectItem(cfg, "grid_eps")->valuedouble,
                     .mode = KAN_GRID_EFFICIENT_KAN};
    cr_assert_eq(kan_grid_update_layer(x, N, in, out, G, k, grid, spline, scaler, &o, 8, err, sizeof err), 0, "%s", err);
    double eg = test_rel_err(grid, want_grid, ng), es = test_rel_err(spline, want_spline, ns);
    cr_expect_leq(eg, 1e-14, "after.grid: relative error %.3e", eg);
    /* the reference solves with gelsy, kanc with gelsd: equal to the conditioning's rounding */
    cr_expect_leq(es, 1e-11, "after.spline_weight: relative error %.3e", es);
    free(x), free(grid), free(spline), free(scaler), free(want_grid), free(want_spline), free(idx_want);
    free(unreduced), free(mine);
    cJSON_Delete(cfg);
    st_close(&f);
    free(path);
}

/* a layer with random splines on the uniform grid [-1, 1] */
typedef struct {
    int64_t in, out;
    int G, k;
    double *grid, *spline, *scaler;
} Layer;

static void layer_new(Layer *L, int64_t in, int64_t out, int G, int k)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf = b->nf(G, k), len = b->grid_len(G, k);
    *L = (Layer){in, out, G, k, xmalloc(sizeof(double) * (size_t)(in * len)),
                 xmalloc(sizeof(double) * (size_t)(out * in * nf)), xmalloc(sizeof(double) * (size_t)(out * in))};
    for (int64_t i = 0; i < in; i++) b->init_grid(L->grid + i * len, G, k, -1, 1);
    for (int64_t j = 0; j < out * in * nf; j++) L->spline[j] = 0.5 * normal();
    for (int64_t j = 0; j < out * in; j++) L->scaler[j] = 0.5 + uniform01();
}

static void layer_free(Layer *L) { free(L->grid), free(L->spline), free(L->scaler); }

/* rms(after - before) / rms(before) of the spline part on x after an update in mode */
static double update_change(const Layer *L0, const double *x, int64_t N, KanGridMode mode)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    int nf = b->nf(L0->G, L0->k), len = b->grid_len(L0->G, L0->k);
    Layer L = *L0;
    L.grid = xmalloc(sizeof(double) * (size_t)(L.in * len));
    L.spline = xmalloc(sizeof(double) * (size_t)(L.out * L.in * nf));
    memcpy(L.grid, L0->grid, sizeof(double) * (size_t)(L.in * len));
    memcpy(L.spline, L0->spline, sizeof(double) * (size_t)(L.out * L.in * nf));
    double *y0 = xmalloc(sizeof(double) * (size_t)(N * L.out)), *y1 = xmalloc(sizeof(double) * (size_t)(N * L.out));
    spline_out(x, N, L.in, L.out, L.G, L.k, L.grid, L.spline, L.scaler, y0);
    KanGridOpts o = KAN_GRID_DEFAULTS;
    o.mode = mode;
    char err[512];
    cr_assert_eq(kan_grid_update_layer(x, N, L.in, L.out, L.G, L.k, L.grid, L.spline, L.scaler, &o, 4, err, sizeof err),
                 0, "%s", err);
    spline_out(x, N, L.in, L.out, L.G, L.k, L.grid, L.spline, L.scaler, y1);
    double d2 = 0, b2 = 0;
    for (int64_t t = 0; t < N * L.out; t++) d2 += (y1[t] - y0[t]) * (y1[t] - y0[t]), b2 += y0[t] * y0[t];
    /* every sample inside the new grid range */
    for (int64_t i = 0; i < L.in; i++)
        for (int64_t t = 0; t < N; t++) {
            double lo, hi;
            b->grid_range(L.grid + i * len, L.G, L.k, &lo, &hi);
            cr_expect(x[t * L.in + i] >= lo && x[t * L.in + i] <= hi, "sample %lld of input %lld outside", (long long)t,
                      (long long)i);
        }
    free(y0), free(y1), free(L.grid), free(L.spline);
    return sqrt(d2 / b2);
}

/* smooth splines: coefficient j the value of a smooth function at the j-th
   Greville abscissa (the mean of knots j+1 .. j+k), which the spline follows */
static void smooth_splines(Layer *L)
{
    int nf = L->G + L->k, len = L->G + 2 * L->k + 1;
    for (int64_t o = 0; o < L->out; o++)
        for (int64_t i = 0; i < L->in; i++)
            for (int j = 0; j < nf; j++) {
                double g = 0;
                for (int q = 1; q <= L->k; q++) g += L->grid[i * len + j + q] / L->k;
                L->spline[(o * L->in + i) * nf + j] = sin(2 * g + (double)o) + 0.3 * (double)(i + 1) * g * g;
            }
}

Test(kan_grid, keep_mode_keeps_the_spline_output_on_skewed_data)
{
    Layer L;
    layer_new(&L, 3, 4, 5, 3);
    int64_t N = 400;
    double *x = xmalloc(sizeof(double) * (size_t)(N * L.in));
    /* skewed: most samples near -0.8, a long tail to 0.9, all inside the old grid */
    for (int64_t t = 0; t < N * L.in; t++) x[t] = -0.8 + 1.7 * pow(uniform01(), 3);
    /* random coefficients (N(0, 0.25)): wiggly splines, which a cubic on other
       knots approximates least; measured 8.3e-2 */
    double keep_rough = update_change(&L, x, N, KAN_GRID_KEEP);
    cr_expect_leq(keep_rough, 0.15, "keep, random splines: output change %.3e", keep_rough);
    smooth_splines(&L);
    double keep = update_change(&L, x, N, KAN_GRID_KEEP), eff = update_change(&L, x, N, KAN_GRID_EFFICIENT_KAN);
    cr_expect_leq(keep, 1e-2, "keep, smooth splines: output change %.3e", keep);
    /* efficient-kan applies the scaler (0.5 .. 1.5 here) a second time */
    cr_expect_geq(eff, 0.1, "efficient-kan: output change %.3e", eff);
    printf("grid update on skewed data: spline output change %.2e (keep, random splines), %.2e (keep, smooth), "
           "%.2e (efficient-kan, smooth)\n", keep_rough, keep, eff);
    free(x);
    layer_free(&L);
}

Test(kan_grid, rank_deficient_batches_give_finite_coefficients)
{
    Layer L;
    layer_new(&L, 2, 3, 5, 3);
    int nf = L.G + L.k;
    const int64_t N = 40;
    double x[2 * 40];
    for (int kind = 0; kind < 3; kind++) {
        for (int64_t t = 0; t < N; t++) {
            x[t * 2] = kind == 0 ? 0.25 : kind == 1 ? (double)(t % 3) * 0.3 : 0.1 * (double)(t % 2); /* 1, 3, 2 values */
            x[t * 2 + 1] = 0.5 * (kind == 2 ? 1 : 0) + 0.01 * (double)(t % 4);
        }
        int len = L.G + 2 * L.k + 1;
        double grid[2 * 12], spline[3 * 2 * 8];
        memcpy(grid, L.grid, sizeof(double) * 2 * len);
        memcpy(spline, L.spline, sizeof(double) * 3 * 2 * nf);
        for (int mode = 0; mode < 2; mode++) {
            KanGridOpts o = KAN_GRID_DEFAULTS;
            o.mode = mode ? KAN_GRID_EFFICIENT_KAN : KAN_GRID_KEEP;
            char err[512];
            cr_assert_eq(kan_grid_update_layer(x, N, 2, 3, L.G, L.k, grid, spline, L.scaler, &o, 4, err, sizeof err), 0,
                         "case %d: %s", kind, err);
            for (int j = 0; j < 3 * 2 * nf; j++) cr_assert(isfinite(spline[j]), "case %d: coefficient %d is %g", kind, j, spline[j]);
            for (int j = 1; j < len; j++) cr_assert_gt((float)grid[j], (float)grid[j - 1], "case %d: knot %d", kind, j);
        }
        if (kind == 0) { /* keep: the one value's output is kept */
            double y0[3], y1[3];
            spline_out(x, 1, 2, 3, L.G, L.k, L.grid, L.spline, L.scaler, y0);
            memcpy(grid, L.grid, sizeof(double) * 2 * len);
            memcpy(spline, L.spline, sizeof(double) * 3 * 2 * nf);
            KanGridOpts o = KAN_GRID_DEFAULTS;
            char err[512];
            cr_assert_eq(kan_grid_update_layer(x, N, 2, 3, L.G, L.k, grid, spline, L.scaler, &o, 4, err, sizeof err), 0);
            spline_out(x, 1, 2, 3, L.G, L.k, grid, spline, L.scaler, y1);
            for (int o2 = 0; o2 < 3; o2++) cr_expect(fabs(y1[o2] - y0[o2]) < 1e-9, "output %d: %g -> %g", o2, y0[o2], y1[o2]);
        }
    }
    layer_free(&L);
}

Test(kan_grid, knots_float32_cannot_separate_are_an_error)
{
    Layer L;
    layer_new(&L, 1, 1, 5, 3);
    double x[20];
    for (int t = 0; t < 20; t++) x[t] = 3.0; /* one value, no margin, no uniform share */
    KanGridOpts o = {.margin = 0, .eps = 0, .mode = KAN_GRID_KEEP};
    double grid0[12];
    memcpy(grid0, L.grid, sizeof grid0);
    char err[512] = "";
    cr_expect_eq(kan_grid_update_layer(x, 20, 1, 1, 5, 3, L.grid, L.spline, L.scaler, &o, 4, err, sizeof err), -1);
    cr_expect(strstr(err, "input 0") && strstr(err, "not strictly increasing") && strstr(err, "--grid-margin"), "%s", err);
    cr_expect_eq(memcmp(grid0, L.grid, sizeof grid0), 0, "the grid changed on an error");
    /* a non-finite sample names itself */
    x[7] = NAN;
    o = KAN_GRID_DEFAULTS;
    cr_expect_eq(kan_grid_update_layer(x, 20, 1, 1, 5, 3, L.grid, L.spline, L.scaler, &o, 4, err, sizeof err), -1);
    cr_expect(strstr(err, "sample 7"), "%s", err);
    layer_free(&L);
}

/* the old and the new layer at m points over the old grid range: the largest difference */
static double extension_error(const Layer *L, int G_new, const double *grid, const double *spline)
{
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    double worst = 0;
    for (int64_t i = 0; i < L->in; i++) {
        double lo, hi;
        b->grid_range(L->grid + i * b->grid_len(L->G, L->k), L->G, L->k, &lo, &hi);
        for (int t = 0; t <= 997; t++) {
            double xv[8] = {0}, y0[8], y1[8];
            for (int64_t j = 0; j < L->in; j++) xv[j] = 1e9; /* the other inputs outside: zero */
            xv[i] = lo + (hi - lo) * t / 997.0;
            spline_out(xv, 1, L->in, L->out, L->G, L->k, L->grid, L->spline, NULL, y0);
            spline_out(xv, 1, L->in, L->out, G_new, L->k, grid, spline, NULL, y1);
            for (int64_t o = 0; o < L->out; o++) worst = fmax(worst, fabs(y1[o] - y0[o]));
        }
    }
    return worst;
}

Test(kan_grid, extension_onto_a_finer_grid_keeps_the_function)
{
    Layer L;
    layer_new(&L, 3, 2, 5, 3);
    const KanBasis *b = kan_basis(KAN_BASIS_BSPLINE);
    struct {
        int G_new;
        double tol;
    } cases[] = {{5, 1e-10}, {10, 1e-10}, {20, 1e-10}, {7, 0.05}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int G = cases[c].G_new;
        double *grid = xmalloc(sizeof(double) * (size_t)(L.in * b->grid_len(G, L.k)));
        double *spline = xmalloc(sizeof(double) * (size_t)(L.out * L.in * b->nf(G, L.k)));
        double fit = kan_grid_extend(L.grid, L.spline, L.in, L.out, L.k, L.G, G, grid, spline);
        double err = extension_error(&L, G, grid, spline);
        /* nested uniform grids hold the old splines exactly; 5 -> 7 approximates
           (random coefficients ~0.5: measured 2.4e-2) */
        cr_expect_leq(err, cases[c].tol, "5 -> %d: largest difference %.3e", G, err);
        cr_expect_leq(fabs(fit - err), 0.5 * cases[c].tol + 1e-12, "5 -> %d: reported %.3e, measured %.3e", G, fit, err);
        printf("grid extension 5 -> %d: largest difference %.2e\n", G, err);
        for (int64_t i = 0; i < L.in; i++) {
            double lo0, hi0, lo1, hi1;
            b->grid_range(L.grid + i * b->grid_len(L.G, L.k), L.G, L.k, &lo0, &hi0);
            b->grid_range(grid + i * b->grid_len(G, L.k), G, L.k, &lo1, &hi1);
            cr_expect(fabs(lo0 - lo1) < 1e-12 && fabs(hi0 - hi1) < 1e-12, "the range moved");
        }
        free(grid), free(spline);
    }
    layer_free(&L);
}

/* ---- during training ---- */

#define TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4"

static int count_lines(const char *path, const char *what)
{
    char *text = read_file(path, NULL);
    cr_assert(text, "cannot read %s", path);
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++) n++;
    free(text);
    return n;
}

Test(kan_grid, training_with_grid_updates_resumes_bit_exactly, .timeout = 300)
{
    char *a = test_tmpdir(), *b = test_tmpdir(), *out = NULL;
    const char *data = test_corpus();
    /* updates after steps 0, 2, .., 10; checkpoints at 4 and 8 hold an update each */
    const char *flags = TINY " --steps 12 --warmup 2 --eval-every 6 --eval-batches 2 --log-every 1 --threads 2 "
                             "--save-every 4 --grid-update-every 2 --grid-margin 0.05";
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s %s", data, a, flags), 0,
                 "%s", out);
    cr_expect(strstr(out, "step      0/12 | grid update of 9 layers (keep) | out of grid"), "%s", out);
    free(out);
    /* killed after step 7 (the checkpoint of step 4 is the last), resumed */
    char *cmd = xasprintf("cd '%s' && exec %s train models/kansformers.kdl --data %s --out %s %s", test_root(),
                          test_bin("kanrun"), data, b, flags);
    test_kill_at(cmd, "step      7/12 | loss");
    free(cmd);
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s", b), 0, "%s", out);
    cr_expect(strstr(out, "step      6/12 | grid update") && !strstr(out, "step      4/12 | grid update"),
              "the resume redoes the update of step 6, not that of step 4 (in its checkpoint):\n%s", out);
    free(out);
    const char *files[] = {"model.safetensors", "optimizer-12.safetensors"};
    for (int i = 0; i < 2; i++)
        cr_expect_eq(test_run(NULL, "cmp %s/%s %s/%s", a, files[i], b, files[i]), 0,
                     "%s differs between the run and its resumed copy", files[i]);
    for (int i = 0; i < 2; i++) {
        char *m = xasprintf("%s/metrics.jsonl", i ? b : a);
        cr_expect_eq(count_lines(m, "\"grid_update\""), 6, "%s: one line per update", m);
        cr_expect_eq(count_lines(m, "\"out_of_grid\""), 2, "%s: the out-of-grid fraction at each evaluation", m);
        free(m);
    }
    /* the same history, timings aside */
    const char *untimed = "sed -E 's/\"(ms|tok_s|model_flops_s|mfu)\":[0-9.e+-]+//g'";
    cr_expect_eq(test_run(&out, "%s %s/metrics.jsonl > %s/a.txt && %s %s/metrics.jsonl > %s/b.txt && diff %s/a.txt %s/b.txt",
                          untimed, a, a, untimed, b, a, a, a), 0, "the metrics differ beyond timings:\n%s", out);
    free(out);
}

Test(kan_grid, bad_grid_flags_are_errors)
{
    char *dir = test_tmpdir(), *out = NULL;
    const char *data = test_corpus();
    int rc = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s/a " TINY " --grid-eps 1.5", data, dir);
    cr_expect_eq(rc, 2, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "--grid-eps"), "%s", out);
    free(out);
    rc = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s/b " TINY " --grid-update-every 2 "
                        "--grid-mode sideways", data, dir);
    cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "--grid-mode sideways: must be keep or efficient-kan"), "%s", out);
    free(out);
    rc = test_run(&out, "$KANRUN train models/mingpt.kdl --data %s --out %s/c " TINY " --grid-update-every 2", data, dir);
    cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "has no B-spline KAN layer to update"), "%s", out);
    free(out);
}

/* "val loss 5.3183 |" of kanrun eval's output */
static double val_loss(const char *out)
{
    const char *p = strstr(out, "val loss ");
    cr_assert(p, "no val loss in:\n%s", out);
    return atof(p + 9);
}

Test(kan_grid, regrid_writes_a_checkpoint_that_keeps_the_loss_and_resumes, .timeout = 300)
{
    char *run = test_tmpdir(), *copy = test_tmpdir(), *out = NULL;
    const char *data = test_corpus();
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                                " --steps 6 --eval-every 0 --threads 2 --quiet", data, run), 0, "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --batches 4", run), 0, "%s", out);
    double before = val_loss(out);
    free(out);
    /* into another folder: the run is only read */
    cr_assert_eq(test_run(&out, "cp %s/model.safetensors %s/orig.safetensors && $KANRUN regrid %s --batches 2 --out %s/new",
                          run, copy, run, copy), 0, "%s", out);
    free(out);
    cr_expect_eq(test_run(NULL, "cmp %s/model.safetensors %s/orig.safetensors", run, copy), 0, "--out changed the run");
    /* in place: the previous weights kept, the loss kept (keep mode), the history told */
    cr_assert_eq(test_run(&out, "$KANRUN regrid %s --batches 2", run), 0, "%s", out);
    cr_expect(strstr(out, "9 layers (keep) on 2 batches: out of grid") && strstr(out, "before-regrid"), "%s", out);
    free(out);
    cr_expect_eq(test_run(NULL, "cmp %s/model-step6-before-regrid.safetensors %s/orig.safetensors", run, copy), 0);
    cr_expect_eq(test_run(NULL, "cmp %s/model.safetensors %s/new/model.safetensors", run, copy), 0,
                 "the same update in place and into --out");
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --batches 4", run), 0, "%s", out);
    double after = val_loss(out);
    free(out);
    cr_expect(fabs(after - before) < 0.01 * before, "val loss %.4f before, %.4f after the regrid", before, after);
    char *m = xasprintf("%s/metrics.jsonl", run);
    cr_expect_eq(count_lines(m, "\"regrid\":true"), 1);
    free(m);
    cr_expect_eq(test_run(&out, "$KANRUN train --resume %s --steps 8 --quiet", run), 0, "%s", out);
    free(out);
    /* not a run */
    int rc = test_run(&out, "$KANRUN regrid %s/orig.safetensors", copy);
    cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "not a run folder"), "%s", out);
    free(out);
}

Test(kan_grid, a_finer_grid_on_resume_or_load_refits_the_splines, .timeout = 300)
{
    char *run = test_tmpdir(), *out = NULL;
    const char *data = test_corpus();
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                                " --steps 6 --eval-every 0 --threads 2 --quiet --grid-update-every 3", data, run), 0,
                 "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --batches 4", run), 0, "%s", out);
    double before = val_loss(out);
    free(out);
    /* the checkpoint loaded as a state_dict into the model with grid_size 10
       (the grids adapted, so non-uniform: midpoint refinement keeps the splines exactly) */
    const char *sets = "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --set batch=4";
    cr_assert_eq(test_run(&out, "$KANRUN eval %s/model.safetensors --model models/kansformers.kdl %s --set grid_size=10 "
                                "--data %s --batches 4", run, sets, data), 0, "%s", out);
    cr_expect(strstr(out, "grid extended from 5 to 10 intervals"), "%s", out);
    double extended = val_loss(out);
    free(out);
    cr_expect(fabs(extended - before) < 1e-3, "val loss %.4f on grid 5, %.4f on grid 10", before, extended);
    /* 5 -> 7 is not nested: close, not exact */
    cr_assert_eq(test_run(&out, "$KANRUN eval %s/model.safetensors --model models/kansformers.kdl %s --set grid_size=7 "
                                "--data %s --batches 4", run, sets, data), 0, "%s", out);
    double seven = val_loss(out);
    free(out);
    cr_expect(fabs(seven - before) < 0.02 * before, "val loss %.4f on grid 5, %.4f on grid 7", before, seven);
    printf("grid extension of a trained run: val loss %.4f (G 5), %.4f (G 10), %.4f (G 7)\n", before, extended, seven);
    /* a resumed run continues on the finer grid; a coarser one is refused */
    int rc = test_run(&out, "$KANRUN train --resume %s --set grid_size=3 --steps 8 --quiet", run);
    cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "made finer (grid extension), not coarser"), "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s --set grid_size=10 --steps 8 --quiet", run), 0, "%s", out);
    cr_expect(strstr(out, "grid extended from 5 to 10 intervals"), "%s", out);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --batches 4", run), 0, "%s", out);
    cr_expect(strstr(out, "step 8"), "%s", out);
    free(out);
}
