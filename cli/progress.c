/* progress.c: progress bar and log lines. */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void progress_start(Progress *p, int64_t first, int64_t total, int quiet)
{
    p->tty = isatty(STDOUT_FILENO);
    p->quiet = quiet;
    p->first = first;
    p->total = total;
    p->t_start = now_s();
    p->ms_ema = 0;
    p->bar_shown = 0;
}

static void clear_bar(Progress *p)
{
    if (p->tty && p->bar_shown) fputs("\r\033[2K", stdout);
    p->bar_shown = 0;
}

void progress_log(Progress *p, const char *fmt, ...)
{
    if (p->quiet) return;
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void fmt_duration(double s, char *buf, size_t n)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

void progress_update(Progress *p, int64_t done, double loss, double ms)
{
    p->ms_ema = p->ms_ema > 0 ? 0.9 * p->ms_ema + 0.1 * ms : ms;
    if (p->quiet || !p->tty) return;
    enum { WIDTH = 30 };
    double frac = p->total > 0 ? (double)done / (double)p->total : 1;
    int fill = (int)(frac * WIDTH);
    char bar[WIDTH + 1], eta[32], el[32];
    for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = 0;
    fmt_duration((double)(p->total - done) * p->ms_ema / 1e3, eta, sizeof eta);
    fmt_duration(now_s() - p->t_start, el, sizeof el);
    printf("\r\033[2K[%s] %lld/%lld %3.0f%% | loss %.4f | %.1f ms/step | %s elapsed, ETA %s", bar,
           (long long)done, (long long)p->total, 100 * frac, loss, p->ms_ema, el, eta);
    fflush(stdout);
    p->bar_shown = 1;
}

void progress_end(Progress *p)
{
    if (p->quiet) return;
    if (p->tty && p->bar_shown) putchar('\n');
    p->bar_shown = 0;
    fflush(stdout);
}
