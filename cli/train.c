/* train.c: the training loop: batches, schedule, logs, evaluation, checkpoints. */
#include "train.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifact.h"
#include "atomic_file.h"
#include "cli_opts.h"
#include "checkpoint.h"
#include "corpus.h"
#include "cuda_api.h"
#include "train_dist.h"
#include "kan_basis.h"
#include "kan_grid.h"
#include "kan_probe.h"
#include "lm.h"
#include "objective.h"
#include "model.h"
#include "peak.h"
#include "progress.h"
#include "run_folder.h"
#include "state_dict.h"
#include "tokenizer.h"
#include "util.h"

void set_threads(int threads)
{
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

double train_lr(int64_t t, int64_t steps, int64_t warmup, double lr, double min_lr)
{
    if (t < warmup) return lr * (double)(t + 1) / (double)warmup;
    int64_t span = steps - warmup;
    double progress = span > 0 ? (double)(t - warmup) / (double)span : 1.0;
    if (progress > 1) progress = 1;
    return min_lr + 0.5 * (lr - min_lr) * (1 + cos(M_PI * progress));
}

/* ------------------------------------------------------------ flags */

static const char TRAIN_USAGE[] =
    "usage: kanrun train MODEL.kdl --data PATH [flags]\n"
    "       kanrun train MODEL.kdl --data PATH --objective mlm [--mask-prob P] [flags]\n"
    "       kanrun train MODEL.kdl --data FILE.csv [--val FILE.csv] [flags]\n"
    "       kanrun train MODEL.kdl --init-from FILE --data PATH [flags]\n"
    "       kanrun train --resume DIR [--steps N] [flags]\n";

static const char TRAIN_EPILOG[] =
    "MODEL may also be a cubin from kanc -o. When resuming, the run's saved flags\n"
    "apply unless given again (e.g. a larger --steps). DIR may also be the run's\n"
    "model.safetensors. OUT is created with its parents; one kanrun train at a time\n"
    "writes it (OUT/.lock), and a run already in it is kept: continue it with\n"
    "--resume, or --force to move it aside.\n"
    "\n"
    "--init-from starts a new run (step 0, fresh AdamW moments) from the weights in\n"
    "FILE: any safetensors file holding MODEL's state_dict by name (a PyTorch\n"
    "export: safetensors.torch.save_file(model.state_dict(), FILE)), every name and\n"
    "shape exactly; minGPT's attn.bias masks are ignored, KAN grids are read. The\n"
    "run records FILE (init_from in its training state).\n"
    "\n"
    "Objectives (--objective; recorded in the run, kept by a resume and eval):\n"
    "  lm     next-token prediction on text (inputs idx, targets tokens[batch,\n"
    "         block_size]; the default)\n"
    "  mlm    masked LM, BERT-style: each position is chosen with probability\n"
    "         --mask-prob; of those 80% become the mask id (the tokenizer's vocab\n"
    "         size; the model's vocab_size defaults to vocab + 1), 10% a random\n"
    "         token, 10% stay; targets are the originals there, -1 elsewhere\n"
    "  table  rows of a CSV (the default for --data FILE.csv): the header names\n"
    "         the inputs: x: real[batch, n] reads x (n = 1) or x0..x{n-1},\n"
    "         y: tokens[batch] reads a column y of class ids; the model returns\n"
    "         its prediction besides loss (mse: MSE, RMSE; cross_entropy: loss,\n"
    "         accuracy, scored on every validation row)\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 bad usage, 3 diverged: stopped on a non-finite\n"
    "loss, a gradient too large for AdamW's float32 state, or weights no checkpoint\n"
    "may hold (the last good checkpoint is kept).\n";

/* The numeric training settings: a flag each, saved in the optimizer file's
   training state under the flag's name with '_' for '-', and checked against
   the same range when read back. Unset (-1, NAN) until resolve_args. */
typedef struct {
    CliOpt opt;
    double def;
} TrainSetting;

#define SETTING_INT(name, field, lo, def, arg, help) \
    {CLI_INT(name, &a->field, lo, CLI_INT_MAX, arg, help), def}
#define SETTING_REAL(name, field, def, arg, help) \
    {CLI_REAL(name, &a->field, 0, INFINITY, arg, help), def}
#define SETTING_SHARE(name, field, def, arg, help) \
    {CLI_REAL(name, &a->field, 0, 1, arg, help), def}

#define N_SETTINGS 15

/* the settings of a, in the order --help lists them */
static int train_settings(TrainArgs *a, TrainSetting *out)
{
    const TrainSetting s[] = {
        SETTING_INT("steps", steps, 1, 1000, "N", "total optimizer steps (default 1000)"),
        SETTING_REAL("lr", lr, 3e-4, "LR", "peak learning rate (default 3e-4), AdamW betas 0.9/0.95"),
        SETTING_INT("warmup", warmup, 0, 100, "N", "linear warmup steps (default 100), then cosine decay"),
        SETTING_REAL("min-lr", min_lr, 3e-5, "LR", "the cosine's floor (default 3e-5)"),
        SETTING_REAL("weight-decay", weight_decay, 0.1, "WD",
                     "on Linear weights and KAN parameters (default 0.1)"),
        SETTING_REAL("clip", clip, 1.0, "C", "global gradient-norm clip (default 1.0; 0: none)"),
        SETTING_INT("seed", seed, 0, 1337, "S", "initialisation, batches and dropout (default 1337)"),
        SETTING_INT("eval-every", eval_every, 0, 250, "N", "validation loss every N steps (default 250; 0: never)"),
        SETTING_INT("eval-batches", eval_batches, 1, 20, "K",
                    "fixed validation batches per evaluation (default 20)"),
        SETTING_INT("save-every", save_every, 0, 500, "N", "checkpoint every N steps (default 500) and at the end"),
        SETTING_INT("log-every", log_every, 1, 10, "N", "a log line every N steps (default 10)"),
        SETTING_INT("grid-update-every", grid_update_every, 0, 0, "N",
                    "refit every B-spline KAN layer's grid to its inputs\non the batch every N steps, from step 0 (default 0:\nnever; see below)"),
        SETTING_INT("grid-update-until", grid_update_until, 0, 0, "STEP",
                    "no grid update from STEP on (default 0: the whole run)"),
        SETTING_REAL("grid-margin", grid_margin, 0.01, "M", "the grid's margin past the batch's range (default 0.01)"),
        SETTING_SHARE("grid-eps", grid_eps, 0.02, "E",
                      "the uniform grid's share in the new knots, in [0, 1]\n(default 0.02; 1: uniform, 0: the samples' quantiles)"),
    };
    _Static_assert(CLI_COUNT(s) == N_SETTINGS, "N_SETTINGS counts the table");
    memcpy(out, s, sizeof s);
    return N_SETTINGS;
}

void train_args_init(TrainArgs *a)
{
    memset(a, 0, sizeof *a);
    a->batch = a->steps = a->warmup = a->eval_every = a->eval_batches = -1;
    a->save_every = a->log_every = a->seed = a->grid_update_every = a->grid_update_until = -1;
    a->lr = a->min_lr = a->weight_decay = a->clip = a->grid_margin = a->grid_eps = a->mask_prob = NAN;
    a->dist_timeout = 300;
}

/* "min-lr" -> "min_lr": the key of a setting in the saved training state */
static void setting_key(const CliOpt *o, char *key, size_t n)
{
    snprintf(key, n, "%s", o->name);
    for (char *p = key; *p; p++)
        if (*p == '-') *p = '_';
}

static int setting_is_set(const CliOpt *o)
{
    return o->kind == CLI_KIND_INT ? *(int64_t *)o->dst >= 0 : !isnan(*(double *)o->dst);
}

int train_parse_args(TrainArgs *a, int argc, char **argv)
{
    TrainSetting set[N_SETTINGS];
    int ns = train_settings(a, set);
    const CliOpt head[] = {
        CLI_STR("data", &a->data, "PATH", "UTF-8 text file or folder of them (tokenized once,\ncached in OUT/tokens), or a CSV table (see below)"),
        CLI_STR("val", &a->val, "PATH", "validation text or CSV (default: the last 10% of the\ntokens or rows)"),
        CLI_STR("objective", &a->objective, "OBJ",
                "lm (default), mlm, or table (default for a .csv);\nsee below"),
        CLI_REAL_POS("mask-prob", &a->mask_prob, 1, "P", "mlm: the share of positions masked (default 0.15)"),
        CLI_STR("tokenizer", &a->tokenizer, "SPEC",
                "bytes (default) or gpt2:DIR (DIR/encoder.json,\nDIR/vocab.bpe); the model's vocab_size follows it\nunless --set"),
        CLI_STR("out", &a->out, "DIR", "checkpoints, metrics.jsonl, token cache (default runs/MODEL)"),
        CLI_INT("batch", &a->batch, 1, INT32_MAX, "B", "sequences per step (the model's `batch`)"),
    };
    const CliOpt tail[] = {
        CLI_CALL("set", config_cli_set, "NAME=VALUE", "override a model hyperparameter (repeatable)"),
        CLI_CALL("preset", config_cli_preset, "NAME",
                 "hyperparameters from models/presets/NAME.set (gpt-nano,\ngpt-micro, gpt-mini) or a .set file; a later --set wins"),
        CLI_INT("threads", &a->threads, 0, 4096, "T", "CPU threads (default: all cores)"),
        CLI_STR("resume", &a->resume, "DIR", "continue from DIR's checkpoint"),
        CLI_STR("init-from", &a->init_from, "FILE",
                "a new run from the weights of a state_dict (a PyTorch\nexport; see below)"),
        CLI_FLAG("force", &a->force, "start over in an --out that holds a run: move it\naside to OUT.old-<YYYYmmdd-HHMMSS> (never deleted)"),
        CLI_FLAG("quiet", &a->quiet, "no per-step output"),
        CLI_REAL("peak-tflops", &a->peak_tflops, 0, INFINITY, "X",
                 "the peak for the step line's MFU, in TFLOP/s (default:\nthe GPU's from a table; the CPU has none)"),
        CLI_FLAG("measure-peak", &a->measure_peak, "CPU: measure OpenBLAS sgemm once before the first\nstep (about 1 s) and take it as the MFU's peak"),
        CLI_STR("grid-mode", &a->grid_mode, "MODE",
                "keep (default): the refit keeps each layer's output on\nthe batch; efficient-kan: upstream's update_grid\n(scales the splines by spline_scaler once more)"),
        CLI_STR("device", &a->device, "D",
                "auto (default: cuda when there is a GPU, else cpu),\ncpu, cuda, or emu (the CUDA path emulated on the\nCPU, for tests)"),
        CLI_STR("precision", &a->precision, "P",
                "the GEMM operands on a CUDA device: bf16 (default on\ncuda; fp32 accumulation) or fp32 (default on emu;\nthe only one on cpu)"),
        /* data parallel, under mpirun (see the README) */
        CLI_INT("check-every", &a->check_every, 0, CLI_INT_MAX, "N",
                "under mpirun: check every N steps that every rank\nholds the same weights (default 0: never)"),
        CLI_INT("zero", &a->zero, 0, 1, "S",
                "under mpirun: 1 shards the AdamW moments across the\nranks (ZeRO stage 1; default 0)"),
        CLI_REAL_POS("dist-timeout", &a->dist_timeout, 1e9, "S",
                     "under mpirun: stop the job when a collective waits\nlonger than S seconds (default 300)"),
    };
    CliOpt opts[CLI_COUNT(head) + N_SETTINGS + CLI_COUNT(tail)];
    int n = 0;
    for (int i = 0; i < CLI_COUNT(head); i++) opts[n++] = head[i];
    for (int i = 0; i < ns; i++) opts[n++] = set[i].opt;
    for (int i = 0; i < CLI_COUNT(tail); i++) opts[n++] = tail[i];
    CliSpec spec = {"kanrun train", TRAIN_USAGE, TRAIN_EPILOG, opts, n, 0, 1, &a->sets};
    char *pos[1];
    int np;
    int rc = cli_parse(&spec, argc, argv, pos, &np);
    if (rc == 0 && np) a->model = pos[0];
    if (rc == 0 && a->precision && device_precision_request("kanrun train", a->precision, a->device)) rc = -1;
    return rc;
}

/* Fills unset settings from a resumed run's saved state (checked as the
   command line is: a bad value is an error naming the file and the key),
   then from the defaults. */
static int resolve_args(TrainArgs *a, const cJSON *saved, const char *saved_path, char *err,
                        size_t errlen)
{
    TrainSetting set[N_SETTINGS];
    int ns = train_settings(a, set);
    for (int i = 0; i < ns; i++) {
        const CliOpt *o = &set[i].opt;
        if (setting_is_set(o)) continue;
        char key[64], what[1200];
        setting_key(o, key, sizeof key);
        const cJSON *v = saved ? cJSON_GetObjectItemCaseSensitive(saved, key) : NULL;
        if (!v) {
            if (o->kind == CLI_KIND_INT) *(int64_t *)o->dst = (int64_t)set[i].def;
            else *(double *)o->dst = set[i].def;
            continue;
        }
        snprintf(what, sizeof what, "%s: %s", saved_path, key);
        int bad = !cJSON_IsNumber(v);
        if (bad) set_err(err, errlen, "%s needs a number", what);
        else if (o->kind == CLI_KIND_INT)
            bad = cli_check_int(what, v->valuedouble, o->ilo, o->ihi, o->dst, err, errlen);
        else if (!(bad = cli_check_real(what, v->valuedouble, o->rlo, o->rhi, o->open_lo, err, errlen)))
            *(double *)o->dst = v->valuedouble;
        if (bad) return -1;
    }
    const char *const paths[] = {"data", "val", "grid_mode", "objective"};
    const char **dst[] = {&a->data, &a->val, &a->grid_mode, &a->objective};
    for (int i = 0; i < 4; i++) {
        const cJSON *s = saved ? cJSON_GetObjectItemCaseSensitive(saved, paths[i]) : NULL;
        if (*dst[i] || !s) continue;
        if (!cJSON_IsString(s) || !*s->valuestring) {
            set_err(err, errlen, "%s: %s needs %s (a non-empty string)", saved_path, paths[i],
                    i < 2 ? "a path" : i < 3 ? "a mode" : "an objective");
            return -1;
        }
        *dst[i] = s->valuestring;
    }
    int mask_given = !isnan(a->mask_prob);
    const cJSON *mp = saved ? cJSON_GetObjectItemCaseSensitive(saved, "mask_prob") : NULL;
    if (isnan(a->mask_prob) && mp) {
        if (!cJSON_IsNumber(mp) || !(mp->valuedouble > 0 && mp->valuedouble <= 1)) {
            set_err(err, errlen, "%s: mask_prob needs a number in (0, 1]", saved_path);
            return -1;
        }
        a->mask_prob = mp->valuedouble;
    }
    if (isnan(a->mask_prob)) a->mask_prob = OBJ_DEFAULT_MASK_PROB;
    ObjKind kind;
    if (!a->objective) a->objective = objective_name(objective_default(a->data));
    if (objective_parse(a->objective, &kind, err, errlen)) return -1;
    if (mask_given && kind != OBJ_MLM) {
        set_err(err, errlen, "--mask-prob is for --objective mlm, not %s", a->objective);
        return -1;
    }
    KanGridMode mode;
    if (!a->grid_mode) a->grid_mode = "keep";
    if (kan_grid_mode_parse(a->grid_mode, &mode)) {
        set_err(err, errlen, "--grid-mode %s: must be keep or efficient-kan", a->grid_mode);
        return -1;
    }
    const cJSON *init = saved ? cJSON_GetObjectItemCaseSensitive(saved, "init_from") : NULL;
    if (init) { /* a resumed run keeps the record of where it began */
        if (!cJSON_IsString(init) || !*init->valuestring) {
            set_err(err, errlen, "%s: init_from needs a path (a non-empty string)", saved_path);
            return -1;
        }
        a->init_from = init->valuestring;
    }
    if (!a->device) a->device = "auto";
    return 0;
}

static cJSON *state_json(TrainArgs *a, int64_t mask_id)
{
    cJSON *o = cJSON_CreateObject();
    TrainSetting set[N_SETTINGS];
    int ns = train_settings(a, set);
    for (int i = 0; i < ns; i++) {
        const CliOpt *o_ = &set[i].opt;
        char key[64];
        setting_key(o_, key, sizeof key);
        cJSON_AddNumberToObject(o, key, o_->kind == CLI_KIND_INT ? (double)*(int64_t *)o_->dst
                                                                 : *(double *)o_->dst);
    }
    if (a->data) cJSON_AddStringToObject(o, "data", a->data);
    if (a->val) cJSON_AddStringToObject(o, "val", a->val);
    cJSON_AddStringToObject(o, "grid_mode", a->grid_mode);
    if (a->init_from) cJSON_AddStringToObject(o, "init_from", a->init_from);
    cJSON_AddStringToObject(o, "objective", a->objective);
    if (!strcmp(a->objective, "mlm")) {
        cJSON_AddNumberToObject(o, "mask_prob", a->mask_prob);
        cJSON_AddNumberToObject(o, "mask_id", mask_id);
    }
    return o;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The guard on the step's gradient. AdamW keeps float32 moments per element:
   v = beta2 v + (1 - beta2) g^2 for the gradient element g it is given (after
   clipping). Every |g| is at most the global norm, so a norm <= sqrt(FLT_MAX) / 2
   keeps g^2 <= FLT_MAX / 4, and v, a convex combination of its old value and
   g^2, finite with room for rounding. Past it, v (and beyond sqrt(FLT_MAX), g^2
   itself) can overflow to inf and the update turns the weights into NaN or 0:
   the step is not taken. */
#define TRAIN_MAX_GRAD_NORM (0.5 * sqrt((double)FLT_MAX))

/* the norm of the gradient AdamW applies: clipped as torch's clip_grad_norm_
   (ops/optim_cpu.inc, the CUDA adamw kernel) */
static double applied_grad_norm(double norm, double clip)
{
    if (clip > 0) {
        double c = clip / (norm + 1e-6);
        if (c < 1) return norm * c;
    }
    return norm;
}


/* metrics.jsonl for appending. A resumed run keeps the lines of steps <= resume_step
   (it rewrites what came after), replaced atomically: a crash keeps the old file. */
static FILE *open_metrics(const char *out, int64_t resume_step, char *err, size_t errlen)
{
    char *path = xasprintf("%s/metrics.jsonl", out);
    FILE *f = NULL;
    if (resume_step > 0) {
        size_t len;
        errno = 0;
        char why[256];
        char *old = read_file_why(path, &len, why, sizeof why);
        if (!old && errno != ENOENT) {
            set_err(err, errlen, "%s: cannot read: %s", path, why);
            goto out;
        }
        AtomicFile af;
        if (atomic_open(&af, path, err, errlen)) {
            free(old);
            goto out;
        }
        for (char *line = old ? strtok(old, "\n") : NULL; line; line = strtok(NULL, "\n")) {
            cJSON *j = cJSON_Parse(line);
            if (j && config_number(j, "step", 1e18) <= (double)resume_step) atomic_printf(&af, "%s\n", line);
            cJSON_Delete(j);
        }
        free(old);
        if (atomic_commit(&af, err, errlen)) goto out; /* reports the first write error too */
    }
    if (!(f = fopen(path, resume_step > 0 ? "a" : "w")))
        set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
out:
    free(path);
    return f;
}

/* One line of metrics.jsonl, flushed. Returns 0, or -1 with the file and the
   error in err. */
static int metrics_line(FILE *f, const char *out, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int metrics_line(FILE *f, const char *out, char *err, size_t errlen, const char *fmt, ...)
{
    if (!f) return 0; /* a rank other than 0 of a data-parallel job: no metrics */
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int bad = vfprintf(f, fmt, ap) < 0;
    va_end(ap);
    bad = bad || fflush(f) != 0;
    if (bad) set_err(err, errlen, "%s/metrics.jsonl: cannot write: %s", out, strerror(errno ? errno : EIO));
    return bad ? -1 : 0;
}

/* "the last good checkpoint is OUT (step N)", or that there is none yet */
static void kept_text(const TrainArgs *a, int64_t last_saved, char *buf, size_t n)
{
    if (last_saved > 0)
        snprintf(buf, n, "the last good checkpoint is %s (step %lld)", a->out, (long long)last_saved);
    else
        snprintf(buf, n, "no checkpoint was written yet");
}

/* The message of a diverged run (why it stopped, the checkpoint kept); the exit status 3. */
static int stop_diverged(const TrainArgs *a, const char *why, int64_t last_saved)
{
    char kept[512];
    kept_text(a, last_saved, kept, sizeof kept);
    fprintf(stderr, "kanrun train: error: %s; stopping: %s. Try a lower --lr%s.\n", why, kept,
            a->clip > 0 ? "" : " or a --clip");
    return 3;
}

/* Creates OUT (with parents) and claims it: the lock first, then a run
   already there is refused, or with --force moved aside; then the leftovers
   of killed writers go. Returns the lock's descriptor (held until exit), or
   -1 with a message. loaded_step: the step a resume loaded; resume_lock: the
   resumed run's lock, taken before it was read (kept when OUT is that run,
   else released), or -1. */
static int claim_out(TrainArgs *a, int64_t loaded_step, int resume_lock, char *err, size_t errlen)
{
    char e[900];
    if (make_dirs(a->out, e, sizeof e)) {
        set_err(err, errlen, "%s: cannot create the output folder: %s", a->out, e);
        if (resume_lock >= 0) close(resume_lock);
        return -1;
    }
    int same = a->resume && run_same_path(a->resume, a->out);
    if (resume_lock >= 0 && !same) close(resume_lock); /* the resumed run is read: released */
    int lock = same && resume_lock >= 0 ? resume_lock : run_lock(a->out, err, errlen);
    if (lock < 0) return -1;
    if (a->resume && run_same_path(a->resume, a->out)) {
        /* a writer that ended while we loaded may have saved a later step */
        CkptInfo info;
        if (ckpt_info(a->out, &info, err, errlen)) goto fail;
        int64_t now = info.step;
        ckpt_info_free(&info);
        if (now != loaded_step) {
            set_err(err, errlen, "%s: its checkpoint went from step %lld to %lld while it was loaded: run again",
                    a->out, (long long)loaded_step, (long long)now);
            goto fail;
        }
    } else {
        int64_t step, mstep;
        if (run_holds_run(a->out, &step, &mstep)) {
            if (!a->force) {
                if (step >= 0)
                    set_err(err, errlen, "%s already holds a run at step %lld: use --resume to continue or "
                            "--force to start over", a->out, (long long)step);
                else
                    set_err(err, errlen, "%s already holds a run with no checkpoint (metrics.jsonl up to step "
                            "%lld): use --force to start over", a->out, (long long)mstep);
                goto fail;
            }
            char *old = run_move_aside(a->out, err, errlen);
            if (!old) goto fail;
            printf("kanrun: %s held a run; moved it aside to %s\n", a->out, old);
            free(old);
            int fresh;
            if (make_dirs(a->out, e, sizeof e)) {
                set_err(err, errlen, "%s: cannot create the output folder: %s", a->out, e);
                goto fail;
            }
            if ((fresh = run_lock(a->out, err, errlen)) < 0) goto fail;
            close(lock); /* the moved run's lock */
            lock = fresh;
        }
    }
    run_remove_stale(a->out);
    return lock;
fail:
    close(lock);
    return -1;
}

/* Model, tokenizer and state: from a checkpoint when resuming, else fresh. */
static int setup_model(TrainArgs *a, Model *m, Tokenizer **tok, cJSON **saved, char *err,
                       size_t errlen)
{
    ConfigSets cs = {0};
    const char *model_path = a->model, *src = NULL;
    CkptInfo info = {0};
    int rc = -1;
    if (a->resume) {
        if (ckpt_info(a->resume, &info, err, errlen)) return -1;
        ckpt_sets(&info, &cs);
        model_path = info.model_path;
        src = info.source;
        if (!a->tokenizer) a->tokenizer = info.tokenizer;
    }
    if (!a->resume && !a->tokenizer && a->model && artifact_is_cubin(a->model)) {
        /* a prebuilt step (kanc -o): the tokenizer it was compiled for */
        Artifact art;
        if (artifact_read(&art, a->model, err, errlen)) return -1;
        const char *t = artifact_str(&art, "tokenizer");
        int bare = t && strcmp(t, "bytes") && !strchr(t, ':');
        if (bare) snprintf(err, errlen, "%s expects the %s tokenizer: give --tokenizer %s:DIR", a->model, t, t);
        else if (t) a->tokenizer = xstrdup(t); /* lives for the run */
        artifact_free(&art);
        if (bare) return -1;
    }
    if (!a->tokenizer) a->tokenizer = "bytes";
    if (!(*tok = tok_open(a->tokenizer, err, errlen))) goto out;
    if (!a->resume) { /* the vocabulary follows the tokenizer unless set; mlm adds the mask id */
        ObjKind kind = objective_default(a->data);
        if (a->objective && objective_parse(a->objective, &kind, err, errlen)) goto out;
        config_sets_add_int(&cs, "vocab_size", tok_vocab_size(*tok) + (kind == OBJ_MLM), 1);
    }
    for (int i = 0; i < a->sets.n; i++) config_sets_add(&cs, a->sets.sets[i].name, a->sets.sets[i].value, 0);
    if (a->batch > 0) config_sets_add_int(&cs, "batch", a->batch, 0);
    if (model_compile(m, model_path, src, cs.sets, cs.n, MODEL_TRAIN, 4,
                      a->device ? a->device : "auto", stderr)) {
        snprintf(err, errlen, "cannot build the model");
        goto out;
    }
    if (a->init_from && /* every parameter from the file; zero moments, step 0 */
        (model_init_params(m, 0, err, errlen) || sd_load(m, a->init_from, err, errlen)))
        goto out;
    if (a->resume) {
        int64_t vocab = graph_vocab(&m->g, model_input(m, "idx"));
        if (ckpt_check_tokenizer(&info, *tok, vocab, "kanrun train", stderr, err, errlen) ||
            ckpt_load(a->resume, m, saved, err, errlen))
            goto out;
    }
    rc = 0;
out:
    config_sets_free(&cs);
    ckpt_info_free(&info);
    return rc;
}

static int grid_update_due(const TrainArgs *a, int64_t done);

/* The terms of a composite loss: every scalar output of the model besides the
   loss and the main output (`return logits, loss, reg` logs reg), as
   `"reg":0.012345,` for metrics.jsonl and ` (reg 0.0123)` for the step line;
   both empty when there are none. value[j]: the j-th term's value (as the step
   record holds them, after the loss: loss_term_nodes' order). */
static void loss_terms(Model *m, const double *value, char *json, char *log, size_t n)
{
    json[0] = log[0] = 0;
    size_t nj = 0, nl = 0;
    for (int i = 0, j = 0; i < m->g.n_outputs && j < DEVICE_LOG_NODES - 1; i++) {
        int node = m->g.outputs[i];
        if (node == m->g.loss || node == m->g.output || m->g.nodes[node].shape.nd != 0) continue;
        double v = value[j++];
        const char *name = m->g.output_names[i];
        nj += (size_t)snprintf(json + nj, nj < n ? n - nj : 0, "\"%s\":%.6f,", name, v);
        nl += (size_t)snprintf(log + nl, nl < n ? n - nl : 0, "%s%s %.4f", nl ? ", " : " (", name, v);
        if (nj >= n || nl + 2 >= n) break;
    }
    if (nl && nl + 2 < n) strcat(log, ")");
}

/* The step record's nodes: the loss, then loss_terms' (as many as a record holds). */
static int loss_term_nodes(const Model *m, int *nodes)
{
    int n = 0;
    nodes[n++] = m->g.loss;
    for (int i = 0; i < m->g.n_outputs && n < DEVICE_LOG_NODES; i++) {
        int node = m->g.outputs[i];
        if (node != m->g.loss && node != m->g.output && m->g.nodes[node].shape.nd == 0) nodes[n++] = node;
    }
    return n;
}

/* A one-process run reads its step records (loss, terms, gradient norm) only
   after steps that report or need the model as it is (device.h: deferred runs);
   a synchronous device (the CPU) after every step. */
static int records_due(const TrainArgs *a, const Device *dev, int64_t step, int64_t start)
{
    int64_t done = step + 1;
    return !dev->queued || step == start || done % a->log_every == 0 || done == a->steps ||
           (a->eval_every > 0 && done % a->eval_every == 0) || grid_update_due(a, done) ||
           (a->save_every > 0 && done % a->save_every == 0);
}

/* A grid update is due after `done` steps (0: before the first), from step 0
   on every --grid-update-every steps, before --grid-update-until and the end. */
static int grid_update_due(const TrainArgs *a, int64_t done)
{
    return a->grid_update_every > 0 && done % a->grid_update_every == 0 && done < a->steps &&
           (a->grid_update_until == 0 || done < a->grid_update_until);
}

/* The grid update after `done` steps, on the batch of the step that follows
   (the same batch on a resume: the run stays exact), logged. */
static int grid_update(const TrainArgs *a, Model *m, KanProbe *probe, Objective *obj, int64_t done, FILE *metrics,
                       Progress *bar, char *err, size_t errlen)
{
    if (objective_train_batch(obj, (uint64_t)a->seed, (uint64_t)done, 0, err, errlen)) return -1;
    KanGridOpts o = {.margin = a->grid_margin, .eps = a->grid_eps};
    kan_grid_mode_parse(a->grid_mode, &o.mode);
    KanGridReport r;
    double t0 = now_s();
    if (kan_grid_update_model(m, probe, &o, 1, NULL, NULL, &r, err, errlen)) return -1;
    double ms = 1e3 * (now_s() - t0);
    progress_log(bar, "step %6lld/%lld | grid update of %d layers (%s) | out of grid %.1f%% -> %.1f%% | "
                 "spline change %.2e (%s) | %.0f ms", (long long)done, (long long)a->steps, r.layers, a->grid_mode,
                 100 * r.oog_before, 100 * r.oog_after, r.change, r.worst ? r.worst : "-", ms);
    return metrics_line(metrics, a->out, err, errlen,
                        "{\"step\":%lld,\"grid_update\":{\"layers\":%d,\"mode\":\"%s\",\"out_of_grid_before\":%.6f,"
                        "\"out_of_grid_after\":%.6f,\"spline_change\":%.6e,\"ms\":%.1f}}\n",
                        (long long)done, r.layers, a->grid_mode, r.oog_before, r.oog_after, r.change, ms);
}

int train_run(TrainArgs *a)
{
    char err[16384]; /* a state_dict mismatch lists every name */
    Model m = {0};
    Tokenizer *tok = NULL;
    cJSON *saved = NULL;
    Corpus corpus = {0};
    FILE *metrics = NULL;
    KanProbe probe = {0};
    double *out_of_grid = NULL;
    int status = 1;
    DeviceStepLog *recs = NULL; /* step records read at once */
    Objective obj = {0};
    Table table_train = {0}, table_val = {0};
    int lock = -1;
    char *resume_dir = NULL, *data_abs = NULL, *val_abs = NULL, *init_abs = NULL;
    char *default_out = NULL; /* runs/MODEL when --out is not given */
    /* ---- data parallel: under mpirun each process is a rank (runtime/dist) */
    Dist dist;
    DistZero zero = {0};
    int agreed = 0; /* every rank ends the same way (done, diverged): no abort needed */
    double comm_s = 0, wait_s = 0; /* time in the gradient collectives, and waiting for the slowest rank */
    if (dist_init(&dist, a->dist_timeout, err, sizeof err)) {
        fprintf(stderr, "kanrun train: error: %s\n", err);
        return 1;
    }
    if (dist.active && train_dist_setup_rank(&dist, a, err, sizeof err)) goto fail;
    set_threads(a->threads);

    if (!a->model && !a->resume) {
        fprintf(stderr, "kanrun train: error: give a model (MODEL.kdl) or --resume DIR\n");
        return 1;
    }
    if (a->resume && a->init_from) {
        snprintf(err, sizeof err, "--init-from starts a new run and --resume continues %s: give one of them",
                 a->resume);
        goto fail;
    }
    if (a->resume) { /* the run's folder, or its model.safetensors */
        struct stat st;
        if (stat(a->resume, &st) != 0) {
            snprintf(err, sizeof err, "--resume %s: %s", a->resume, strerror(errno));
            goto fail;
        }
        if (!(resume_dir = run_dir_of(a->resume))) {
            snprintf(err, sizeof err, "--resume %s: not a run folder or a run's model.safetensors", a->resume);
            goto fail;
        }
        a->resume = resume_dir;
        if (!a->out) a->out = a->resume;
        if (a->force && run_same_path(a->resume, a->out)) {
            snprintf(err, sizeof err, "--force starts over and --resume continues %s: give one of them "
                     "(or another --out)", a->resume);
            goto fail;
        }
        /* claimed before it is read: its writer replaces and deletes checkpoints as it saves
           (by rank 0 alone, the writer of a data-parallel job) */
        if (dist.rank == 0 && (lock = run_lock(a->resume, err, sizeof err)) < 0) goto fail;
    }
    /* the training state records absolute paths: a resume from elsewhere finds them */
    if (a->data && (data_abs = realpath(a->data, NULL))) a->data = data_abs;
    if (a->val && (val_abs = realpath(a->val, NULL))) a->val = val_abs;
    if (a->init_from && (init_abs = realpath(a->init_from, NULL))) a->init_from = init_abs;
    if (setup_model(a, &m, &tok, &saved, err, sizeof err)) goto fail;
    char *state_path = a->resume ? ckpt_optimizer_path(a->resume, m.dev->step) : NULL;
    int bad_state = resolve_args(a, saved, state_path, err, sizeof err);
    free(state_path);
    if (bad_state) goto fail;
    if (!a->data) {
        snprintf(err, sizeof err, "no training data: give --data PATH (a text file or a folder)");
        goto fail;
    }
    if (!a->out) {
        const char *base = strrchr(m.path, '/');
        base = base ? base + 1 : m.path;
        char *name = xstrdup(base), *dot = strrchr(name, '.');
        if (dot) *dot = 0;
        a->out = default_out = xasprintf("runs/%s", name); /* lives for the whole run */
        free(name);
    }
    if (dist.rank == 0 && (lock = claim_out(a, m.dev->step, lock, err, sizeof err)) < 0) goto fail;
    ObjKind kind;
    objective_parse(a->objective, &kind, err, sizeof err); /* checked by resolve_args */
    if (kind == OBJ_TABLE) {
        if (objective_load_tables(a->data, a->val, &table_train, &table_val, err, sizeof err) ||
            objective_open_table(&obj, &m, &table_train, &table_val, err, sizeof err))
            goto fail;
        goto data_ready;
    }
    if (objective_open_tokens(&obj, &m, kind, tok_vocab_size(tok), a->mask_prob, dist.rank == 0 ? stderr : NULL,
                              err, sizeof err))
        goto fail;
    if (obj.io.vocab != tok_vocab_size(tok) && obj.io.vocab < tok_vocab_size(tok)) {
        snprintf(err, sizeof err, "the model's vocabulary (%lld) is smaller than the tokenizer's (%d)",
                 (long long)obj.io.vocab, tok_vocab_size(tok));
        goto fail;
    }
    char *cache = xasprintf("%s/tokens", a->out);
    int crc = 0;
    if (dist.rank == 0) crc = corpus_prepare(a->data, a->val, tok, cache, &corpus, err, sizeof err);
    if (dist.active) { /* rank 0 writes the token cache, the others read it once it is there */
        int r0 = train_dist_rank0_outcome(&dist, crc != 0, err, sizeof err);
        if (r0 < 0) goto fail;
        if (r0 > 0) { /* every rank stops: rank 0 said why */
            agreed = 1;
            if (dist.rank > 0) set_err(err, sizeof err, "rank 0 could not prepare the training data");
            goto fail;
        }
        if (dist.rank > 0) crc = corpus_prepare_readonly(a->data, a->val, tok, cache, &corpus, err, sizeof err);
    }
    free(cache);
    if (crc || objective_set_corpus(&obj, &corpus, err, sizeof err)) goto fail;
data_ready:;
    /* a step's rows and their length: sequences of block_size tokens, or table rows */
    int64_t rows = obj.batch, block = kind == OBJ_TABLE ? 1 : obj.io.block;

    if (!a->resume && !a->init_from && model_init_params(&m, (uint64_t)a->seed, err, sizeof err)) goto fail;
    Device *dev = m.dev;
    dev->seed = (uint64_t)a->seed;
    if (dist.rank > 0) /* dropout: other masks on every rank (rank 0 keeps a one-process run's) */
        dev->seed ^= 0x9E3779B97F4A7C15ULL * (uint64_t)dist.rank;
    dev->training = 1;
    dev->opt.lr = a->lr;
    dev->opt.weight_decay = a->weight_decay;
    dev->opt.clip = a->clip;
    int64_t start = dev->step;
    if (start >= a->steps) {
        fprintf(stderr, "kanrun train: the run is at step %lld already; --steps %lld adds nothing\n",
                (long long)start, (long long)a->steps);
        status = 0;
        agreed = 1;
        goto done;
    }
    if (train_dist_setup_model(&dist, &zero, a, &m, err, sizeof err)) goto fail;
    if (dist.rank == 0 && !(metrics = open_metrics(a->out, start, err, sizeof err))) goto fail;
    int64_t params = 0;
    for (int i = 0; i < m.g.n; i++)
        if (m.g.nodes[i].op == OP_PARAM) params += shape_numel(&m.g.nodes[i].shape);
    if (kind == OBJ_TABLE)
        printf("kanrun: %s, %lld parameters, batch %lld rows, table %s: %zu train / %zu val rows\n", m.path,
               (long long)params, (long long)rows, a->data, table_train.nrows, table_val.nrows);
    else
        printf("kanrun: %s, %lld parameters, batch %lld x %lld, %s tokens %zu train / %zu val (%s)%s\n",
               m.path, (long long)params, (long long)rows, (long long)block, tok_spec(tok),
               corpus.n_train, corpus.n_val, corpus.cache_status, kind == OBJ_MLM ? ", objective mlm" : "");
    if (kind == OBJ_MLM)
        printf("kanrun: masked LM: %.3g of positions chosen (80%% mask id %d, 10%% random, 10%% kept)\n",
               a->mask_prob, (int)obj.mask_id);
    printf("kanrun: steps %lld..%lld, lr %.3g (warmup %lld, cosine to %.3g), out %s\n",
           (long long)start, (long long)a->steps, a->lr, (long long)a->warmup, a->min_lr, a->out);
    if (a->init_from) printf("kanrun: initialised from %s\n", a->init_from);
    double fwd_flops, step_flops; /* per token: the model FLOPs of the step line's FLOP/s and MFU */
    plan_flops(&m.plan, rows * block, &fwd_flops, &step_flops);
    Peak peak;
    if (peak_resolve(&peak, a->peak_tflops, a->measure_peak, !strcmp(dev->name, "cuda"), dev->gpu_name,
                     peak_run_precision(), err, sizeof err))
        goto fail;
    if (peak.flops > 0)
        printf("kanrun: %.4g FLOPs per token per step; MFU against %.4g TFLOP/s (%s)\n", step_flops,
               peak.flops / 1e12, peak.source);
    else
        printf("kanrun: %.4g FLOPs per token per step; %s\n", step_flops, peak.note);
    if (dist.active) train_dist_print_start(&dist, &zero, &m, rows, block);
    fflush(stdout);

    size_t ntok = (size_t)(rows * block);
    double step_tokens = (double)ntok * dist.size; /* the global batch's */
    int adam = m.g.n - 1; /* the optimizer's last node */
    int gnorm = adam - 1; /* the gradient norm: data-parallel ranks average the gradients before it */
    if (m.g.nodes[gnorm].op != OP_GRAD_NORM || m.g.nodes[adam].op != OP_ADAMW)
        die("train: the step does not end with the gradient norm and AdamW");
    kan_probe_init(&probe, &m); /* the out-of-grid fraction at each evaluation, the grid update */
    out_of_grid = xcalloc((size_t)probe.n + 1, sizeof *out_of_grid);
    if (a->grid_update_every > 0) {
        int splines = 0;
        for (int i = 0; i < probe.n; i++) splines += m.g.nodes[probe.layers[i].node].a.basis == KAN_BASIS_BSPLINE;
        if (!splines) {
            snprintf(err, sizeof err, "--grid-update-every %lld: %s has no B-spline KAN layer to update",
                     (long long)a->grid_update_every, m.path);
            goto fail;
        }
    }
    Progress bar;
    progress_start(&bar, start, a->steps, a->quiet);
    int64_t last_saved = start;
    if (start == 0 && grid_update_due(a, 0) &&
        grid_update(a, &m, &probe, &obj, 0, metrics, &bar, err, sizeof err))
        goto stop_kept;
    /* one process: each step queued whole (forward, backward, norm, AdamW), its
       record (loss, terms, norm) read at the steps records_due names */
    if (!dist.active) {
        dev->deferred = 1;
        dev->n_log_nodes = loss_term_nodes(&m, dev->log_nodes);
    }
    int64_t max_recs = (a->log_every < a->steps - start ? a->log_every : a->steps - start) + 1;
    recs = xmalloc(sizeof *recs * (size_t)max_recs);
    double span_t0 = -1; /* when the steps whose records are unread began */
    for (int64_t step = start; step < a->steps; step++) {
        double t0 = now_s();
        if (span_t0 < 0) span_t0 = t0;
        dev->opt.lr = train_lr(step, a->steps, a->warmup, a->lr, a->min_lr);
        /* this rank's rows of the global batch (all of it in one process) */
        if (objective_train_batch(&obj, (uint64_t)a->seed, (uint64_t)step, (int64_t)dist.rank * rows, err,
                                  sizeof err))
            goto fail;
        int nrec = 1;
        if (!dist.active) {
            dev->ops->run(dev, 0, adam + 1); /* the whole step */
            if (!records_due(a, dev, step, start)) continue;
            nrec = device_read_log(dev, recs, (int)max_recs);
            if (nrec < 1 || recs[nrec - 1].step != step)
                die("train: the device kept %d step records, the last of step %lld, after step %lld", nrec,
                    nrec > 0 ? (long long)recs[nrec - 1].step : -1LL, (long long)step);
        } else { /* ---- data parallel: the ranks' mean gradient and loss, then its norm */
            double loss;
            dist.step = step;
            dev->ops->run(dev, 0, gnorm);
            model_read_value(&m, m.g.loss, &loss);
            double c0 = now_s(); /* the tiny loss mean first: it waits for the slowest rank */
            if (dist_mean(&dist, &loss, 1, err, sizeof err)) goto fail;
            double c1 = now_s();
            if (dist_average_grads(&dist, dev, err, sizeof err)) goto fail;
            wait_s += c1 - c0;
            comm_s += now_s() - c1;
            dev->ops->run(dev, gnorm, adam);
            int nodes[DEVICE_LOG_NODES];
            int nn = loss_term_nodes(&m, nodes);
            recs[0] = (DeviceStepLog){.step = step, .value = {loss}, .grad_norm = dev->grad_norm};
            for (int j = 1; j < nn; j++) model_read_value(&m, nodes[j], &recs[0].value[j]);
        }
        /* wall time per step: the span since the last records, evenly */
        double span_ms = 1e3 * (now_s() - span_t0) / nrec;
        span_t0 = -1;
        for (int r = 0; r < nrec; r++) {
            int64_t rstep = recs[r].step, done_steps = rstep + 1;
            double loss = recs[r].value[0], norm = recs[r].grad_norm, lr;
            lr = train_lr(rstep, a->steps, a->warmup, a->lr, a->min_lr);
            double applied = applied_grad_norm(norm, a->clip);
            if (!isfinite(loss) || !isfinite(norm) || applied > TRAIN_MAX_GRAD_NORM) {
                /* a queued run found it at this record: the steps after it ran, unreported and unsaved */
                progress_end(&bar);
                char why[256];
                if (isfinite(loss) && isfinite(norm))
                    snprintf(why, sizeof why, "the gradient norm is %.3g at step %lld (loss %g), past %.3g, "
                             "the most AdamW's float32 moments can take", applied, (long long)done_steps,
                             loss, TRAIN_MAX_GRAD_NORM);
                else
                    snprintf(why, sizeof why, "the loss is %s at step %lld (gradient norm %g)",
                             isfinite(loss) ? "finite but the gradient is not" : (isnan(loss) ? "NaN" : "infinite"),
                             (long long)done_steps, norm);
                /* the mean loss and the norm of the mean gradient are the same on every rank:
                   all stop, rank 0 says why */
                status = dist.rank == 0 ? stop_diverged(a, why, last_saved) : 3;
                agreed = 1;
                goto done;
            }
            if (zero.active) { /* ZeRO-1: AdamW on this rank's slice, the slices all-gathered */
                double c0 = now_s();
                if (dist_zero_step(&dist, &zero, dev, err, sizeof err)) goto fail;
                comm_s += now_s() - c0;
            } else if (dist.active) {
                dev->ops->run(dev, adam, adam + 1); /* clip + AdamW */
            }
            double ms = dist.active ? 1e3 * (now_s() - t0) : span_ms;
            char json_terms[512], log_terms[512], flops_json[128], flops_log[128];
            loss_terms(&m, recs[r].value + 1, json_terms, log_terms, sizeof json_terms);
            /* FLOP/s and MFU per rank (one device's share); tok/s of the global batch */
            peak_step_terms(&peak, step_flops * (double)ntok / (ms / 1e3), flops_log, flops_json, sizeof flops_log);
            if (metrics_line(metrics, a->out, err, sizeof err,
                             "{\"step\":%lld,\"loss\":%.6f,%s\"lr\":%.6e,\"grad_norm\":%.6f,\"ms\":%.3f,"
                             "%s\"tok_s\":%.1f}\n",
                             (long long)done_steps, loss, json_terms, lr, norm, ms, flops_json,
                             step_tokens / (ms / 1e3)))
                goto stop_kept;
            if (done_steps % a->log_every == 0 || done_steps == a->steps || rstep == start)
                progress_log(&bar, "step %6lld/%lld | loss %.4f%s | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s%s",
                             (long long)done_steps, (long long)a->steps, loss, log_terms, lr, norm, ms,
                             step_tokens / (ms / 1e3), flops_log);
            progress_update(&bar, done_steps, loss, ms);
        }
        int64_t done_steps = step + 1;
        if (a->eval_every > 0 && (done_steps % a->eval_every == 0 || done_steps == a->steps)) {
            ObjMetrics mt;
            if (objective_evaluate(&obj, (uint64_t)a->seed, a->eval_batches, &probe, out_of_grid, &mt, err,
                                   sizeof err))
                goto fail;
            char grid_line[256], grid_json[8192], val_line[256], val_json[256];
            kan_probe_report(&probe, out_of_grid, grid_line, grid_json, sizeof grid_json);
            objective_metrics_text(&obj, &mt, val_line, sizeof val_line, val_json, sizeof val_json);
            progress_log(&bar, "step %6lld/%lld%s%s%s", (long long)done_steps, (long long)a->steps, val_line,
                         *grid_line ? " | " : "", grid_line);
            if (metrics_line(metrics, a->out, err, sizeof err, "{\"step\":%lld,%s%s}\n", (long long)done_steps,
                             grid_json, val_json))
                goto stop_kept;
        }
        /* before the checkpoint, which then holds the new grids */
        if (grid_update_due(a, done_steps) &&
            grid_update(a, &m, &probe, &obj, done_steps, metrics, &bar, err, sizeof err))
            goto stop_kept;
        if (dist.active && a->check_every > 0 && done_steps % a->check_every == 0 &&
            train_dist_check_weights(&dist, dev, err, sizeof err))
            goto fail;
        if ((a->save_every > 0 && done_steps % a->save_every == 0) || done_steps == a->steps) {
            if (zero.active && dist_zero_gather(&dist, &zero, dev, err, sizeof err)) goto fail;
            int rc = 0;
            if (dist.rank == 0) { /* rank 0 alone writes */
                cJSON *st = state_json(a, obj.mask_id);
                rc = ckpt_save(a->out, &m, tok, st, err, sizeof err);
                cJSON_Delete(st);
            }
            if (zero.active) dist_zero_release(&zero, dev);
            if (dist.active) { /* every rank learns how rank 0's save went, and stops with it */
                int r0 = train_dist_rank0_outcome(&dist, rc == CKPT_REFUSED ? 2 : rc != 0, err, sizeof err);
                if (r0 < 0) goto fail;
                agreed = r0 > 0;
                if (r0 > 0 && dist.rank > 0) {
                    fprintf(stderr, "kanrun train: rank %d: stopping: rank 0 could not write the checkpoint of "
                            "step %lld\n", dist.rank, (long long)done_steps);
                    status = r0 == 2 ? 3 : 1;
                    goto done;
                }
            }
            if (rc == CKPT_REFUSED) { /* the update made weights no checkpoint may hold */
                progress_end(&bar);
                status = stop_diverged(a, err, last_saved);
                goto done;
            }
            if (rc) goto fail;
            last_saved = done_steps;
            if (dist.active) { /* what a rank stopped by the launcher reports */
                char kept[512];
                kept_text(a, last_saved, kept, sizeof kept);
                train_dist_note_checkpoint(&dist, kept);
            }
        }
    }
    progress_end(&bar);
    if (dist.active) train_dist_print_end(&dist, zero.active, comm_s, wait_s, a->steps - start);
    printf("kanrun: done, checkpoint in %s (step %lld)\n", a->out, (long long)last_saved);
    status = 0;
    agreed = 1;
    goto done;
stop_kept: { /* the run stops (a metrics line or a grid update failed); its checkpoint stays */
    progress_end(&bar);
    char kept[512];
    kept_text(a, last_saved, kept, sizeof kept);
    size_t n = strlen(err);
    snprintf(err + n, sizeof err - n, "; stopping: %s", kept);
}
fail:
    if (dist.size > 1) fprintf(stderr, "kanrun train: rank %d: error: %s\n", dist.rank, err);
    else fprintf(stderr, "kanrun train: error: %s\n", err);
    status = 1;
done:
    if (metrics && fclose(metrics) != 0 && status == 0) {
        fprintf(stderr, "kanrun train: error: %s/metrics.jsonl: cannot write: %s\n", a->out, strerror(errno));
        status = 1;
    }
    if (lock >= 0) close(lock);
    free(resume_dir);
    free(data_abs);
    free(val_abs);
    free(init_abs);
    kan_probe_free(&probe);
    free(out_of_grid);
    free(recs);
    objective_free(&obj);
    table_free(&table_train);
    table_free(&table_val);
    corpus_free(&corpus);
    cJSON_Delete(saved);
    if (tok) tok_close(tok);
    model_free(&m);
    if (default_out) a->out = NULL;
    free(default_out);
    dist_zero_free(&zero);
    if (dist.size > 1 && !agreed) dist_abort(&dist, status); /* this rank alone stops: the job stops */
    dist_finalize(&dist);
    return status;
}

int train_main(int argc, char **argv)
{
    TrainArgs a;
    train_args_init(&a);
    int rc = train_parse_args(&a, argc, argv);
    if (rc == 0) rc = train_run(&a);
    else rc = rc > 0 ? 0 : 2;
    config_sets_free(&a.sets);
    return rc;
}
