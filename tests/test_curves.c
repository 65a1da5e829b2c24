/* test_curves.c: kanrun plot and kanrun compare on real (tiny) runs.
 *
 * Two runs train a few steps with evaluations (a kansformers and a minGPT
 * model, the same shapes); plot and compare must draw PNGs of the stated
 * size whose curves show in the palette's colours, and compare's table must
 * hold what the runs recorded (steps, best and final validation loss from
 * metrics.jsonl, the parameter count kanc --report gives). Bad run folders
 * are refused naming the file and line.
 */
#include <cairo.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "util.h"
#include "test_util.h"

TestSuite(curves, .timeout = 600);

#define TINY "--set n_layer=1 --set n_head=2 --set n_embd=16 --set block_size=16 --batch 4"

static char *g_dir; /* two runs, made once for the suite's tests */

static const char *runs_dir(void)
{
    if (g_dir) return g_dir;
    const char *corpus = test_corpus();
    g_dir = test_tmpdir();
    const char *models[2] = {"kansformers", "mingpt"};
    for (int i = 0; i < 2; i++) {
        char *out = NULL;
        int rc = test_run(&out,
                          "$KANRUN train models/%s.kdl %s --data %s --steps 12 --eval-every 4 --eval-batches 2 "
                          "--warmup 2 --quiet --out %s/%s",
                          models[i], TINY, corpus, g_dir, models[i]);
        cr_assert_eq(rc, 0, "%s", out ? out : "");
        free(out);
    }
    return g_dir;
}

/* the PNG's size and how many pixels are within 0.04 of palette colour c */
static int png_colour_pixels(const char *path, int c, int *w, int *h)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS, "%s: not a PNG", path);
    *w = cairo_image_surface_get_width(s), *h = cairo_image_surface_get_height(s);
    double rgb[3];
    plot_colour(c, rgb);
    const unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s), n = 0;
    for (int y = 0; y < *h; y++)
        for (int x = 0; x < *w; x++) {
            uint32_t p;
            memcpy(&p, d + y * stride + 4 * x, 4);
            double r = (p >> 16 & 255) / 255.0, g = (p >> 8 & 255) / 255.0, b = (p & 255) / 255.0;
            n += fabs(r - rgb[0]) < 0.04 && fabs(g - rgb[1]) < 0.04 && fabs(b - rgb[2]) < 0.04;
        }
    cairo_surface_destroy(s);
    return n;
}

/* the run's validation losses from its metrics.jsonl: best and last */
static void val_losses(const char *run, double *best, double *last, int *n)
{
    char *path = xasprintf("%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    char line[8192];
    *best = INFINITY, *n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *v = strstr(line, "\"val_loss\":");
        if (!v) continue;
        *last = strtod(v + 11, NULL);
        if (*last < *best) *best = *last;
        (*n)++;
    }
    fclose(f);
    free(path);
}

Test(curves, plot_draws_both_runs)
{
    const char *d = runs_dir();
    char *out = NULL, *png = xasprintf("%s/loss.png", d);
    int rc = test_run(&out, "$KANRUN plot %s/kansformers %s/mingpt -o %s", d, d, png);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "2 runs"), "%s", out);
    int w, h;
    int c0 = png_colour_pixels(png, 0, &w, &h), c1 = png_colour_pixels(png, 1, &w, &h);
    cr_expect_eq(w, PLOT_CHART_W);
    cr_expect_eq(h, PLOT_CHART_H);
    /* a train line and a dashed val line per run, across most of the chart's width */
    cr_expect_gt(c0, 400, "run 0's colour: %d pixels", c0);
    cr_expect_gt(c1, 400, "run 1's colour: %d pixels", c1);
    cr_expect_lt(png_colour_pixels(png, 2, &w, &h), 20, "a third colour with two runs");
    free(out);
    free(png);
}

Test(curves, compare_tabulates_what_the_runs_recorded)
{
    const char *d = runs_dir();
    char *out = NULL, *png = xasprintf("%s/cmp.png", d);
    int rc = test_run(&out, "$KANRUN compare %s/kansformers %s/mingpt -o %s", d, d, png);
    cr_assert_eq(rc, 0, "%s", out);
    const char *models[2] = {"kansformers", "mingpt"};
    for (int i = 0; i < 2; i++) {
        char *run = xasprintf("%s/%s", d, models[i]), *rep = NULL;
        double best, last;
        int nv;
        val_losses(run, &best, &last, &nv);
        cr_assert_eq(nv, 3, "evaluations at steps 4, 8, 12");
        cr_assert_eq(test_run(&rep, "$KANC models/%s.kdl %s --report", models[i], TINY), 0);
        long long params = 0;
        const char *p = strstr(rep, "\nparameters:");
        cr_assert(p && sscanf(p + 1, "parameters: %lld", &params) == 1, "%s", rep);
        /* the table's row: name, params (k), FLOPs, steps, tokens, wall, best (step), final */
        const char *row = strstr(out, models[i]);
        cr_assert(row, "%s", out);
        char name[64], pk[16], fl[16], tok[16];
        long long steps, bstep;
        double wall, b, fin;
        cr_assert_eq(sscanf(row, "%63s %15s %15s %lld %15s %lf %lf (%lld) %lf", name, pk, fl, &steps, tok, &wall, &b,
                            &bstep, &fin),
                     9, "%s", row);
        cr_expect_eq(steps, 12);
        cr_expect_str_eq(tok, "768", "12 steps x 4 x 16 tokens");
        cr_expect(fabs(b - best) < 1e-4 && fabs(fin - last) < 1e-4, "%s: best %g last %g", row, best, last);
        char want[32];
        if (params >= 1000)
            snprintf(want, sizeof want, "%.3gk", params / 1000.0);
        else
            snprintf(want, sizeof want, "%lld", params);
        cr_expect_str_eq(pk, want, "params: kanc --report says %lld", params);
        cr_expect_gt(wall, 0);
        free(rep);
        free(run);
    }
    int w, h;
    cr_expect_gt(png_colour_pixels(png, 0, &w, &h), 300);
    cr_expect_gt(png_colour_pixels(png, 1, &w, &h), 300);
    cr_expect_eq(w, 2 * PLOT_CHART_W);
    cr_expect_eq(h, PLOT_CHART_H);
    free(out);
    free(png);
}

Test(curves, bad_runs_are_named)
{
    char *t = test_tmpdir(), *out = NULL;
    /* not a run */
    cr_expect_neq(test_run(&out, "$KANRUN plot %s/none -o %s/x.png", t, t), 0);
    cr_expect(strstr(out, "not a run folder"), "%s", out);
    free(out);
    /* a folder without metrics */
    cr_expect_neq(test_run(&out, "mkdir -p %s/empty && $KANRUN compare %s/empty", t, t), 0);
    cr_expect(strstr(out, "empty/metrics.jsonl") && strstr(out, "No such file"), "%s", out);
    free(out);
    /* a damaged line */
    cr_expect_neq(test_run(&out,
                           "mkdir -p %s/bad && printf '{\"step\":1,\"loss\":2}\\n{\"step\":2,\"loss\":1}\\n{\"st' "
                           ">%s/bad/metrics.jsonl && $KANRUN plot %s/bad -o %s/x.png",
                           t, t, t, t),
                  0);
    cr_expect(strstr(out, "bad/metrics.jsonl:3: not a metrics line"), "%s", out);
    free(out);
    /* no -o; no validation to draw */
    cr_expect_neq(test_run(&out, "$KANRUN plot %s/bad", t), 0);
    cr_expect(strstr(out, "give -o FILE.png"), "%s", out);
    free(out);
    cr_expect_neq(test_run(&out,
                           "mkdir -p %s/noval && printf '{\"step\":1,\"loss\":2,\"ms\":3}\\n' >%s/noval/metrics.jsonl "
                           "&& $KANRUN plot %s/noval -o %s/ok.png && test -s %s/ok.png && "
                           "$KANRUN compare %s/noval -o %s/c.png",
                           t, t, t, t, t, t, t),
                  0);
    cr_expect(strstr(out, "no run has a validation loss"), "%s", out);
    free(out);
    /* metrics but no checkpoint: compare cannot count the model */
    cr_expect_neq(test_run(&out, "$KANRUN compare %s/noval", t), 0);
    cr_expect(strstr(out, "noval"), "%s", out);
    free(out);
    free(t);
}
