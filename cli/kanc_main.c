/* kanc: the model compiler's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "autodiff.h"
#include "cli_opts.h"
#include "config.h"
#include "frontend.h"
#include "match_params.h"
#include "plan.h"
#include "util.h"

static const char USAGE[] =
    "usage: kanc MODEL.kdl [options]\n"
    "\n"
    "Compiles a model description into a training step.\n";

/* --report: the CUDA step at precision prec as kanc -o would generate it: its
   arena (laid out for the precision: attention's P in bf16 under bf16) beside
   the CPU's, and its workspace (the bf16 operand copies of the GEMMs are part
   of it) */
static void report_cuda_step(const Plan *cpu, Graph *g, CudaPrecision prec)
{
    CudaOptions co;
    char err[512];
    CudaProgram prog;
    cuda_options_default(&co);
    co.precision = prec;
    if (cuda_options_from_env(&co, err, sizeof err)) {
        printf("cuda workspace:  not generated (%s)\n", err);
        return;
    }
    Plan p;
    plan_build_for(&p, g, 4, co.precision == CUDA_BF16 && co.use_cublas);
    if (codegen_cuda(&p, &co, &prog, err, sizeof err)) {
        printf("cuda workspace:  not generated (%s)\n", err);
        plan_free(&p);
        return;
    }
    int ng = 0;
    for (int i = 0; i < prog.n_launch; i++) ng += prog.launch[i].kind == LAUNCH_GEMM;
    printf("cuda arena:      %.2f MiB at precision %s%s\n", (double)p.arena_bytes / (1 << 20),
           cuda_precision_name(prog.precision),
           p.arena_bytes < cpu->arena_bytes ? " (attention's P in bf16)" : "");
    printf("cuda workspace:  %.2f MiB at precision %s (%d GEMMs; bf16 operand copies %.2f MiB)\n",
           (double)prog.ws_bytes / (1 << 20), cuda_precision_name(prog.precision), ng,
           (double)prog.ws_cast_bytes / (1 << 20));
    cuda_program_free(&prog);
    plan_free(&p);
}

int main(int argc, char **argv)
{
    int report = 0, dump = 0, forward_only = 0;
    int64_t batch = 0;
    const char *out_path = NULL, *arch = NULL, *tokenizer = NULL, *emit_source = NULL, *kan_kernel = NULL;
    const char *precision = NULL;
    const char *match = NULL, *vary = NULL;
    ConfigSets cs = {0};
    const CliOpt opts[] = {
        CLI_CALL("set", config_cli_set, "NAME=VALUE",
                 "override a hyperparameter (repeatable); VALUE is a\n.kdl expression: 6, 0.1, [-2, 2], true"),
        CLI_INT("batch", &batch, 1, INT32_MAX, "B", "the same as --set batch=B"),
        CLI_CALL("preset", config_cli_preset, "NAME",
                 "hyperparameters from models/presets/NAME.set\n(gpt-nano, gpt-micro, gpt-mini) or a .set file; a\nlater --set wins"),
        CLI_FLAG("report", &report, "print parameters, arena peak, FLOPs per token and\nthe step's op list"),
        CLI_FLAG("dump-graph", &dump, "print the training graph node by node"),
        CLI_FLAG("forward-only", &forward_only, "report or dump the forward graph without the\nbackward"),
        {.short_name = 'o', .kind = CLI_KIND_STR, .dst = &out_path, .arg = "FILE.cubin",
         .help = "compile the training step to a CUDA cubin (NVRTC;\nno GPU needed) that embeds its plan:\n`kanrun info FILE.cubin`"},
        CLI_STR("arch", &arch, "sm_XX", "the cubin's GPU architecture: sm_90 (default),\nsm_80, sm_86, sm_89"),
        CLI_STR("tokenizer", &tokenizer, "SPEC",
                "the tokenizer the artifact expects (default: gpt2\nfor a 50257-token vocabulary, else bytes)"),
        CLI_STR("emit-source", &emit_source, "FILE",
                "also write the generated CUDA source (with -o:\nexactly what NVRTC compiled)"),
        CLI_STR("match-params", &match, "OTHER.kdl",
                "print the value of --vary's hyperparameter that\nbrings the parameter count closest to OTHER's"),
        CLI_STR("vary", &vary, "NAME", "the hyperparameter --match-params scans (default\nn_embd)"),
        CLI_STR("kan-kernel", &kan_kernel, "K",
                "KAN layers as fused kernels, as blocked basis +\ncuBLASLt GEMMs, or auto (default: a cost model\npicks per layer; docs/cuda.md)"),
        CLI_STR("precision", &precision, "P",
                "the GEMM operands of the cubin (and of --report's\nCUDA workspace): bf16 (default; fp32 accumulation)\nor fp32"),
    };
    CliSpec spec = {"kanc", USAGE, NULL, opts, CLI_COUNT(opts), 1, 1, &cs};
    char *pos[1];
    int np, r = cli_parse(&spec, argc - 1, argv + 1, pos, &np);
    if (r) {
        config_sets_free(&cs);
        return r > 0 ? 0 : 2;
    }
    const char *path = pos[0];
    if (batch > 0) config_sets_add_int(&cs, "batch", batch, 0);
    if (out_path || emit_source) { /* the CUDA artifact (runtime/io/artifact.h) */
        ArtifactOptions ao = {.model_path = path, .sets = cs.sets, .nsets = cs.n, .arch = arch,
                              .tokenizer = tokenizer, .out_path = out_path,
                              .emit_source = emit_source, .verbose = 1, .kan_kernel = kan_kernel,
                              .precision = precision};
        int arc = artifact_compile(&ao, stderr);
        config_sets_free(&cs);
        return arc;
    }
    if (vary && !match) {
        fprintf(stderr, "kanc: error: --vary goes with --match-params OTHER.kdl\n");
        config_sets_free(&cs);
        return 2;
    }
    if (match) {
        int mrc = match_params(path, match, vary ? vary : "n_embd", cs.sets, cs.n, stdout, stderr);
        config_sets_free(&cs);
        return mrc;
    }
    CudaPrecision prec = CUDA_BF16;
    if (precision && cuda_precision_parse(precision, &prec)) {
        fprintf(stderr, "kanc: error: --precision %s: expected fp32 or bf16\n", precision);
        config_sets_free(&cs);
        return 2;
    }
    if (arch || tokenizer || kan_kernel || (precision && !report)) {
        fprintf(stderr, "kanc: error: --arch, --tokenizer, --kan-kernel and --precision go with -o FILE.cubin "
                "(--precision also with --report)\n");
        config_sets_free(&cs);
        return 2;
    }
    size_t len;
    char why[256];
    char *src = read_file_why(path, &len, why, sizeof why);
    if (!src) {
        fprintf(stderr, "%s: error: cannot read the model: %s\n", path, why);
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
        report_cuda_step(&p, &g, prec);
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
