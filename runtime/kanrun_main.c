/* kanrun: the runtime's command line (verify; train, eval, sample, encode, bench). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "verify.h"

static const char USAGE[] =
    "usage: kanrun COMMAND ...\n"
    "\n"
    "commands:\n"
    "  verify MODEL.kdl REFERENCE.safetensors [--set NAME=VALUE]... [--tolerance T]\n"
    "      Loads every parameter and buffer from the reference file by name, takes\n"
    "      the hyperparameters from its config (a --set wins), runs the model and\n"
    "      compares every expected tensor: for kind kan_linear y and grad.*; for\n"
    "      kind gpt logits, loss, grad.*, step1.* (one clipped AdamW step) and the\n"
    "      losses over the file's steps. Tolerance: relative error\n"
    "      ||ours - reference|| / ||reference|| <= 1e-4 for every tensor (the\n"
    "      computation runs in float32; the reference is float64).\n"
    "      Exit status 0: all within tolerance; 1: some tensor is not; 2: error.\n";

static int cmd_verify(int argc, char **argv)
{
    const char *model = NULL, *ref = NULL;
    double tol = VERIFY_TOLERANCE;
    ConfigSets cs = {0};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (config_parse_set(argv[++i], &cs)) {
                fprintf(stderr, "kanrun verify: error: --set needs NAME=VALUE, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--tolerance") && i + 1 < argc) {
            tol = atof(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kanrun verify: error: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else if (!ref) {
            ref = argv[i];
        } else {
            fprintf(stderr, "kanrun verify: error: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model || !ref) {
        fputs(USAGE, stderr);
        return 2;
    }
    int rc = verify_run(model, ref, cs.sets, cs.n, tol, stdout);
    config_sets_free(&cs);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "verify")) return cmd_verify(argc - 2, argv + 2);
    fprintf(stderr, "kanrun: error: unknown command '%s'\n%s", argv[1], USAGE);
    return 2;
}
