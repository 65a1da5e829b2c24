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

/* writes the drawing to path and releases it; 0, or -1 with cairo's reason */
static int finish_png(cairo_t *cr, cairo_surface_t *s, const char *path, char *err, size_t errlen)
{
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
    return finish_png(cr, s, path, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* line charts                                                              */
/* ------------------------------------------------------------------------ */

void plot_colour(int i, double rgb[3])
{
    /* a qualitative palette that stays apart on white (Tableau 10's first eight) */
    static const double pal[PLOT_N_COLOURS][3] = {
        {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
        {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}};
    const double *c = pal[((i % PLOT_N_COLOURS) + PLOT_N_COLOURS) % PLOT_N_COLOURS];
    rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2];
}

/* a "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks over span */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* the finite extent of every series' x (or y) in [*lo, *hi]; 0 when there is none */
static int chart_extent(const PlotChart *c, int want_y, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int k = 0; k < c->n; k++)
        for (int i = 0; i < c->s[k].n; i++) {
            double x = c->s[k].x[i], y = c->s[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            double v = want_y ? y : x;
            a = fmin(a, v), b = fmax(b, v);
        }
    if (!(a <= b)) return 0;
    if (b - a <= 1e-12 * (1 + fabs(a) + fabs(b))) a -= 0.5, b += 0.5;
    *lo = a, *hi = b;
    return 1;
}

static void text_at(cairo_t *cr, const char *t, double x, double y, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    cairo_move_to(cr, x - ax * e.x_advance, y + ay * e.height);
    cairo_show_text(cr, t);
}

static void draw_chart(cairo_t *cr, const PlotChart *c, double ox)
{
    const double L = 72, R = 18, T = 40, B = 56; /* margins around the plot area */
    double ax = ox + L, ay = T, aw = PLOT_CHART_W - L - R, ah = PLOT_CHART_H - T - B;
    double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    chart_extent(c, 0, &xlo, &xhi);
    chart_extent(c, 1, &ylo, &yhi);
    double ypad = 0.05 * (yhi - ylo);
    ylo -= ypad, yhi += ypad;
#define X(v) (ax + ((v) - xlo) / (xhi - xlo) * aw)
#define Y(v) (ay + ah - ((v) - ylo) / (yhi - ylo) * ah)
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 13);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, c->title ? c->title : "", ox + PLOT_CHART_W / 2.0, 22, 0.5, 0.5);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, PLOT_PANEL_FILL);
    cairo_rectangle(cr, ax, ay, aw, ah);
    cairo_fill(cr);
    /* grid lines and tick labels */
    cairo_set_font_size(cr, 10);
    cairo_set_line_width(cr, 1);
    char t[32];
    for (int axis = 0; axis < 2; axis++) {
        double lo = axis ? ylo : xlo, hi = axis ? yhi : xhi, st = nice_step(hi - lo, axis ? 6 : 7);
        for (double v = ceil(lo / st) * st; v <= hi + 1e-9 * st; v += st) {
            double p = axis ? floor(Y(v)) + 0.5 : floor(X(v)) + 0.5;
            cairo_set_source_rgb(cr, 0.84, 0.84, 0.86);
            if (axis) {
                cairo_move_to(cr, ax, p);
                cairo_line_to(cr, ax + aw, p);
            } else {
                cairo_move_to(cr, p, ay);
                cairo_line_to(cr, p, ay + ah);
            }
            cairo_stroke(cr);
            snprintf(t, sizeof t, "%.6g", fabs(v) < 1e-12 * st ? 0.0 : v);
            cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
            if (axis)
                text_at(cr, t, ax - 6, p, 1.0, 0.4);
            else
                text_at(cr, t, p, ay + ah + 14, 0.5, 0.0);
        }
    }
    /* axis labels */
    cairo_set_font_size(cr, 12);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, c->xlabel ? c->xlabel : "", ax + aw / 2, PLOT_CHART_H - 14, 0.5, 0.0);
    cairo_save(cr);
    cairo_translate(cr, ox + 18, ay + ah / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, c->ylabel ? c->ylabel : "", 0, 0, 0.5, 0.5);
    cairo_restore(cr);
    /* the series */
    cairo_save(cr);
    cairo_rectangle(cr, ax, ay, aw, ah);
    cairo_clip(cr);
    cairo_set_line_width(cr, 1.8);
    for (int k = 0; k < c->n; k++) {
        const PlotSeries *s = &c->s[k];
        double rgb[3];
        plot_colour(s->colour, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_dash(cr, s->dashed ? (double[]){6, 4} : NULL, s->dashed ? 2 : 0, 0);
        int pen = 0;
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, X(s->x[i]), Y(s->y[i]));
            else
                cairo_move_to(cr, X(s->x[i]), Y(s->y[i]));
            pen = 1;
        }
        if (s->n == 1 && isfinite(s->y[0])) cairo_arc(cr, X(s->x[0]), Y(s->y[0]), 2.5, 0, 2 * M_PI);
        cairo_stroke(cr);
    }
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_restore(cr);
    /* the legend, at the top right inside the plot area */
    int nl = 0;
    double lw = 0;
    cairo_set_font_size(cr, 11);
    for (int k = 0; k < c->n; k++)
        if (c->s[k].label) {
            cairo_text_extents_t e;
            cairo_text_extents(cr, c->s[k].label, &e);
            lw = fmax(lw, e.x_advance);
            nl++;
        }
    if (nl) {
        double bw = lw + 44, bh = 16.0 * nl + 8, bx = ax + aw - bw - 8, by = ay + 8;
        cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
        cairo_rectangle(cr, bx, by, bw, bh);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        int row = 0;
        for (int k = 0; k < c->n; k++) {
            if (!c->s[k].label) continue;
            double rgb[3], yy = by + 12 + 16.0 * row++;
            plot_colour(c->s[k].colour, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_set_line_width(cr, 2);
            cairo_set_dash(cr, c->s[k].dashed ? (double[]){6, 4} : NULL, c->s[k].dashed ? 2 : 0, 0);
            cairo_move_to(cr, bx + 6, yy);
            cairo_line_to(cr, bx + 32, yy);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text_at(cr, c->s[k].label, bx + 38, yy, 0.0, 0.4);
        }
    }
    /* the frame */
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, floor(ax) + 0.5, floor(ay) + 0.5, floor(aw), floor(ah));
    cairo_stroke(cr);
#undef X
#undef Y
}

int plot_charts_png(const char *path, const PlotChart *c, int n, char *err, size_t errlen)
{
    double lo, hi;
    for (int i = 0; i < n; i++)
        if (!chart_extent(&c[i], 0, &lo, &hi)) {
            set_err(err, errlen, "%s: the chart '%s' has no point to draw", path, c[i].title ? c[i].title : "");
            return -1;
        }
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, n * PLOT_CHART_W, PLOT_CHART_H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, PLOT_BACKGROUND);
    cairo_paint(cr);
    for (int i = 0; i < n; i++) draw_chart(cr, &c[i], i * PLOT_CHART_W);
    return finish_png(cr, s, path, err, errlen);
}
