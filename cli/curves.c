/* curves.c: kanrun plot and kanrun compare: runs' loss curves drawn and set side by side.
 *
 * Both read what a run folder already holds: metrics.jsonl (a line per
 * training step with its loss and milliseconds, a line per evaluation with
 * val_loss) and, for compare, the checkpoint's model (rebuilt from its
 * metadata, no device) for the parameter count and FLOPs per token. Wall time
 * is the sum of the steps' milliseconds: training time, evaluations and
 * checkpoints left out, so runs on one machine compare fairly.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "config.h"
#include "model.h"
#include "plot.h"
#include "run_folder.h"
#include "util.h"

#define MAX_RUNS 64

/* one run's curves: training points (step, loss, wall seconds so far) and evaluations */
typedef struct {
    char *dir, *name;
    double *step, *loss, *wall;
    int n;
    double *vstep, *vloss, *vwall;
    int nv;
} Curves;

static void push(double **a, int n, double v)
{
    if (!(n & (n - 1)) || !n) *a = xrealloc(*a, sizeof **a * (size_t)(n ? 2 * n : 16));
    (*a)[n] = v;
}

static void curves_free(Curves *c)
{
    free(c->dir), free(c->name);
    free(c->step), free(c->loss), free(c->wall);
    free(c->vstep), free(c->vloss), free(c->vwall);
    memset(c, 0, sizeof *c);
}

/* Reads arg's run folder (RUN or RUN/model.safetensors). Returns 0, or -1 with a
   message naming the file and line. */
static int curves_read(const char *arg, Curves *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->dir = run_dir_of(arg);
    if (!c->dir) {
        set_err(err, errlen, "%s: not a run folder (kanrun train --out) or a run's model.safetensors", arg);
        return -1;
    }
    const char *base = strrchr(c->dir, '/');
    c->name = xstrdup(base && base[1] ? base + 1 : c->dir);
    char *path = xasprintf("%s/metrics.jsonl", c->dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s: %s (a run writes it from its first step)", path, strerror(errno));
        free(path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    double wall = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        cJSON *j = cJSON_Parse(line);
        const cJSON *st = j ? cJSON_GetObjectItem(j, "step") : NULL;
        if (!cJSON_IsObject(j) || !cJSON_IsNumber(st)) {
            set_err(err, errlen, "%s:%d: not a metrics line (a JSON object with a step)", path, lineno);
            cJSON_Delete(j);
            rc = -1;
            break;
        }
        const cJSON *loss = cJSON_GetObjectItem(j, "loss"), *ms = cJSON_GetObjectItem(j, "ms"),
                    *val = cJSON_GetObjectItem(j, "val_loss");
        if (cJSON_IsNumber(loss)) {
            wall += cJSON_IsNumber(ms) ? ms->valuedouble / 1e3 : 0;
            push(&c->step, c->n, st->valuedouble);
            push(&c->loss, c->n, loss->valuedouble);
            push(&c->wall, c->n, wall);
            c->n++;
        }
        if (cJSON_IsNumber(val)) {
            push(&c->vstep, c->nv, st->valuedouble);
            push(&c->vloss, c->nv, val->valuedouble);
            push(&c->vwall, c->nv, wall);
            c->nv++;
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    if (!rc && !c->n && !c->nv) {
        set_err(err, errlen, "%s: no training step or evaluation recorded", path);
        rc = -1;
    }
    free(path);
    return rc;
}

/* The training loss smoothed as TensorBoard does: an exponential moving
   average with weight a on the past, divided by (1 - a^t) so that the first
   points are not pulled towards 0. out has c->n entries. */
static void smooth(const Curves *c, double a, double *out)
{
    double s = 0, w = 0;
    for (int i = 0; i < c->n; i++) {
        s = a * s + (1 - a) * c->loss[i];
        w = a * w + (1 - a);
        out[i] = s / w;
    }
}

static int read_runs(const char *prog, char **pos, int np, Curves *runs)
{
    char err[512];
    for (int i = 0; i < np; i++)
        if (curves_read(pos[i], &runs[i], err, sizeof err)) {
            fprintf(stderr, "kanrun %s: error: %s\n", prog, err);
            for (int k = 0; k <= i; k++) curves_free(&runs[k]);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------------ kanrun plot */

static const char PLOT_USAGE[] =
    "usage: kanrun plot RUN [RUN ...] -o FILE.png [--smooth A] [--title TEXT]\n"
    "\n"
    "Draws the runs' training loss (smoothed) and validation loss against steps,\n"
    "one colour per run, on one chart.\n";

int plot_main(int argc, char **argv)
{
    const char *out = NULL, *title = "loss";
    double a = 0.9;
    const CliOpt opts[] = {
        {.short_name = 'o', .kind = CLI_KIND_STR, .dst = &out, .arg = "FILE.png", .help = "the PNG to write"},
        CLI_REAL("smooth", &a, 0, 0.999, "A",
                   "weight of the past in the training loss's moving\naverage (default 0.9; 0: none)"),
        CLI_STR("title", &title, "TEXT", "the chart's title (default: loss)"),
    };
    char *pos[MAX_RUNS];
    int np;
    CliSpec spec = {"kanrun plot", PLOT_USAGE, NULL, opts, CLI_COUNT(opts), 1, MAX_RUNS, NULL};
    int r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "kanrun plot: error: give -o FILE.png\n");
        return 2;
    }
    Curves runs[MAX_RUNS];
    if (read_runs("plot", pos, np, runs)) return 1;
    PlotSeries s[2 * MAX_RUNS];
    double *sm[MAX_RUNS];
    char *labels[2 * MAX_RUNS];
    int ns = 0;
    for (int i = 0; i < np; i++) {
        sm[i] = xmalloc(sizeof(double) * (size_t)(runs[i].n + 1));
        smooth(&runs[i], a, sm[i]);
        if (runs[i].n) {
            labels[ns] = xasprintf("%s train", runs[i].name);
            s[ns] = (PlotSeries){labels[ns], runs[i].step, sm[i], runs[i].n, i, 0};
            ns++;
        }
        if (runs[i].nv) {
            labels[ns] = xasprintf("%s val", runs[i].name);
            s[ns] = (PlotSeries){labels[ns], runs[i].vstep, runs[i].vloss, runs[i].nv, i, 1};
            ns++;
        }
    }
    char ylabel[64], err[512];
    snprintf(ylabel, sizeof ylabel, a > 0 ? "loss (train: moving average, %.3g)" : "loss", a);
    PlotChart c = {title, "step", ylabel, s, ns};
    int rc = plot_charts_png(out, &c, 1, err, sizeof err);
    if (rc)
        fprintf(stderr, "kanrun plot: error: %s\n", err);
    else
        printf("kanrun plot: %s (%d x %d): %d run%s\n", out, PLOT_CHART_W, PLOT_CHART_H, np, np > 1 ? "s" : "");
    for (int i = 0; i < ns; i++) free(labels[i]);
    for (int i = 0; i < np; i++) free(sm[i]), curves_free(&runs[i]);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ kanrun compare */

/* what the table shows of a run's model: from its checkpoint, rebuilt for training */
typedef struct {
    int64_t params, tokens_per_step;
    double flops_per_token; /* the training step's, as kanc --report counts them */
} ModelSummary;

static int model_summary(const char *dir, ModelSummary *ms, char *err, size_t errlen)
{
    CkptInfo info;
    if (ckpt_info(dir, &info, err, errlen)) return -1;
    ConfigSets cs = {0};
    ckpt_sets(&info, &cs);
    Model m;
    int rc = model_compile(&m, info.model_path, info.source, cs.sets, cs.n, MODEL_TRAIN, 4, "none", stderr);
    config_sets_free(&cs);
    ckpt_info_free(&info);
    if (rc) {
        set_err(err, errlen, "%s: cannot rebuild the checkpoint's model", dir);
        return -1;
    }
    memset(ms, 0, sizeof *ms);
    for (int i = 0; i < m.g.n; i++) {
        const GNode *n = &m.g.nodes[i];
        if (n->op == OP_PARAM && n->trainable) ms->params += shape_numel(&n->shape);
        if (n->op == OP_INPUT && !ms->tokens_per_step)
            ms->tokens_per_step = n->dtype == DT_I32 ? shape_numel(&n->shape) : shape_rows(&n->shape);
    }
    double fwd;
    plan_flops(&m.plan, ms->tokens_per_step, &fwd, &ms->flops_per_token);
    model_free(&m);
    return 0;
}

static void human(double v, char *buf, size_t n)
{
    const char *u[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (fabs(v) >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, n, i ? "%.3g%s" : "%.0f%s", v, u[i]);
}

static const char COMPARE_USAGE[] =
    "usage: kanrun compare RUN RUN ... [-o FILE.png]\n"
    "\n"
    "A table of the runs (parameters, training FLOPs per token, steps, tokens seen,\n"
    "training wall time, best and final validation loss); with -o, validation loss\n"
    "against steps and against wall time for all runs.\n";

int compare_main(int argc, char **argv)
{
    const char *out = NULL;
    const CliOpt opts[] = {
        {.short_name = 'o', .kind = CLI_KIND_STR, .dst = &out, .arg = "FILE.png",
         .help = "also draw validation loss against steps and\nagainst wall time"},
    };
    char *pos[MAX_RUNS];
    int np;
    CliSpec spec = {"kanrun compare", COMPARE_USAGE, NULL, opts, CLI_COUNT(opts), 1, MAX_RUNS, NULL};
    int r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    Curves runs[MAX_RUNS];
    if (read_runs("compare", pos, np, runs)) return 1;
    int rc = 0, with_val = 0;
    char err[512];
    for (int i = 0; i < np; i++) with_val += runs[i].nv > 0;
    if (out && !with_val) {
        fprintf(stderr, "kanrun compare: error: -o %s: no run has a validation loss (train with --eval-every)\n", out);
        for (int i = 0; i < np; i++) curves_free(&runs[i]);
        return 1;
    }
    printf("%-24s %10s %12s %8s %10s %10s %17s %10s\n", "run", "params", "FLOPs/token", "steps", "tokens",
           "wall (s)", "best val (step)", "final val");
    for (int i = 0; i < np && !rc; i++) {
        const Curves *c = &runs[i];
        ModelSummary ms;
        if (model_summary(c->dir, &ms, err, sizeof err)) {
            fprintf(stderr, "kanrun compare: error: %s\n", err);
            rc = 1;
            break;
        }
        int64_t steps = c->n ? (int64_t)c->step[c->n - 1] : 0;
        char p[16], fl[16], tk[16], best[32] = "-", fin[16] = "-";
        human((double)ms.params, p, sizeof p);
        human(ms.flops_per_token, fl, sizeof fl);
        human((double)steps * (double)ms.tokens_per_step, tk, sizeof tk);
        if (c->nv) {
            int b = 0;
            for (int k = 1; k < c->nv; k++)
                if (c->vloss[k] < c->vloss[b]) b = k;
            snprintf(best, sizeof best, "%.4f (%.0f)", c->vloss[b], c->vstep[b]);
            snprintf(fin, sizeof fin, "%.4f", c->vloss[c->nv - 1]);
        }
        printf("%-24s %10s %12s %8lld %10s %10.4g %17s %10s\n", c->name, p, fl, (long long)steps, tk,
               c->n ? c->wall[c->n - 1] : 0.0, best, fin);
    }
    if (!rc && out) {
        PlotSeries by_step[MAX_RUNS], by_wall[MAX_RUNS];
        int ns = 0;
        for (int i = 0; i < np; i++)
            if (runs[i].nv) {
                by_step[ns] = (PlotSeries){runs[i].name, runs[i].vstep, runs[i].vloss, runs[i].nv, i, 0};
                by_wall[ns] = (PlotSeries){runs[i].name, runs[i].vwall, runs[i].vloss, runs[i].nv, i, 0};
                ns++;
            }
        PlotChart ch[2] = {{"validation loss by step", "step", "validation loss", by_step, ns},
                           {"validation loss by wall time", "training wall time (s)", "validation loss", by_wall,
                            ns}};
        if (plot_charts_png(out, ch, 2, err, sizeof err)) {
            fprintf(stderr, "kanrun compare: error: %s\n", err);
            rc = 1;
        } else {
            printf("kanrun compare: %s (%d x %d)\n", out, 2 * PLOT_CHART_W, PLOT_CHART_H);
        }
    }
    for (int i = 0; i < np; i++) curves_free(&runs[i]);
    return rc;
}
