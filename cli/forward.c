/* forward.c: kanrun forward: a model's logits (and loss) on given token ids,
 * the batch a user compares with PyTorch. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "commands.h"
#include "lm.h"
#include "train.h"
#include "util.h"
#include "weights.h"

static const char FORWARD_USAGE[] =
    "usage: kanrun forward RUN --tokens IDS.safetensors -o OUT.safetensors [flags]\n"
    "       kanrun forward MODEL.kdl --init-from FILE --tokens IDS.safetensors -o OUT.safetensors [flags]\n";

static const char FORWARD_EPILOG[] =
    "RUN is a run folder or its model.safetensors. With --init-from, FILE is any\n"
    "safetensors file holding MODEL's state_dict by name (a PyTorch export; minGPT's\n"
    "attn.bias masks ignored), the model built with --set/--preset.\n"
    "\n"
    "IDS holds `idx`, integer token ids [B, T] (I64, as torch writes them), and\n"
    "optionally `targets` of the same shape (-1: ignored). B is any; T at most the\n"
    "model's block_size (shorter rows are padded at the end, which a causal model\n"
    "never sees). OUT gets `logits`, F32 [B, T, V], and with targets `loss`, an F32\n"
    "scalar (shape []): the cross-entropy over every counted position, as PyTorch's\n"
    "F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1). OUT is\n"
    "written atomically. No dropout.\n";

/* an integer tensor of IDS as int64 [B, T]; NULL with a message */
static int64_t *read_ids(const StFile *f, const char *name, const StTensor **out, char *err, size_t errlen)
{
    const StTensor *t = st_find(f, name);
    *out = t;
    if (!t) return NULL;
    char s[96];
    if (t->dtype == ST_F64 || t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 ||
        t->dtype == ST_BOOL) {
        set_err(err, errlen, "%s: '%s' is %s: token ids are integers (I64, as torch.long)", f->path, name,
                st_dtype_name(t->dtype));
        return NULL;
    }
    if (t->rank != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
        set_err(err, errlen, "%s: '%s' has shape %s: token ids are [B, T], B and T at least 1", f->path,
                name, st_shape_str(t, s, sizeof s));
        return NULL;
    }
    int64_t *v = xmalloc((size_t)t->numel * sizeof *v);
    st_read_i64(t, v); /* integer to int64: exact */
    return v;
}

/* the output called "logits", else the first one */
static int logits_node(const Model *m)
{
    for (int i = 0; i < m->g.n_outputs; i++)
        if (!strcmp(m->g.output_names[i], "logits")) return m->g.outputs[i];
    return m->g.output;
}

static int has_noncausal_attention(const Model *m)
{
    for (int i = 0; i < m->g.n_forward; i++)
        if (m->g.nodes[i].op == OP_ATTENTION && !m->g.nodes[i].a.causal) return 1;
    return 0;
}

/* the ids in range: idx in [0, V), targets in [-1, V); -1 with the position */
static int check_ids(const char *file, const char *name, const int64_t *v, int64_t B, int64_t T,
                     int64_t lo, int64_t vocab, char *err, size_t errlen)
{
    for (int64_t i = 0; i < B * T; i++)
        if (v[i] < lo || v[i] >= vocab) {
            set_err(err, errlen, "%s: %s[%lld, %lld] is %lld, outside the model's vocabulary [%lld, %lld)%s",
                    file, name, (long long)(i / T), (long long)(i % T), (long long)v[i], (long long)lo,
                    (long long)vocab, lo < 0 ? " (-1: ignored)" : "");
            return -1;
        }
    return 0;
}

int forward_main(int argc, char **argv)
{
    const char *tokens = NULL, *out = NULL, *init_from = NULL, *device = "cpu";
    int64_t threads = 0;
    WeightsArgs w = {0};
    const CliOpt opts[] = {
        CLI_STR("tokens", &tokens, "IDS", "safetensors with idx [B, T] and optionally targets"),
        {.name = "out", .short_name = 'o', .kind = CLI_KIND_STR, .dst = &out, .arg = "OUT",
         .help = "the safetensors file to write: logits, and loss"},
        CLI_STR("init-from", &init_from, "FILE", "MODEL.kdl's weights: a safetensors state_dict"),
        CLI_CALL("set", config_cli_set, "NAME=VALUE", "with MODEL.kdl: a hyperparameter (repeatable)"),
        CLI_CALL("preset", config_cli_preset, "NAME", "with MODEL.kdl: hyperparameters from a preset"),
        CLI_STR("device", &device, "D", "cpu (default), cuda, emu or auto"),
        CLI_INT("threads", &threads, 0, 4096, "T", "CPU threads (default: all cores)"),
    };
    CliSpec spec = {"kanrun forward", FORWARD_USAGE, FORWARD_EPILOG, opts, CLI_COUNT(opts), 1, 1, &w.sets};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r || !tokens || !out) {
        if (!r)
            fprintf(stderr, "kanrun forward: error: %s\n%s", !tokens ? "--tokens IDS is needed" : "-o OUT is needed",
                    FORWARD_USAGE);
        config_sets_free(&w.sets);
        return r > 0 ? 0 : 2;
    }
    size_t len = strlen(pos[0]);
    if (!init_from && len > 4 && !strcmp(pos[0] + len - 4, ".kdl")) {
        fprintf(stderr, "kanrun forward: error: %s is a model: give its weights with --init-from FILE\n", pos[0]);
        config_sets_free(&w.sets);
        return 2;
    }
    w.model = init_from ? pos[0] : NULL;
    w.weights = init_from ? init_from : pos[0];
    set_threads((int)threads);

    char err[16384];
    StFile ids = {0};
    CkptInfo info = {0};
    Model m = {0};
    int64_t *x = NULL, *y = NULL;
    int32_t *bx = NULL, *by = NULL;
    float *logits = NULL, *chunk = NULL;
    int rc = 1;
    const StTensor *tx, *ty;
    if (st_open(&ids, tokens, err, sizeof err)) goto fail;
    for (int i = 0; i < st_num_tensors(&ids); i++) {
        const char *nm = st_tensor_at(&ids, i)->name;
        if (strcmp(nm, "idx") && strcmp(nm, "targets")) {
            set_err(err, sizeof err, "%s: unexpected tensor '%s' (the file holds idx and optionally targets)",
                    tokens, nm);
            goto fail;
        }
    }
    if (!(x = read_ids(&ids, "idx", &tx, err, sizeof err))) {
        if (!tx) set_err(err, sizeof err, "%s: no 'idx' (token ids [B, T])", tokens);
        goto fail;
    }
    y = read_ids(&ids, "targets", &ty, err, sizeof err);
    if (ty && !y) goto fail;
    int64_t B = tx->shape[0], T = tx->shape[1];
    if (ty && (ty->shape[0] != B || ty->shape[1] != T)) {
        char a[96], b[96];
        set_err(err, sizeof err, "%s: 'targets' has shape %s, 'idx' %s: they must be the same", tokens,
                st_shape_str(ty, a, sizeof a), st_shape_str(tx, b, sizeof b));
        goto fail;
    }
    if (weights_open(&w, NULL, device, "kanrun forward", &m, &info, NULL, err, sizeof err)) goto fail;
    LmIo io;
    if (lm_find_io(&m, &io, err, sizeof err)) goto fail;
    int lg = logits_node(&m);
    const GShape *ls = lg >= 0 ? &m.g.nodes[lg].shape : NULL;
    if (!ls || ls->nd != 3 || ls->d[0] != io.batch || ls->d[1] != io.block) {
        set_err(err, sizeof err, "%s: the model returns no logits [batch, block_size, V]", m.path);
        goto fail;
    }
    int64_t V = ls->d[2], vocab = io.vocab > 0 ? io.vocab : V;
    if (T > io.block) {
        set_err(err, sizeof err, "%s: 'idx' has T = %lld positions, more than the model's block_size %lld",
                tokens, (long long)T, (long long)io.block);
        goto fail;
    }
    if (T < io.block && has_noncausal_attention(&m)) {
        set_err(err, sizeof err, "%s: T = %lld is shorter than block_size %lld, and the model's attention "
                                 "is not causal (it would see the padding): give T = %lld",
                tokens, (long long)T, (long long)io.block, (long long)io.block);
        goto fail;
    }
    if (check_ids(tokens, "idx", x, B, T, 0, vocab, err, sizeof err) ||
        (y && check_ids(tokens, "targets", y, B, T, -1, V, err, sizeof err)))
        goto fail;

    /* batches of the model's compiled batch, padded (token 0, target -1) */
    int64_t nb = io.batch, nt = io.block;
    bx = xmalloc((size_t)(nb * nt) * 4);
    by = xmalloc((size_t)(nb * nt) * 4);
    chunk = xmalloc((size_t)(nb * nt * V) * sizeof *chunk);
    logits = xmalloc((size_t)(B * T * V) * sizeof *logits);
    double loss_sum = 0;
    int64_t counted = 0;
    m.dev->training = 0;
    for (int64_t b0 = 0; b0 < B; b0 += nb) {
        int64_t rows = B - b0 < nb ? B - b0 : nb, count = 0;
        for (int64_t r = 0; r < nb; r++)
            for (int64_t t = 0; t < nt; t++) {
                int in = r < rows && t < T;
                int64_t k = (b0 + r) * T + t;
                bx[r * nt + t] = in ? (int32_t)x[k] : 0;
                by[r * nt + t] = in && y ? (int32_t)y[k] : -1;
                count += by[r * nt + t] != -1;
            }
        if (model_set_tokens(&m, io.idx, bx, err, sizeof err) ||
            model_set_tokens(&m, io.targets, by, err, sizeof err))
            goto fail;
        m.dev->ops->run(m.dev, 0, m.g.n_forward);
        m.dev->ops->read_value(m.dev, lg, chunk);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < T; t++) {
                const float *src = chunk + (r * nt + t) * V;
                for (int64_t v = 0; v < V; v++)
                    if (!isfinite(src[v])) {
                        set_err(err, sizeof err, "the logits at [%lld, %lld] are not finite (%g for id %lld): "
                                "the weights overflow the forward pass",
                                (long long)(b0 + r), (long long)t, src[v], (long long)v);
                        goto fail;
                    }
                memcpy(logits + ((b0 + r) * T + t) * V, src, (size_t)V * sizeof *src);
            }
        if (count) { /* the model's loss is this batch's mean over its counted positions */
            double l;
            model_read_value(&m, m.g.loss, &l);
            loss_sum += l * (double)count;
            counted += count;
        }
    }
    if (y && !counted) {
        set_err(err, sizeof err, "%s: every target is -1 (ignored): there is no loss to compute", tokens);
        goto fail;
    }
    float loss = y ? (float)(loss_sum / (double)counted) : 0;
    if (y && !isfinite(loss)) {
        set_err(err, sizeof err, "the loss is %s: the weights are broken", isnan(loss) ? "NaN" : "infinite");
        goto fail;
    }
    StEntry e[2] = {{.name = "logits", .dtype = ST_F32, .rank = 3, .shape = {B, T, V}, .data = logits},
                    {.name = "loss", .dtype = ST_F32, .rank = 0, .data = &loss}};
    StMeta meta[] = {{"kanc_model", info.model_path}, {"kanc_weights", info.file}, {"kanc_tokens", tokens}};
    if (st_write(out, e, y ? 2 : 1, meta, CLI_COUNT(meta), err, sizeof err)) goto fail;
    if (y)
        printf("kanrun forward: %lld x %lld tokens -> %s: logits [%lld, %lld, %lld], loss %.6f over %lld targets\n",
               (long long)B, (long long)T, out, (long long)B, (long long)T, (long long)V, loss, (long long)counted);
    else
        printf("kanrun forward: %lld x %lld tokens -> %s: logits [%lld, %lld, %lld]\n", (long long)B,
               (long long)T, out, (long long)B, (long long)T, (long long)V);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "kanrun forward: error: %s\n", err);
done:
    free(x);
    free(y);
    free(bx);
    free(by);
    free(chunk);
    free(logits);
    st_close(&ids);
    model_free(&m);
    ckpt_info_free(&info);
    config_sets_free(&w.sets);
    return rc;
}
