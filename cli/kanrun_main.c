/* kanrun: the runtime's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "cli_opts.h"
#include "commands.h"
#include "config.h"
#include "cuda_api.h"
#include "tokenizer.h"
#include "util.h"

static const char USAGE[] =
    "usage: kanrun COMMAND ...\n"
    "\n"
    "  train MODEL.kdl --data PATH [flags]   train a model on a text file or folder\n"
    "  train --resume DIR [flags]            continue a run exactly where it stopped\n"
    "  train MODEL.kdl --init-from FILE ...  a new run from a (PyTorch) state_dict\n"
    "  eval DIR --data PATH                  validation loss and perplexity of a checkpoint\n"
    "  sample DIR --prompt TEXT [flags]      generate text from a checkpoint\n"
    "  regrid DIR [--data PATH] [flags]      refit the KAN grids of a checkpoint to its\n"
    "                                        layers' inputs (grid update, once)\n"
    "  forward DIR --tokens IDS -o OUT       logits (and loss) on given token ids, as\n"
    "                                        safetensors (compare with PyTorch)\n"
    "  predict DIR --data ROWS.csv [-o OUT]  a table model's predictions for CSV rows\n"
    "  inspect DIR -o OUT [--data PATH]      a KAN's learned edge functions: CSV, JSON and a\n"
    "                                        PNG of small plots per layer\n"
    "  verify [MODEL.kdl] REFERENCE.safetensors   compare with the PyTorch reference\n"
    "                                        (no model: the one the file's metadata names)\n"
    "  plot RUN [RUN ...] -o FILE.png        training and validation loss against steps\n"
    "  compare RUN RUN ... [-o FILE.png]     a table of runs (params, FLOPs, time, losses);\n"
    "                                        with -o, validation loss by step and by time\n"
    "  bench MODEL.kdl [flags]               training throughput and memory as JSON\n"
    "  info [STEP.cubin]                     a cubin's plan and kernels (kanc -o), or the\n"
    "                                        devices this machine offers\n"
    "  encode --tokenizer SPEC [FILE]        print the token ids of a text\n"
    "  decode --tokenizer SPEC [FILE]        print the text of token ids\n"
    "\n"
    "kanrun COMMAND --help for a command's flags.\n";

/* kanrun info STEP.cubin: the embedded plan; kanrun info: the devices */
static int cmd_info(int argc, char **argv)
{
    CliSpec spec = {"kanrun info", "usage: kanrun info [STEP.cubin]\n",
                    "With a cubin (kanc -o): its plan, parameters and kernels. Without: the CUDA\n"
                    "devices this machine offers, or why there are none.\n",
                    NULL, 0, 0, 1, NULL};
    char *pos[1];
    int np, r = cli_parse(&spec, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    if (np == 0) return cuda_print_status(stdout);
    Artifact a;
    char err[1024];
    if (artifact_read(&a, pos[0], err, sizeof err)) {
        fprintf(stderr, "kanrun info: error: %s\n", err);
        return 1;
    }
    artifact_print_info(&a, stdout);
    artifact_free(&a);
    return 0;
}

/* encode / decode: text <-> ids through a tokenizer, stdin or a file */
static int cmd_codec(int argc, char **argv, int encode)
{
    const char *spec = "bytes", *file = NULL;
    const CliOpt opts[] = {
        CLI_STR("tokenizer", &spec, "SPEC", "bytes (default) or gpt2:DIR (DIR/encoder.json, DIR/vocab.bpe)"),
    };
    CliSpec cs = {encode ? "kanrun encode" : "kanrun decode",
                  encode ? "usage: kanrun encode [--tokenizer SPEC] [FILE]\n"
                         : "usage: kanrun decode [--tokenizer SPEC] [FILE]\n",
                  encode ? "Prints the token ids of FILE (or stdin), separated by spaces.\n"
                         : "Prints the text of the token ids in FILE (or stdin).\n",
                  opts, CLI_COUNT(opts), 0, 1, NULL};
    char *pos[1];
    int np, r = cli_parse(&cs, argc, argv, pos, &np);
    if (r) return r > 0 ? 0 : 2;
    if (np) file = pos[0];
    char err[512];
    Tokenizer *tok = tok_open(spec, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "kanrun: error: %s\n", err);
        return 1;
    }
    size_t len = 0, cap = 1 << 16;
    char *text;
    if (file) {
        char why[256];
        text = read_file_why(file, &len, why, sizeof why);
        if (!text) {
            fprintf(stderr, "kanrun: error: %s: cannot read: %s\n", file, why);
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

static int cmd_encode(int argc, char **argv) { return cmd_codec(argc, argv, 1); }
static int cmd_decode(int argc, char **argv) { return cmd_codec(argc, argv, 0); }

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} COMMANDS[] = {
    {"train", train_main},   {"eval", eval_main},     {"sample", sample_main},
    {"verify", verify_main}, {"bench", bench_main},   {"info", cmd_info},
    {"encode", cmd_encode},  {"decode", cmd_decode},   {"forward", forward_main},
    {"regrid", regrid_main},
    {"inspect", inspect_main}, {"plot", plot_main},   {"compare", compare_main},
    {"predict", predict_main},
};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 2, argv + 2);
    fprintf(stderr, "kanrun: error: unknown command '%s'\n%s", argv[1], USAGE);
    return 2;
}
