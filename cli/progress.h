/* progress.h: the training display: a one-line progress bar with ETA on a
 * terminal, plain log lines on a pipe. */
#ifndef KANC_PROGRESS_H
#define KANC_PROGRESS_H

#include <stdint.h>

typedef struct {
    int tty;           /* stdout is a terminal: redraw a bar */
    int quiet;         /* no output at all */
    int64_t first, total;
    double t_start, ms_ema;
    int bar_shown;
} Progress;

void progress_start(Progress *p, int64_t first, int64_t total, int quiet);
/* a log line (printf-style); on a terminal it goes above the bar */
void progress_log(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* redraws the bar after step `done` */
void progress_update(Progress *p, int64_t done, double loss, double ms);
void progress_end(Progress *p);

#endif
