/* test_inspect.c: kanrun inspect, run as a user runs it.
 *
 * The CSV's edge functions are checked against the running model: a KAN
 * layer with one input has y_o = phi_o0(x), so the model's own forward pass
 * on the CSV's x column must give the CSV's o<o>_i0 columns; with several
 * inputs, y_o of the row (x_0[p], x_1[p], ...) is the sum over i of the
 * CSV's o<o>_i<i> at row p. The parameters are random (not the init's small
 * spline noise) and the knots non-uniform, different per input. The L1
 * norms on data are checked the same way: a one-edge model holding a trained
 * edge's weights, run on that layer's inputs as the probe reads them. The
 * PNG of a tiny trained run is read back with cairo: its size, and the
 * colours its panels, curves, histograms and grid marks are drawn in; the
 * out-of-grid fractions equal kanrun eval's.
 */
#include <cairo.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "corpus.h"
#include "kan_probe.h"
#include "lm.h"
#include "model.h"
#include "plot.h"
#include "test_util.h"
#include "tokenizer.h"
#include "util.h"

TestSuite(inspect);

#define POINTS 201

/* ---- a one-layer model with random parameters, saved as a checkpoint ---- */

static double urand(unsigned *s) { return (double)(*s = *s * 1103515245u + 12345u) / 4294967296.0; }

/* writes node's values (doubles) into the float model */
static void write_node(Model *m, int node, const double *v)
{
    int64_t n = shape_numel(&m->g.nodes[node].shape);
    float *f = xmalloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    m->dev->ops->write_value(m->dev, node, f);
    free(f);
}

static int kan_node(const Model *m)
{
    for (int i = 0; i < m->g.n_forward; i++)
        if (m->g.nodes[i].op == OP_KAN) return i;
    cr_assert_fail("no kan op");
    return -1;
}

/* `model edge(x: real[POINTS, in])` = one kan layer with opts; random
   weights, knots strictly increasing with random gaps per input */
static void make_edge_model(Model *m, int in, int out, const char *opts, unsigned seed)
{
    char src[512], err[512];
    snprintf(src, sizeof src,
             "model edge(x: real[%d, %d]) {\n"
             "  y = kan(x, [%d], %s)\n"
             "  return y\n"
             "}\n",
             POINTS, in, out, opts);
    cr_assert_eq(model_compile(m, "edge.kdl", src, NULL, 0, MODEL_FORWARD, 4, "cpu", stderr), 0, "%s", src);
    cr_assert_eq(model_init_params(m, 3, err, sizeof err), 0, "%s", err);
    const GNode *k = &m->g.nodes[kan_node(m)];
    for (int s = 1; s < k->nin; s++) {
        int node = k->in[s];
        const GShape *sh = &m->g.nodes[node].shape;
        int64_t n = shape_numel(sh), len = shape_last(sh);
        double *v = xmalloc((size_t)n * sizeof *v);
        if (s == 1) /* the grid: per input from a random start, random gaps */
            for (int64_t i = 0; i < n / len; i++) {
                double t = -1.5 + 0.5 * urand(&seed);
                for (int64_t j = 0; j < len; j++) v[i * len + j] = t, t += 0.15 + 0.5 * urand(&seed);
            }
        else
            for (int64_t i = 0; i < n; i++) v[i] = 2 * urand(&seed) - 1;
        write_node(m, node, v);
        free(v);
    }
}

/* the CSV: header names into cols[], values [rows, ncols] */
typedef struct {
    char **cols;
    int ncols, rows;
    double *v;
} Csv;

static void read_csv(const char *path, Csv *c)
{
    char *text = read_file(path, NULL);
    cr_assert(text, "no %s", path);
    memset(c, 0, sizeof *c);
    char *line = strtok(text, "\n");
    cr_assert(line);
    char *hdr = xstrdup(line);
    for (char *save, *t = strtok_r(hdr, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        c->cols = xrealloc(c->cols, (size_t)(c->ncols + 1) * sizeof *c->cols);
        c->cols[c->ncols++] = xstrdup(t);
    }
    free(hdr);
    int cap = 256;
    c->v = xmalloc((size_t)cap * c->ncols * sizeof *c->v);
    while ((line = strtok(NULL, "\n"))) {
        if (c->rows == cap) c->v = xrealloc(c->v, (size_t)(cap *= 2) * c->ncols * sizeof *c->v);
        char *p = line;
        for (int j = 0; j < c->ncols; j++) {
            char *end;
            c->v[(size_t)c->rows * c->ncols + j] = strtod(p, &end);
            cr_assert(end != p, "%s: row %d column %d is not a number", path, c->rows + 1, j);
            p = *end == ',' ? end + 1 : end;
        }
        cr_assert_eq(*p, 0, "%s: row %d has more than %d columns", path, c->rows + 1, c->ncols);
        c->rows++;
    }
    free(text);
}

static int csv_col(const Csv *c, const char *name)
{
    for (int j = 0; j < c->ncols; j++)
        if (!strcmp(c->cols[j], name)) return j;
    cr_assert_fail("the CSV has no column %s", name);
    return -1;
}

static void free_csv(Csv *c)
{
    for (int j = 0; j < c->ncols; j++) free(c->cols[j]);
    free(c->cols), free(c->v);
}

static cJSON *read_json(const char *path)
{
    char *text = read_file(path, NULL);
    cr_assert(text, "no %s", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

/* saves m as RUN, inspects it, and compares the CSV with m's forward pass */
static void check_csv_against_forward(Model *m, int in, int out)
{
    char *run = test_tmpdir(), *dir = test_tmpdir(), *log = NULL, err[512];
    cr_assert_eq(ckpt_save(run, m, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s -o %s/out --points %d", run, dir, POINTS), 0, "%s", log);
    cr_expect(strstr(log, "layers.0  "), "the summary line names the layer: %s", log);
    free(log);
    char *csv_path = xasprintf("%s/out/layers.0.csv", dir), *json_path = xasprintf("%s/out/layers.0.json", dir);
    Csv c;
    read_csv(csv_path, &c);
    cr_assert_eq(c.rows, POINTS);
    cr_assert_eq(c.ncols, in * (out + 1), "x_<i> and o<o>_i<i> per input");

    /* the model's forward pass on the rows (x_0[p], x_1[p], ...) */
    double *x = xmalloc((size_t)POINTS * in * sizeof *x), *y = xmalloc((size_t)POINTS * out * sizeof *y);
    char name[32];
    for (int i = 0; i < in; i++) {
        snprintf(name, sizeof name, "x_%d", i);
        int col = csv_col(&c, name);
        for (int p = 0; p < POINTS; p++) x[p * in + i] = c.v[(size_t)p * c.ncols + col];
    }
    StTensor t = {.name = "x", .dtype = ST_F64, .rank = 2, .shape = {POINTS, in}, .numel = POINTS * in,
                  .nbytes = (size_t)POINTS * in * sizeof *x, .data = x};
    cr_assert_eq(model_set_input(m, model_input(m, "x"), &t, err, sizeof err), 0, "%s", err);
    m->dev->ops->run(m->dev, 0, m->g.n_forward);
    model_read_value(m, m->g.output, y);
    double worst = 0;
    for (int p = 0; p < POINTS; p++)
        for (int o = 0; o < out; o++) {
            double sum = 0;
            for (int i = 0; i < in; i++) {
                snprintf(name, sizeof name, "o%d_i%d", o, i);
                sum += c.v[(size_t)p * c.ncols + csv_col(&c, name)];
            }
            double d = fabs(sum - y[p * out + o]) / fmax(1, fabs(y[p * out + o]));
            worst = fmax(worst, d);
            cr_expect_leq(d, 1e-5, "row %d (x_0 = %g), output %d: CSV %.9g, model %.9g", p, x[p * in], o, sum,
                          y[p * out + o]);
        }
    /* the edges are not flat: the check would catch a wrong formula */
    double lo = INFINITY, hi = -INFINITY;
    for (int p = 0; p < POINTS; p++) lo = fmin(lo, y[p * out]), hi = fmax(hi, y[p * out]);
    cr_expect_gt(hi - lo, 0.1, "y_0 varies over the sampled range");
    cr_log_info("inspect CSV vs forward: worst relative difference %.2e", worst);

    /* the JSON: sizes and the knots the model holds */
    cJSON *j = read_json(json_path);
    cr_expect_eq(cJSON_GetObjectItem(j, "in")->valueint, in);
    cr_expect_eq(cJSON_GetObjectItem(j, "out")->valueint, out);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "basis")->valuestring, "bspline");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(j, "data")));
    const GNode *k = &m->g.nodes[kan_node(m)];
    cr_expect_eq(cJSON_GetObjectItem(j, "grid_size")->valueint, k->a.grid_size);
    cr_expect_eq(cJSON_GetObjectItem(j, "spline_order")->valueint, k->a.spline_order);
    int len = (int)shape_last(&m->g.nodes[k->in[1]].shape);
    double *grid = xmalloc((size_t)in * len * sizeof *grid);
    model_read_value(m, k->in[1], grid);
    cJSON *jg = cJSON_GetObjectItem(j, "grid");
    cr_assert_eq(cJSON_GetArraySize(jg), in);
    for (int i = 0; i < in; i++) {
        cJSON *row = cJSON_GetArrayItem(jg, i);
        cr_assert_eq(cJSON_GetArraySize(row), len);
        for (int q = 0; q < len; q++)
            cr_expect_eq(cJSON_GetArrayItem(row, q)->valuedouble, grid[i * len + q], "knot %d of input %d: JSON %.17g, model %.17g", q, i, cJSON_GetArrayItem(row, q)->valuedouble, grid[i * len + q]);
    }
    /* the ranking is by L1, largest first, and covers every edge */
    cJSON *r = cJSON_GetObjectItem(j, "ranking"), *top = cJSON_GetObjectItem(r, "top");
    cr_expect_eq(cJSON_GetArraySize(top), in * out);
    for (int e = 1; e < cJSON_GetArraySize(top); e++)
        cr_expect_geq(cJSON_GetObjectItem(cJSON_GetArrayItem(top, e - 1), "l1")->valuedouble,
                      cJSON_GetObjectItem(cJSON_GetArrayItem(top, e), "l1")->valuedouble);
    cJSON_Delete(j);
    free(grid), free(x), free(y), free(csv_path), free(json_path);
    free_csv(&c);
}

Test(inspect, csv_is_the_models_edge_function_one_input, .timeout = 60)
{
    Model m;
    make_edge_model(&m, 1, 3, "grid_size = 4, spline_order = 3, grid_range = [-1, 1.5], base = \"gelu\"", 11);
    check_csv_against_forward(&m, 1, 3);
    model_free(&m);
}

Test(inspect, csv_sums_to_the_models_output_three_inputs, .timeout = 60)
{
    Model m;
    make_edge_model(&m, 3, 2, "grid_size = 6, spline_order = 2, scaler = false", 5);
    check_csv_against_forward(&m, 3, 2);
    model_free(&m);
}

/* A PyTorch state_dict (efficient-kan's KANLinear from the fixture, its
   non-uniform grid) through --model: a layer at the model's root is "root",
   and its knots are the file's. */
Test(inspect, state_dict_with_model, .timeout = 60)
{
    char *fixture = test_fixture_path("kan_linear_nonuniform.safetensors"), err[512];
    StFile f;
    cr_assert_eq(st_open(&f, fixture, err, sizeof err), 0, "%s", err);
    static const char *const names[] = {"grid", "base_weight", "spline_weight", "spline_scaler"};
    StEntry e[4];
    for (int t = 0; t < 4; t++) {
        const StTensor *s = st_find(&f, names[t]);
        cr_assert(s && s->dtype == ST_F32, "%s: %s", fixture, names[t]);
        e[t] = (StEntry){.name = names[t], .dtype = ST_F32, .rank = s->rank, .data = s->data};
        memcpy(e[t].shape, s->shape, sizeof e[t].shape);
    }
    const StTensor *g = st_find(&f, "grid");
    int in = (int)g->shape[0], len = (int)g->shape[1];
    float *knots = xmalloc((size_t)in * len * sizeof *knots);
    st_read_f32(g, knots);
    char *dir = test_tmpdir(), *sd = xasprintf("%s/kan.safetensors", dir), *log = NULL;
    cr_assert_eq(st_write(sd, e, 4, NULL, 0, err, sizeof err), 0, "%s", err);
    st_close(&f);
    /* the fixture's config: in 5, out 6, G 6, k 3 */
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s --model models/kan-linear.kdl --set in_features=5 "
                                "--set out_features=6 --set grid_size=6 -o %s/out --top 9",
                          sd, dir),
                 0, "%s", log);
    cr_expect(strstr(log, "root  5 x 6  out of grid -  top o"), "%s", log);
    free(log);
    char *json = xasprintf("%s/out/root.json", dir), *png = xasprintf("%s/out/root.png", dir);
    cJSON *j = read_json(json), *jg = cJSON_GetObjectItem(j, "grid");
    cr_assert_eq(cJSON_GetArraySize(jg), in);
    for (int i = 0; i < in; i++)
        for (int q = 0; q < len; q++)
            cr_expect_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(jg, i), q)->valuedouble, (double)knots[i * len + q],
                         "knot %d of input %d", q, i);
    cr_expect_eq(cJSON_GetObjectItem(j, "grid_size")->valueint, 6);
    cJSON_Delete(j);
    struct stat st;
    cr_expect_eq(stat(png, &st), 0, "%s", png);
    /* a layer name that does not exist lists "root" */
    cr_expect_eq(test_run(&log, "$KANRUN inspect %s --model models/kan-linear.kdl --set in_features=5 "
                                "--set out_features=6 --set grid_size=6 --layer layers.0 -o %s/x",
                          sd, dir),
                 2);
    cr_expect(strstr(log, "its 1 layer is root"), "%s", log);
    free(log), free(json), free(png), free(knots), free(sd), free(dir), free(fixture);
}

/* ---- a tiny trained run, inspected on data ---- */

#define TINY "--set n_layer=1 --set n_head=2 --set n_embd=16 --set block_size=16 --batch 4"

static int near(uint32_t px, double r, double g, double b)
{
    double c[3] = {r, g, b};
    for (int k = 0; k < 3; k++) {
        int v = (int)((px >> (16 - 8 * k)) & 0xff);
        if (abs(v - (int)lround(c[k] * 255)) > 6) return 0;
    }
    return 1;
}

typedef struct {
    int w, h;
    long background, curve, hist, mark;
} Pixels;

static void read_png(const char *path, Pixels *px)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS, "%s: %s", path,
                 cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_flush(s);
    memset(px, 0, sizeof *px);
    px->w = cairo_image_surface_get_width(s), px->h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    for (int y = 0; y < px->h; y++)
        for (int x = 0; x < px->w; x++) {
            uint32_t p = *(const uint32_t *)(data + (size_t)y * stride + 4 * (size_t)x);
            px->background += near(p, PLOT_BACKGROUND);
            px->curve += near(p, PLOT_CURVE);
            px->hist += near(p, PLOT_HIST_FILL);
            px->mark += near(p, PLOT_MARK);
        }
    cairo_surface_destroy(s);
}

/* names and sizes of every file under dir, one per line */
static char *listing(const char *dir)
{
    char *out = NULL;
    cr_assert_eq(test_run(&out, "cd %s && find . -printf '%%p %%s\\n' | sort", dir), 0);
    return out;
}

Test(inspect, trained_run_with_data, .timeout = 180)
{
    const char *data = test_corpus();
    char *run = test_tmpdir(), *dir = test_tmpdir(), *log = NULL;
    cr_assert_eq(test_run(&log, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                                " --steps 2 --warmup 1 --eval-every 0 --threads 2",
                          data, run),
                 0, "%s", log);
    free(log);
    char *before = listing(run);
    int top = 16;
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s --layer transformer.h.0.mlp.kan.layers.0 --layer 'lm_*' "
                                "--data %s --batches 2 --top %d -o %s/out --threads 2",
                          run, data, top, dir),
                 0, "%s", log);
    char *after = listing(run);
    cr_expect_str_eq(after, before, "inspect wrote into the run");
    free(before), free(after);
    /* one stdout line per chosen layer, and files for those only */
    cr_expect(strstr(log, "transformer.h.0.mlp.kan.layers.0  16 x 64  out of grid "), "%s", log);
    cr_expect(strstr(log, "lm_head.layers.0  16 x 256  out of grid "), "%s", log);
    cr_expect(!strstr(log, "c_attn"), "only the chosen layers: %s", log);
    char *c_attn = xasprintf("%s/out/transformer.h.0.attn.c_attn.layers.0.csv", dir);
    struct stat st;
    cr_expect_neq(stat(c_attn, &st), 0, "a layer not chosen has no files");
    free(c_attn);

    char *png = xasprintf("%s/out/lm_head.layers.0.png", dir), *json = xasprintf("%s/out/lm_head.layers.0.json", dir);
    int cols, rows, w, h;
    plot_sheet_size(top, &cols, &rows, &w, &h);
    Pixels px;
    read_png(png, &px);
    cr_expect_eq(px.w, w);
    cr_expect_eq(px.h, h);
    long all = (long)px.w * px.h;
    cr_expect_lt(px.background, all / 2, "most of the sheet is panels: %ld of %ld pixels are background",
                 px.background, all);
    cr_expect_gt(px.curve, top * 100L, "each panel draws its curve (%ld curve pixels)", px.curve);
    cr_expect_gt(px.hist, top * 100L, "with --data each panel has a histogram (%ld pixels)", px.hist);
    cr_expect_gt(px.mark, top * 20L, "the grid range is marked (%ld pixels)", px.mark);

    /* the JSON's data section agrees with the stdout line */
    cJSON *j = read_json(json);
    cJSON *d = cJSON_GetObjectItem(j, "data");
    cr_assert(cJSON_IsObject(d));
    double frac = cJSON_GetObjectItem(d, "out_of_grid")->valuedouble;
    cr_expect(frac >= 0 && frac <= 1);
    cr_expect_eq(cJSON_GetObjectItem(d, "samples_per_input")->valueint, 2 * 4 * 16, "2 batches of 4 x 16");
    char expect[64];
    snprintf(expect, sizeof expect, "lm_head.layers.0  16 x 256  out of grid %.1f%%", 100 * frac);
    cr_expect(strstr(log, expect), "'%s' in %s", expect, log);
    cr_expect_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "plot"), "edges_shown")->valueint, top);
    cJSON_Delete(j);
    free(log);

    /* without --data: no histograms */
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s --layer lm_head.layers.0 --top 4 -o %s/bare", run, dir), 0,
                 "%s", log);
    free(png);
    png = xasprintf("%s/bare/lm_head.layers.0.png", dir);
    read_png(png, &px);
    plot_sheet_size(4, &cols, &rows, &w, &h);
    cr_expect_eq(px.w, w);
    cr_expect_eq(px.h, h);
    cr_expect_gt(px.curve, 4 * 100L);
    cr_expect_eq(px.hist, 0, "no data, no histogram");
    cr_expect(strstr(log, "out of grid -"), "%s", log);
    free(log), free(png), free(json);

    /* every layer on the batches kanrun eval scores: the same out-of-grid
       fractions as eval's (the probe's) mean and max */
    cr_assert_eq(test_run(&log, "$KANRUN eval %s --batches 2 --threads 2", run), 0, "%s", log);
    double mean, max;
    char worst[128];
    const char *line = strstr(log, "out of grid ");
    cr_assert(line && sscanf(line, "out of grid %lf%% mean, %lf%% max (%127[^)])", &mean, &max, worst) == 3,
              "%s", log);
    free(log);
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s --data %s --batches 2 --top 1 --csv-top 1 -o %s/all "
                                "--threads 2",
                          run, data, dir),
                 0, "%s", log);
    char *want = xasprintf("%s  ", worst);
    const char *at = strstr(log, want);
    double frac_worst = -1, sum = 0;
    cr_assert(at && sscanf(strstr(at, "out of grid "), "out of grid %lf%%", &frac_worst) == 1, "%s", log);
    cr_expect_float_eq(frac_worst, max, 1e-9, "%s: inspect %.1f%%, eval %.1f%%", worst, frac_worst, max);
    int layers = 0;
    for (const char *p = strstr(log, "out of grid "); p; p = strstr(p + 1, "out of grid ")) {
        double f;
        cr_assert_eq(sscanf(p, "out of grid %lf%%", &f), 1);
        sum += f, layers++;
    }
    cr_expect_eq(layers, 5, "4 KAN layers in the block, lm_head: %s", log);
    cr_expect_leq(fabs(sum / layers - mean), 0.1 + 1e-9, "mean %.2f%% (eval: %.1f%%)", sum / layers, mean);
    free(want), free(log), free(run), free(dir);
}

/* The L1 norms on the data: the layer's inputs on eval's batches, read by the
   probe here, through a one-edge model holding edge (o, i)'s weights and knots
   (so its y is phi_oi(x)): mean |y| over input i's samples is the JSON's l1. */
Test(inspect, l1_on_data_is_the_models_mean_abs_edge, .timeout = 120)
{
    const char *data = test_corpus();
    char *run = test_tmpdir(), *dir = test_tmpdir(), *log = NULL, err[1024];
    cr_assert_eq(test_run(&log, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                                " --steps 2 --warmup 1 --eval-every 0 --threads 2",
                          data, run),
                 0, "%s", log);
    free(log);
    cr_assert_eq(test_run(&log, "$KANRUN inspect %s --layer lm_head --data %s --batches 2 --top 1 --csv-top 1 -o %s",
                          run, data, dir),
                 0, "%s", log);
    free(log);
    char *json = xasprintf("%s/lm_head.layers.0.json", dir);
    cJSON *j = read_json(json);

    /* the run, its layer inputs on the two batches */
    CkptInfo info;
    ConfigSets cs;
    Model m;
    cr_assert_eq(ckpt_info(run, &info, err, sizeof err), 0, "%s", err);
    ckpt_sets(&info, &cs);
    cr_assert_eq(model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_FORWARD, 4, "cpu", stderr), 0);
    cr_assert_eq(ckpt_load(run, &m, NULL, err, sizeof err), 0, "%s", err);
    Tokenizer *tok = tok_open(info.tokenizer, err, sizeof err);
    cr_assert(tok, "%s", err);
    Corpus c;
    char *cache = xasprintf("%s/tokens", run);
    cr_assert_eq(corpus_prepare_readonly(data, NULL, tok, cache, &c, err, sizeof err), 0, "%s", err);
    LmIo io;
    cr_assert_eq(lm_find_io(&m, &io, err, sizeof err), 0, "%s", err);
    KanProbe p;
    kan_probe_init(&p, &m);
    int l = p.n - 1;
    cr_assert_str_eq(p.layers[l].name, "lm_head.layers.0");
    int64_t rows = p.layers[l].rows, in = p.layers[l].in, n = 2 * rows;
    double *xs = xmalloc((size_t)(n * in) * sizeof *xs);
    int32_t *ids = xmalloc((size_t)(io.batch * io.block) * 4), *tg = xmalloc((size_t)(io.batch * io.block) * 4);
    for (int b = 0; b < 2; b++) {
        corpus_eval_batch(c.val, c.n_val, (int)io.block, (int)io.batch, 1337, (uint64_t)b, ids, tg);
        cr_assert_eq(model_set_tokens(&m, io.idx, ids, err, sizeof err), 0, "%s", err);
        kan_probe_collect(&p, &m);
        memcpy(xs + b * rows * in, p.layers[l].x, (size_t)(rows * in) * sizeof *xs);
    }
    const GNode *k = &m.g.nodes[p.layers[l].node];
    double *parts[4];
    for (int s = 1; s <= 4; s++) {
        parts[s - 1] = xmalloc((size_t)shape_numel(&m.g.nodes[k->in[s]].shape) * sizeof(double));
        model_read_value(&m, k->in[s], parts[s - 1]);
    }
    int G = k->a.grid_size, K = k->a.spline_order, len = (int)shape_last(&m.g.nodes[k->in[1]].shape);
    int nf = (int)shape_last(&m.g.nodes[k->in[3]].shape);

    /* the top edge, and one from the middle of the ranking */
    cJSON *top = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ranking"), "top");
    cJSON *l1 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ranking"), "l1");
    for (int e = 0; e < 100; e += 57) {
        cJSON *t = cJSON_GetArrayItem(top, e);
        int o = cJSON_GetObjectItem(t, "out")->valueint, i = cJSON_GetObjectItem(t, "in")->valueint;
        double want = cJSON_GetObjectItem(t, "l1")->valuedouble;
        cr_expect_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(l1, o), i)->valuedouble, want);
        char src[256];
        snprintf(src, sizeof src,
                 "model edge(x: real[%lld, 1]) {\n  y = kan(x, [1], grid_size = %d, spline_order = %d)\n"
                 "  return y\n}\n",
                 (long long)n, G, K);
        Model e1;
        cr_assert_eq(model_compile(&e1, "edge.kdl", src, NULL, 0, MODEL_FORWARD, 4, "cpu", stderr), 0);
        const GNode *k1 = &e1.g.nodes[kan_node(&e1)];
        write_node(&e1, k1->in[1], parts[0] + (int64_t)i * len);
        write_node(&e1, k1->in[2], parts[1] + (int64_t)o * in + i);
        write_node(&e1, k1->in[3], parts[2] + ((int64_t)o * in + i) * nf);
        write_node(&e1, k1->in[4], parts[3] + (int64_t)o * in + i);
        double *x1 = xmalloc((size_t)n * sizeof *x1), *y1 = xmalloc((size_t)n * sizeof *y1);
        for (int64_t r = 0; r < n; r++) x1[r] = xs[r * in + i];
        StTensor tx = {.name = "x", .dtype = ST_F64, .rank = 2, .shape = {n, 1}, .numel = n,
                       .nbytes = (size_t)n * sizeof *x1, .data = x1};
        cr_assert_eq(model_set_input(&e1, model_input(&e1, "x"), &tx, err, sizeof err), 0, "%s", err);
        e1.dev->ops->run(e1.dev, 0, e1.g.n_forward);
        model_read_value(&e1, e1.g.output, y1);
        double mean = 0;
        for (int64_t r = 0; r < n; r++) mean += fabs(y1[r]) / (double)n;
        cr_expect_leq(fabs(mean - want), 1e-5 * fmax(1e-3, want), "edge o%d i%d (rank %d): model %.9g, JSON %.9g",
                      o, i, e, mean, want);
        free(x1), free(y1);
        model_free(&e1);
    }
    for (int s = 0; s < 4; s++) free(parts[s]);
    free(xs), free(ids), free(tg), free(cache), free(json), free(run), free(dir);
    kan_probe_free(&p);
    corpus_free(&c);
    tok_close(tok);
    config_sets_free(&cs);
    ckpt_info_free(&info);
    model_free(&m);
    cJSON_Delete(j);
}

/* ---- bad input ---- */

Test(inspect, errors_are_clear, .timeout = 120)
{
    Model m;
    make_edge_model(&m, 2, 2, "grid_size = 3", 1);
    char *run = test_tmpdir(), *dir = test_tmpdir(), *log = NULL, err[512];
    cr_assert_eq(ckpt_save(run, &m, NULL, NULL, err, sizeof err), 0, "%s", err);
    model_free(&m);

    int rc = test_run(&log, "$KANRUN inspect %s --layer transformer.h.0 -o %s/a", run, dir);
    cr_expect_eq(rc, 2, "%s", log);
    cr_expect(strstr(log, "--layer 'transformer.h.0' names no KAN layer") && strstr(log, "layers.0"),
              "the message names the pattern and a valid layer: %s", log);
    free(log);

    char *empty = test_tmpdir();
    rc = test_run(&log, "$KANRUN inspect %s -o %s/b", empty, dir);
    cr_expect(rc != 0 && rc < 128, "rc %d: %s", rc, log);
    cr_expect(strstr(log, "is not a run folder"), "%s", log);
    free(log);

    rc = test_run(&log, "$KANRUN inspect %s/missing -o %s/c", empty, dir);
    cr_expect(rc != 0 && rc < 128, "rc %d: %s", rc, log);
    cr_expect(strstr(log, "no such run folder"), "%s", log);
    free(log);

    rc = test_run(&log, "$KANRUN inspect %s", run);
    cr_expect_eq(rc, 2, "%s", log);
    cr_expect(strstr(log, "-o DIR is needed"), "%s", log);
    free(log);

    rc = test_run(&log, "$KANRUN inspect %s -o %s/plots", run, run);
    cr_expect_eq(rc, 2, "%s", log);
    cr_expect(strstr(log, "inside the run"), "%s", log);
    struct stat st;
    char *plots = xasprintf("%s/plots", run);
    cr_expect_neq(stat(plots, &st), 0, "nothing was created in the run");
    free(log), free(plots);

    /* --data on a model that is not a language model */
    rc = test_run(&log, "$KANRUN inspect %s --data %s -o %s/d", run, test_corpus(), dir);
    cr_expect(rc != 0 && rc < 128, "rc %d: %s", rc, log);
    cr_expect(strstr(log, "takes inputs 'idx' and 'targets'"), "%s", log);
    free(log), free(run), free(dir), free(empty);
}
