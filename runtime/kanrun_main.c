/* kanrun: the runtime's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "config.h"
#include "cuda_api.h"
#include "sample.h"
#include "tokenizer.h"
#include "train.h"
#include "util.h"
#include "verify.h"

static const char USAGE[] =
    "usage: kanrun COMMAND ...\n"
    "\n"
    "  train MODEL.kdl --data PATH [flags]   train a model on a text file or folder\n"
    "  train --resume DIR [flags]            continue a run exactly where it stopped\n"
    "  eval DIR --data PATH                  validation loss and perplexity of a checkpoint\n"
    "  sample DIR --prompt TEXT [flags]      generate text from a checkpoint\n"
    "  verify MODEL.kdl REFERENCE.safetensors   compare with the PyTorch reference\n"
    "  bench MODEL.kdl [flags]               training throughput and memory as JSON\n"
    "  info [STEP.cubin]                     a cubin's plan and kernels (kanc -o), or the\n"
    "                                        devices this machine offers\n"
    "  encode --tokenizer SPEC [FILE]        print the token ids of a text\n"
    "  decode --tokenizer SPEC [FILE]        print the text of token ids\n"
    "\n"
    "kanrun COMMAND --help for a command's flags.\n";

static const char TRAIN_USAGE[] =
    "usage: kanrun train MODEL.kdl --data PATH [flags]\n"
    "       kanrun train --resume DIR [--steps N] [flags]\n"
    "\n"
    "  --data PATH         UTF-8 text file or folder of them (tokenized once, cached in OUT/tokens)\n"
    "  --val PATH          validation text (default: the last 10% of the tokens)\n"
    "  --tokenizer SPEC    bytes (default) or gpt2:DIR (DIR/encoder.json, DIR/vocab.bpe);\n"
    "                      the model's vocab_size follows it unless --set\n"
    "  --out DIR           checkpoints, metrics.jsonl, token cache (default runs/MODEL)\n"
    "  --batch B           sequences per step (the model's `batch`)\n"
    "  --steps N           total optimizer steps (default 1000)\n"
    "  --lr LR             peak learning rate (default 3e-4), AdamW betas 0.9/0.95\n"
    "  --warmup N          linear warmup steps (default 100), then cosine decay\n"
    "  --min-lr LR         the cosine's floor (default 3e-5)\n"
    "  --weight-decay WD   on Linear weights and KAN parameters (default 0.1)\n"
    "  --clip C            global gradient-norm clip (default 1.0; 0: none)\n"
    "  --seed S            initialisation, batches and dropout (default 1337)\n"
    "  --eval-every N      validation loss every N steps (default 250; 0: never)\n"
    "  --eval-batches K    fixed validation batches per evaluation (default 20)\n"
    "  --save-every N      checkpoint every N steps (default 500) and at the end\n"
    "  --log-every N       a log line every N steps (default 10)\n"
    "  --set NAME=VALUE    override a model hyperparameter (repeatable)\n"
    "  --preset NAME       hyperparameters from models/presets/NAME.set (gpt-nano,\n"
    "                      gpt-micro, gpt-mini) or a .set file; a later --set wins\n"
    "  --threads T         CPU threads (default: all cores)\n"
    "  --resume DIR        continue from DIR's checkpoint; the run's saved flags apply\n"
    "                      unless given again (e.g. a larger --steps)\n"
    "  --quiet             no per-step output\n"
    "  --device D          auto (default: cuda when there is a GPU, else cpu), cpu,\n"
    "                      cuda, or emu (the CUDA path emulated on the CPU, for\n"
    "                      tests); MODEL may be a cubin from kanc -o\n"
    "\n"
    "Exit status: 0 done, 1 error, 3 stopped on a non-finite loss (the last good\n"
    "checkpoint is kept).\n";

static const char VERIFY_USAGE[] =
    "usage: kanrun verify MODEL.kdl REFERENCE.safetensors [--set NAME=VALUE]... [--tolerance T]\n"
    "                     [--device auto|cpu|cuda|emu]\n"
    "\n"
    "Loads every parameter and buffer from the reference file by name, takes the\n"
    "hyperparameters from its config (a --set wins), runs the model and compares\n"
    "every expected tensor: for kind kan_linear y and grad.*; for kind gpt logits,\n"
    "loss, grad.*, step1.* (one clipped AdamW step) and the losses over the file's\n"
    "steps. Tolerance: relative error ||ours - reference|| / ||reference|| <= 1e-4\n"
    "for every tensor (float32 computation against a float64 reference).\n"
    "Exit status 0: all within tolerance; 1: some tensor is not; 2: error.\n";

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    const char *model = NULL, *ref = NULL, *device = "auto";
    double tol = VERIFY_TOLERANCE;
    ConfigSets cs = {0};
    int rc = 2;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (config_parse_set(argv[++i], &cs)) {
                fprintf(stderr, "kanrun verify: error: --set needs NAME=VALUE, got '%s'\n", argv[i]);
                goto out;
            }
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            device = argv[++i];
        } else if (!strcmp(argv[i], "--tolerance") && i + 1 < argc) {
            char *end;
            tol = strtod(argv[++i], &end);
            if (*end || !(tol > 0)) {
                fprintf(stderr, "kanrun verify: error: --tolerance needs a positive number\n");
                goto out;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kanrun verify: error: unknown option '%s'\n%s", argv[i], VERIFY_USAGE);
            goto out;
        } else if (!model) {
            model = argv[i];
        } else if (!ref) {
            ref = argv[i];
        } else {
            fprintf(stderr, "kanrun verify: error: unexpected argument '%s'\n", argv[i]);
            goto out;
        }
    }
    if (!model || !ref)
        fputs(VERIFY_USAGE, stderr);
    else
        rc = verify_run(model, ref, cs.sets, cs.n, tol, device, stdout);
out:
    config_sets_free(&cs);
    return rc;
}

/* kanrun info STEP.cubin: the embedded plan; kanrun info: the devices */
static int cmd_info(int argc, char **argv)
{
    if (argc > 1 || (argc == 1 && argv[0][0] == '-')) {
        fputs("usage: kanrun info [STEP.cubin]\n", stderr);
        return 2;
    }
    if (argc == 0) return cuda_print_status(stdout);
    Artifact a;
    char err[1024];
    if (artifact_read(&a, argv[0], err, sizeof err)) {
        fprintf(stderr, "kanrun info: error: %s\n", err);
        return 1;
    }
    artifact_print_info(&a, stdout);
    artifact_free(&a);
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    TrainArgs a;
    train_args_init(&a);
    for (int i = 0; i < argc; i++) {
        int r = train_parse_flag(&a, argc, argv, &i);
        if (r < 0) goto bad;
        if (r) continue;
        if (argv[i][0] != '-' && !a.model) {
            a.model = argv[i];
            continue;
        }
        fprintf(stderr, "kanrun train: error: unexpected argument '%s'\n%s", argv[i], TRAIN_USAGE);
        goto bad;
    }
    int rc = train_run(&a);
    config_sets_free(&a.sets);
    return rc;
bad:
    config_sets_free(&a.sets);
    return 2;
}

/* encode / decode: text <-> ids through a tokenizer, stdin or a file */
static int cmd_codec(int argc, char **argv, int encode)
{
    const char *spec = "bytes", *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            spec = argv[++i];
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else {
            fprintf(stderr, "usage: kanrun %s --tokenizer bytes|gpt2:DIR [FILE]\n",
                    encode ? "encode" : "decode");
            return 2;
        }
    }
    char err[512];
    Tokenizer *tok = tok_open(spec, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "kanrun: error: %s\n", err);
        return 1;
    }
    size_t len = 0, cap = 1 << 16;
    char *text;
    if (file) {
        text = read_file(file, &len);
        if (!text) {
            perror(file);
            tok_close(tok);
            return 1;
        }
    } else {
        text = xmalloc(cap);
        size_t got;
        while ((got = fread(text + len, 1, cap - len - 1, stdin)) > 0)
            if ((len += got) + 1 >= cap) text = xrealloc(text, cap *= 2);
        text[len] = 0;
    }
    int rc = 0;
    if (encode) {
        int32_t *ids;
        size_t n;
        if (tok_encode(tok, text, len, &ids, &n)) {
            fprintf(stderr, "kanrun encode: error: %s\n", tok_error(tok));
            rc = 1;
        } else {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            putchar('\n');
            free(ids);
        }
    } else {
        size_t n = 0, capn = 1024;
        int32_t *ids = xmalloc(capn * 4);
        char *p = text, *end;
        for (;;) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (v < 0 || v >= tok_vocab_size(tok)) {
                fprintf(stderr, "kanrun decode: error: id %ld is outside the vocabulary [0, %d)\n", v,
                        tok_vocab_size(tok));
                rc = 1;
                break;
            }
            if (n == capn) ids = xrealloc(ids, (capn *= 2) * 4);
            ids[n++] = (int32_t)v;
            p = end;
        }
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!rc && *p) {
            fprintf(stderr, "kanrun decode: error: not a token id at byte %zu: '%.10s'\n",
                    (size_t)(p - text), p);
            rc = 1;
        }
        if (!rc) {
            size_t blen;
            char *bytes = tok_decode(tok, ids, n, &blen);
            fwrite(bytes, 1, blen, stdout);
            free(bytes);
        }
        free(ids);
    }
    free(text);
    tok_close(tok);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int sub_argc = argc - 2;
    char **sub = argv + 2;
    if (!strcmp(cmd, "train")) {
        if (wants_help(sub_argc, sub)) return fputs(TRAIN_USAGE, stdout), 0;
        return cmd_train(sub_argc, sub);
    }
    if (!strcmp(cmd, "verify")) {
        if (wants_help(sub_argc, sub)) return fputs(VERIFY_USAGE, stdout), 0;
        return cmd_verify(sub_argc, sub);
    }
    if (!strcmp(cmd, "eval")) return eval_run(sub_argc, sub);
    if (!strcmp(cmd, "sample")) return sample_run(sub_argc, sub);
    if (!strcmp(cmd, "bench")) return bench_run(sub_argc, sub);
    if (!strcmp(cmd, "info")) return cmd_info(sub_argc, sub);
    if (!strcmp(cmd, "encode")) return cmd_codec(sub_argc, sub, 1);
    if (!strcmp(cmd, "decode")) return cmd_codec(sub_argc, sub, 0);
    fprintf(stderr, "kanrun: error: unknown command '%s'\n%s", cmd, USAGE);
    return 2;
}
