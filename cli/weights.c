/* weights.c: a reading command's model, from a checkpoint or from MODEL.kdl + a state_dict. */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state_dict.h"
#include "util.h"

void weights_opts(WeightsArgs *w, CliOpt *out)
{
    const CliOpt o[WEIGHTS_NOPTS] = {
        CLI_STR("model", &w->model, "MODEL.kdl",
                "the model whose state_dict FILE holds (a PyTorch\nexport); without it FILE is a kanc checkpoint"),
        CLI_STR("tokenizer", &w->tokenizer, "SPEC", "with --model: bytes (default) or gpt2:DIR"),
        CLI_CALL("set", config_cli_set, "NAME=VALUE", "with --model: a hyperparameter (repeatable)"),
        CLI_CALL("preset", config_cli_preset, "NAME", "with --model: hyperparameters from a preset"),
    };
    memcpy(out, o, sizeof o);
}

/* a folder given as the weights: its model.safetensors */
static char *weights_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return xasprintf("%s/model.safetensors", path);
    return xstrdup(path);
}

static int open_checkpoint(const WeightsArgs *w, const char *batch, const char *device, const char *prog,
                           Model *m, CkptInfo *info, Tokenizer **tok, char *err, size_t errlen)
{
    if (w->sets.n || w->tokenizer) {
        set_err(err, errlen, "%s is a kanc checkpoint, which carries its own hyperparameters and "
                             "tokenizer: --set, --preset and --tokenizer go with a MODEL.kdl", w->weights);
        return -1;
    }
    if (ckpt_info(w->weights, info, err, errlen)) return -1;
    ConfigSets cs;
    ckpt_sets(info, &cs);
    if (batch) config_sets_add(&cs, "batch", batch, 0);
    int rc = model_compile(m, info->model_path, info->source, cs.sets, cs.n, MODEL_FORWARD, 4, device, stderr);
    config_sets_free(&cs);
    if (rc) {
        set_err(err, errlen, "cannot build the model saved in %s", info->file);
        return -1;
    }
    if (ckpt_load(w->weights, m, NULL, err, errlen)) return -1;
    if (!tok) return 0;
    if (!(*tok = tok_open(info->tokenizer, err, errlen))) return -1;
    return ckpt_check_tokenizer(info, *tok, graph_vocab(&m->g, model_input(m, "idx")), prog, stderr, err, errlen);
}

static int open_state_dict(const WeightsArgs *w, const char *batch, const char *device, Model *m,
                           CkptInfo *info, Tokenizer **tok, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    info->model_path = xstrdup(w->model);
    info->tokenizer = xstrdup(w->tokenizer ? w->tokenizer : "bytes");
    info->file = weights_file(w->weights);
    ConfigSets cs = {0};
    if (tok) {
        if (!(*tok = tok_open(info->tokenizer, err, errlen))) return -1;
        /* as kanrun train: the vocabulary follows the tokenizer unless --set */
        config_sets_add_int(&cs, "vocab_size", tok_vocab_size(*tok), 1);
    }
    for (int i = 0; i < w->sets.n; i++) config_sets_add(&cs, w->sets.sets[i].name, w->sets.sets[i].value, 0);
    if (batch) config_sets_add(&cs, "batch", batch, 0);
    int rc = model_compile(m, w->model, NULL, cs.sets, cs.n, MODEL_FORWARD, 4, device, stderr);
    config_sets_free(&cs);
    if (rc) {
        set_err(err, errlen, "cannot build the model %s", w->model);
        return -1;
    }
    if (sd_load(m, info->file, err, errlen)) return -1;
    int64_t vocab = graph_vocab(&m->g, model_input(m, "idx"));
    if (tok && vocab > 0 && tok_vocab_size(*tok) > vocab) {
        set_err(err, errlen, "the model's vocabulary (%lld) is smaller than the tokenizer's (%s: %d ids)",
                (long long)vocab, tok_spec(*tok), tok_vocab_size(*tok));
        return -1;
    }
    return 0;
}

int weights_open(const WeightsArgs *w, const char *batch, const char *device, const char *prog,
                 Model *m, CkptInfo *info, Tokenizer **tok, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    memset(info, 0, sizeof *info);
    if (tok) *tok = NULL;
    int rc = w->model ? open_state_dict(w, batch, device, m, info, tok, err, errlen)
                      : open_checkpoint(w, batch, device, prog, m, info, tok, err, errlen);
    if (rc) {
        if (tok && *tok) tok_close(*tok), *tok = NULL;
        model_free(m);
        ckpt_info_free(info);
    }
    return rc;
}
