/* kanc: the model compiler's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "autodiff.h"
#include "config.h"
#include "frontend.h"
#include "plan.h"
#include "util.h"

static const char USAGE[] =
    "usage: kanc MODEL.kdl [options]\n"
    "\n"
    "Compiles a model description into a training step.\n"
    "\n"
    "  --set NAME=VALUE   override a hyperparameter (repeatable); VALUE is a .kdl\n"
    "                     expression: 6, 0.1, [-2, 2], true\n"
    "  --batch B          the same as --set batch=B\n"
    "  --preset NAME      hyperparameters from models/presets/NAME.set (gpt-nano,\n"
    "                     gpt-micro, gpt-mini) or a .set file; a later --set wins\n"
    "  --report           print parameters, arena peak, FLOPs per token and the\n"
    "                     step's op list\n"
    "  --dump-graph       print the training graph node by node\n"
    "  --forward-only     report or dump the forward graph without the backward\n"
    "  -o FILE.cubin      compile the training step to a CUDA cubin (NVRTC; no GPU\n"
    "                     needed) that embeds its plan: `kanrun info FILE.cubin`\n"
    "  --arch sm_XX       the cubin's GPU architecture: sm_90 (default), sm_80,\n"
    "                     sm_86, sm_89\n"
    "  --tokenizer SPEC   the tokenizer the artifact expects (default: gpt2 for a\n"
    "                     50257-token vocabulary, else bytes)\n"
    "  --emit-source FILE also write the generated CUDA source (with -o: exactly\n"
    "                     what NVRTC compiled)\n"
    "  -h, --help         this text\n";

int main(int argc, char **argv)
{
    const char *path = NULL;
    int report = 0, dump = 0, forward_only = 0;
    const char *out_path = NULL, *arch = NULL, *tokenizer = NULL, *emit_source = NULL;
    ConfigSets cs = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--preset") && i + 1 < argc) {
            if (config_load_preset(argv[++i], &cs)) return 2;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            if (config_parse_set(argv[++i], &cs)) {
                fprintf(stderr, "kanc: error: --set needs NAME=VALUE, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--batch") && i + 1 < argc) {
            config_sets_add(&cs, "batch", argv[++i], 0);
        } else if (!strcmp(a, "--report")) {
            report = 1;
        } else if (!strcmp(a, "--dump-graph")) {
            dump = 1;
        } else if (!strcmp(a, "--forward-only")) {
            forward_only = 1;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--arch") && i + 1 < argc) {
            arch = argv[++i];
        } else if (!strcmp(a, "--tokenizer") && i + 1 < argc) {
            tokenizer = argv[++i];
        } else if (!strcmp(a, "--emit-source") && i + 1 < argc) {
            emit_source = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kanc: error: unknown option '%s'\n%s", a, USAGE);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kanc: error: one model file at a time ('%s' and '%s')\n", path, a);
            return 2;
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (out_path || emit_source) { /* the CUDA artifact (runtime/artifact.h) */
        ArtifactOptions ao = {.model_path = path, .sets = cs.sets, .nsets = cs.n, .arch = arch,
                              .tokenizer = tokenizer, .out_path = out_path,
                              .emit_source = emit_source, .verbose = 1};
        int arc = artifact_compile(&ao, stderr);
        config_sets_free(&cs);
        return arc;
    }
    if (arch || tokenizer) {
        fprintf(stderr, "kanc: error: --arch and --tokenizer go with -o FILE.cubin\n");
        config_sets_free(&cs);
        return 2;
    }
    size_t len;
    char *src = read_file(path, &len);
    if (!src) {
        perror(path);
        return 1;
    }
    Graph g;
    graph_init(&g);
    KdlParams params = {0};
    int rc = 1;
    if (kdl_compile(path, src, len, cs.sets, cs.n, &g, &params, stderr)) goto out;
    g.n_forward = g.n;
    char err[256];
    if (!forward_only && g.loss >= 0) {
        if (autodiff(&g, g.loss, -1, 0, err, sizeof err)) {
            fprintf(stderr, "%s: error: %s\n", path, err);
            goto out;
        }
        autodiff_add_optimizer(&g);
    }
    /* tokens of one step: the ids of the first token input, or the rows of a float input */
    int64_t tokens = 0;
    for (int i = 0; i < g.n && !tokens; i++) {
        const GNode *n = &g.nodes[i];
        if (n->op == OP_INPUT) tokens = n->dtype == DT_I32 ? shape_numel(&n->shape) : shape_rows(&n->shape);
    }
    if (dump) graph_dump(&g, stdout);
    if (report) {
        Plan p;
        plan_build(&p, &g, 4);
        printf("model:           %s\n", path);
        for (int i = 0; i < params.n; i++)
            printf("%s%s = %s", i ? ", " : "hyperparameters: ", params.names[i], params.values[i]);
        printf("\n");
        plan_report(&p, tokens, stdout);
        plan_free(&p);
    }
    if (!dump && !report) printf("%s: ok (%d nodes)\n", path, g.n);
    rc = 0;
out:
    graph_free(&g);
    kdl_params_free(&params);
    config_sets_free(&cs);
    free(src);
    return rc;
}
