/* plot.c: a sheet of small line plots as a PNG, drawn with cairo. */
#include "plot.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void plot_sheet_size(int n, int *cols, int *rows, int *width, int *height)
{
    if (n < 1) n = 1;
    int c = (int)ceil(sqrt((double)n));
    while (c * c < n) c++; /* ceil(sqrt) exactly, whatever sqrt rounds to */
    int r = (n + c - 1) / c;
    int w = PLOT_GAP + c * (PLOT_PANEL_W + PLOT_GAP);
    *cols = c, *rows = r;
    *width = w < PLOT_MIN_W ? PLOT_MIN_W : w;
    *height = PLOT_TITLE_H + PLOT_GAP + r * (PLOT_PANEL_H + PLOT_GAP);
}

/* the curve's finite y extent, padded; a flat curve gets a unit band around it */
static void y_extent(const PlotPanel *p, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int i = 0; i < p->n; i++)
        if (isfinite(p->y[i])) a = fmin(a, p->y[i]), b = fmax(b, p->y[i]);
    if (!(a <= b)) a = -1, b = 1;
    double span = b - a;
    if (span <= 1e-12 * (1 + fabs(a) + fabs(b))) {
        *lo = a - 0.5, *hi = b + 0.5;
        return;
    }
    *lo = a - 0.08 * span, *hi = b + 0.08 * span;
}

static void draw_panel(cairo_t *cr, const PlotPanel *p, double px, double py)
{
    cairo_set_source_rgb(cr, PLOT_PANEL_FILL);
    cairo_rectangle(cr, px, py, PLOT_PANEL_W, PLOT_PANEL_H);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 10);
    cairo_move_to(cr, px + 4, py + 12);
    cairo_show_text(cr, p->label ? p->label : "");

    /* the plot area under the label */
    double ax = px + 4, ay = py + 18, aw = PLOT_PANEL_W - 8, ah = PLOT_PANEL_H - 22;
    double ylo, yhi, xspan = p->x_hi - p->x_lo;
    y_extent(p, &ylo, &yhi);
#define X(v) (ax + ((v) - p->x_lo) / xspan * aw)
#define Y(v) (ay + ah - ((v) - ylo) / (yhi - ylo) * ah)
    cairo_save(cr);
    cairo_rectangle(cr, ax, ay, aw, ah);
    cairo_clip(cr);
    /* the histogram, up to 40% of the area's height from its bottom */
    if (p->hist && p->nbins > 0) {
        double top = 0;
        for (int b = 0; b < p->nbins; b++) top = fmax(top, p->hist[b]);
        cairo_set_source_rgb(cr, PLOT_HIST_FILL);
        for (int b = 0; b < p->nbins && top > 0; b++) { /* on whole pixels: crisp edges */
            double x0 = round(ax + aw * b / p->nbins), x1 = round(ax + aw * (b + 1) / p->nbins);
            double y0 = round(ay + ah - p->hist[b] / top * 0.4 * ah);
            cairo_rectangle(cr, x0, y0, x1 - x0, ay + ah - y0);
        }
        cairo_fill(cr);
    }
    if (ylo < 0 && yhi > 0) { /* the zero line */
        cairo_set_source_rgb(cr, 0.72, 0.72, 0.72);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, ax, Y(0));
        cairo_line_to(cr, ax + aw, Y(0));
        cairo_stroke(cr);
    }
    double marks[2] = {p->mark_lo, p->mark_hi};
    cairo_set_source_rgb(cr, PLOT_MARK);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, (double[]){4, 3}, 2, 0);
    for (int m = 0; m < 2; m++)
        if (isfinite(marks[m])) {
            double mx = floor(X(marks[m])) + 0.5; /* a 1-pixel line on a pixel column */
            cairo_move_to(cr, mx, ay);
            cairo_line_to(cr, mx, ay + ah);
        }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    /* the curve; a non-finite value breaks it */
    cairo_set_source_rgb(cr, PLOT_CURVE);
    cairo_set_line_width(cr, 1.6);
    int pen = 0;
    for (int i = 0; i < p->n; i++) {
        if (!isfinite(p->y[i])) {
            pen = 0;
            continue;
        }
        if (pen)
            cairo_line_to(cr, X(p->x[i]), Y(p->y[i]));
        else
            cairo_move_to(cr, X(p->x[i]), Y(p->y[i]));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
    /* the y extent, small, at the label band's right */
    char t[48];
    cairo_text_extents_t ext;
    snprintf(t, sizeof t, "[%.3g, %.3g]", ylo, yhi);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_font_size(cr, 8);
    cairo_text_extents(cr, t, &ext);
    cairo_move_to(cr, px + PLOT_PANEL_W - 4 - ext.x_advance, py + 12);
    cairo_show_text(cr, t);
#undef X
#undef Y
}

int plot_sheet_png(const char *path, const char *title, const PlotPanel *p, int n, char *err,
                   size_t errlen)
{
    int cols, rows, w, h;
    plot_sheet_size(n, &cols, &rows, &w, &h);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, PLOT_BACKGROUND);
    cairo_paint(cr);
    /* the title: one line per '\n' */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 12);
    const char *line = title ? title : "";
    for (int l = 0; l < 2 && *line; l++) {
        size_t len = strcspn(line, "\n");
        char *text = xasprintf("%.*s", (int)len, line);
        cairo_text_extents_t ext; /* a line wider than the sheet is set smaller */
        cairo_set_font_size(cr, 12);
        cairo_text_extents(cr, text, &ext);
        if (ext.x_advance > w - 2 * PLOT_GAP)
            cairo_set_font_size(cr, fmax(6, 12 * (w - 2 * PLOT_GAP) / ext.x_advance));
        cairo_move_to(cr, PLOT_GAP, 17 + 17 * l);
        cairo_show_text(cr, text);
        free(text);
        line += len + (line[len] == '\n');
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    }
    for (int i = 0; i < n; i++)
        draw_panel(cr, &p[i], PLOT_GAP + (i % cols) * (PLOT_PANEL_W + PLOT_GAP),
                   PLOT_TITLE_H + PLOT_GAP + (i / cols) * (PLOT_PANEL_H + PLOT_GAP));
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png(s, path);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        set_err(err, errlen, "%s: cannot write the PNG: %s", path, cairo_status_to_string(st));
        return -1;
    }
    return 0;
}
