/* predict.c: kanrun predict: a table model's predictions for the rows of a CSV file,
 * as CSV: the rows' columns, then the prediction (and, for classes, each class's
 * probability). With the target column present, the rows are scored as eval scores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "checkpoint.h"
#include "cli_opts.h"
#include "commands.h"
#include "objective.h"
#include "run_folder.h"
#include "strbuf.h"
#include "train.h"
#include "util.h"
#include "weights.h"

static const char PREDICT_USAGE[] = "usage: kanrun predict RUN --data ROWS.csv [-o OUT.csv] [flags]\n"
                                    "       kanrun predict FILE --model MODEL.kdl --data ROWS.csv [-o OUT.csv] [flags]\n";

static const char PREDICT_EPILOG[] =
    "RUN is a run folder of a table model (kanrun train --data FILE.csv) or its\n"
    "model.safetensors; with --model, FILE is any safetensors file holding MODEL's\n"
    "state_dict by name. ROWS.csv has the training file's header: the model's\n"
    "inputs (x, or x0..x{n-1}); the target column (y) may be left out, and other\n"
    "columns (ids, notes) are copied through. OUT (default: standard output,\n"
    "written atomically otherwise) holds every column of ROWS, then the\n"
    "prediction: for mse(pred, y) y_pred (or y_pred0..), for cross_entropy(logits,\n"
    "y) the class y_pred and each class's probability y_p0..y_p{K-1}, named after\n"
    "the target input. With the target column there, the rows' MSE and RMSE, or\n"
    "loss and accuracy, go to standard error.\n";

/* the shortest text that reads back as v (as a float when v is one: the
   model's outputs in float32, a CSV's values as written) */
static void put_number(StrBuf *b, double v)
{
    char s[32];
    int as_float = (double)(float)v == v;
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, v);
        double d = strtod(s, NULL);
        if (as_float ? (float)d == (float)v : d == v) break;
    }
    sb_printf(b, "%s", s);
}

/* the prediction columns' names after the target input t: "t_pred", "t_pred0".., or
   (classes) "t_pred" then "t_p0".. */
static char *pred_name(const char *t, int classes, int64_t width, int64_t j)
{
    if (classes) return j ? xasprintf("%s_p%lld", t, (long long)j - 1) : xasprintf("%s_pred", t);
    return width == 1 ? xasprintf("%s_pred", t) : xasprintf("%s_pred%lld", t, (long long)j);
}

/* a column name as a CSV field: quoted (RFC 4180, "" for a quote) when it holds a comma, a
   quote or a line break, or starts or ends with a blank, as table_read reads it back */
static void put_name(StrBuf *b, const char *name)
{
    size_t n = strlen(name);
    int quote = strpbrk(name, ",\"\r\n") || (n && (strchr(" \t", name[0]) || strchr(" \t", name[n - 1])));
    if (!quote) {
        sb_printf(b, "%s", name);
        return;
    }
    sb_printf(b, "\"");
    for (const char *p = name; *p; p++) sb_printf(b, *p == '"' ? "\"\"" : "%c", *p);
    sb_printf(b, "\"");
}

/* The CSV: the rows' columns, then the predictions. -1 with a message when a
   prediction column's name is taken by a column of the rows. */
static int write_csv(const Table *t, const double *pred, int64_t w, int classes, const char *target,
                     const char *out, char *err, size_t errlen)
{
    int64_t ncol = classes ? w + 1 : w;
    for (int64_t j = 0; j < ncol; j++) {
        char *name = pred_name(target, classes, w, j);
        int taken = table_column(t, name) >= 0;
        if (taken) set_err(err, errlen, "%s:1: column '%s' would be the prediction's: rename it", t->path, name);
        free(name);
        if (taken) return -1;
    }
    StrBuf b = {0};
    for (int c = 0; c < t->ncols; c++) {
        if (c) sb_printf(&b, ",");
        put_name(&b, t->names[c]);
    }
    for (int64_t j = 0; j < ncol; j++) {
        char *name = pred_name(target, classes, w, j);
        sb_printf(&b, ",%s", name);
        free(name);
    }
    sb_printf(&b, "\n");
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            if (c) sb_printf(&b, ",");
            put_number(&b, t->v[r * (size_t)t->ncols + (size_t)c]);
        }
        const double *p = pred + r * (size_t)w;
        if (!classes) {
            for (int64_t j = 0; j < w; j++) sb_printf(&b, ","), put_number(&b, p[j]);
        } else { /* the argmax, then the softmax */
            int64_t best = 0;
            for (int64_t j = 1; j < w; j++)
                if (p[j] > p[best]) best = j;
            double s = 0;
            for (int64_t j = 0; j < w; j++) s += exp(p[j] - p[best]);
            sb_printf(&b, ",%lld", (long long)best);
            for (int64_t j = 0; j < w; j++) sb_printf(&b, ","), put_number(&b, exp(p[j] - p[best]) / s);
        }
        sb_printf(&b, "\n");
    }
    int rc = 0;
    if (out) {
        rc = atomic_write_file(out, b.s, b.n, err, errlen);
    } else if (fwrite(b.s, 1, b.n, stdout) != b.n || fflush(stdout)) {
        set_err(err, errlen, "cannot write the predictions to standard output");
        rc = -1;
    }
    free(b.s);
    return rc;
}

int predict_main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL;
    int64_t threads = 0;
    WeightsArgs w = {0};
    CliOpt wopts[WEIGHTS_NOPTS];
    weights_opts(&w, wopts);
    const CliOpt opts[] = {
        wopts[0], wopts[2], wopts[3],
        CLI_STR("data", &data, "ROWS.csv", "the rows to predict (the training file's columns)"),
        {.name = "out", .short_name = 'o', .kind = CLI_KIND_STR, .dst = &out, .arg = "OUT.csv",
         .help = "the CSV to write (default: standard output)"},
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
    };
    CliSpec spec = {"kanrun predict", PREDICT_USAGE, PREDICT_EPILOG, opts, CLI_COUNT(opts), 1, 1, &w.sets};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r || !data) {
        if (!r) fprintf(stderr, "kanrun predict: error: --data ROWS.csv is needed\n%s", PREDICT_USAGE);
        config_sets_free(&w.sets);
        return r > 0 ? 0 : 2;
    }
    w.weights = pos[0];
    set_threads((int)threads);
    char err[16384];
    CkptInfo info = {0};
    Model m = {0};
    Table rows = {0};
    Objective obj = {0};
    double *pred = NULL;
    int rc = 1;
    char *run = w.model ? NULL : run_dir_of(w.weights);
    ObjRecord rec;
    if (weights_open(&w, NULL, "auto", "kanrun predict", &m, &info, NULL, err, sizeof err)) goto fail;
    int recorded = run && !objective_recorded(run, info.step, &rec, err, sizeof err);
    if (run && !recorded) /* the weights are intact: the rows decide whether they fit */
        fprintf(stderr, "kanrun predict: warning: %s; predicting without the run's training record\n", err);
    if (recorded && rec.kind != OBJ_TABLE) {
        set_err(err, sizeof err, "%s was trained with the %s objective: predict reads table rows (for text: kanrun "
                "sample, or kanrun forward on token ids)", w.weights, objective_name(rec.kind));
        goto fail;
    }
    int has_target;
    if (table_read(data, &rows, err, sizeof err) ||
        objective_open_rows(&obj, &m, &rows, &has_target, err, sizeof err))
        goto fail;
    int64_t width = objective_pred_width(&obj);
    pred = xmalloc(rows.nrows * (size_t)width * sizeof *pred);
    if (objective_predict(&obj, pred, err, sizeof err)) goto fail;
    int classes = m.g.nodes[obj.score].op == OP_CROSS_ENTROPY;
    if (write_csv(&rows, pred, width, classes, m.g.nodes[obj.target].name, out, err, sizeof err)) goto fail;
    if (has_target) { /* scored as eval scores a validation file */
        ObjMetrics mt;
        char line[256], json[256];
        if (objective_evaluate(&obj, 0, 1, NULL, NULL, &mt, err, sizeof err)) goto fail;
        objective_metrics_text(&obj, &mt, line, sizeof line, json, sizeof json);
        fprintf(stderr, "kanrun predict: %s against %s's %s\n", line + strlen(" | val "), data,
                m.g.nodes[obj.target].name);
    }
    if (out) fprintf(stderr, "kanrun predict: %zu rows -> %s\n", rows.nrows, out);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "kanrun predict: error: %s\n", err);
done:
    free(pred);
    objective_free(&obj);
    table_free(&rows);
    free(run);
    model_free(&m);
    config_sets_free(&w.sets);
    ckpt_info_free(&info);
    return rc;
}
