/* plot.h: the one module that draws (cairo), for two kinds of PNG:
 *
 * - a sheet of small line plots, in the manner of pykan's model.plot(): one
 *   panel per curve, a title above them all (kanrun inspect);
 * - line charts with axes, ticks, labels and a legend, side by side, several
 *   series each (kanrun plot and kanrun compare: loss curves).
 *
 * Sheets. Each panel
 * holds a curve, optionally a histogram drawn under it (the distribution of
 * the curve's inputs) and two vertical marks (a grid range), and a label.
 * The sheet's size follows from the panel count alone (plot_sheet_size), so
 * a reader of the PNG knows what to expect.
 */
#ifndef KANC_PLOT_H
#define KANC_PLOT_H

#include <stddef.h>

typedef struct {
    const char *label;        /* drawn at the panel's top */
    const double *x, *y;      /* the curve: n points, x increasing */
    int n;
    double x_lo, x_hi;        /* the panel's x axis */
    double mark_lo, mark_hi;  /* two vertical lines at these x (NaN: none) */
    const double *hist;       /* counts in nbins equal bins over [x_lo, x_hi]; NULL: none */
    int nbins;
} PlotPanel;

/* The layout: panels of PLOT_PANEL_W x PLOT_PANEL_H pixels, PLOT_GAP apart
   and from the edges, in `cols` columns (ceil(sqrt(n))), under a title band
   of PLOT_TITLE_H; the sheet is at least PLOT_MIN_W wide, for the title. */
#define PLOT_PANEL_W 180
#define PLOT_PANEL_H 130
#define PLOT_GAP     10
#define PLOT_TITLE_H 44
#define PLOT_MIN_W   640

/* The colours a sheet uses (RGB in [0, 1]): a reader can count them. */
#define PLOT_BACKGROUND 1.0, 1.0, 1.0
#define PLOT_PANEL_FILL 0.95, 0.95, 0.96
#define PLOT_HIST_FILL  0.78, 0.87, 0.78
#define PLOT_CURVE      0.10, 0.25, 0.65
#define PLOT_MARK       0.85, 0.20, 0.15

/* Columns, rows and the PNG's width and height in pixels for n panels (n >= 1). */
void plot_sheet_size(int n, int *cols, int *rows, int *width, int *height);

/* Draws n panels (n >= 1) under `title` and writes the PNG to path. Returns 0,
   or -1 with "path: cannot write the PNG: <cairo's reason>" in err. */
int plot_sheet_png(const char *path, const char *title, const PlotPanel *p, int n, char *err,
                   size_t errlen);

/* ---- line charts ---- */

typedef struct {
    const char *label;   /* in the legend (NULL: not listed) */
    const double *x, *y; /* n points; a non-finite y breaks the line */
    int n;
    int colour;          /* index into the palette, modulo PLOT_N_COLOURS */
    int dashed;          /* a dashed line (e.g. validation beside training) */
} PlotSeries;

typedef struct {
    const char *title, *xlabel, *ylabel;
    const PlotSeries *s;
    int n;
} PlotChart;

/* Each chart is PLOT_CHART_W x PLOT_CHART_H pixels; n charts sit side by
   side, so the PNG is n * PLOT_CHART_W wide. */
#define PLOT_CHART_W   720
#define PLOT_CHART_H   460
#define PLOT_N_COLOURS 8
/* palette colour i (RGB in [0, 1]) */
void plot_colour(int i, double rgb[3]);

/* Draws n charts (n >= 1) side by side and writes the PNG to path. Axes span
   every series' finite points. Returns 0, or -1 with a message in err (a
   chart without any finite point, or "path: cannot write the PNG: ..."). */
int plot_charts_png(const char *path, const PlotChart *c, int n, char *err, size_t errlen);

#endif
