/* match_params.c: kanc --match-params: one hyperparameter scanned for equal parameter counts. */
#include "match_params.h"

#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "util.h"

#define MATCH_MAX 1000000 /* the largest value scanned */

int64_t match_count_params(const char *path, const char *src, size_t len, const KdlSet *sets, int nsets,
                           FILE *diag)
{
    Graph g;
    graph_init(&g);
    int64_t n = -1;
    if (!kdl_compile(path, src, len, sets, nsets, &g, NULL, diag)) {
        n = 0;
        for (int i = 0; i < g.n; i++)
            if (g.nodes[i].op == OP_PARAM && g.nodes[i].trainable) n += shape_numel(&g.nodes[i].shape);
    }
    graph_free(&g);
    return n;
}

static char *read_model(const char *path, size_t *len, FILE *diag)
{
    char why[256];
    char *src = read_file_why(path, len, why, sizeof why);
    if (!src) fprintf(diag, "%s: error: cannot read the model: %s\n", path, why);
    return src;
}

static void grouped(int64_t v, char *buf, size_t n)
{
    char d[32];
    int len = snprintf(d, sizeof d, "%lld", (long long)v), o = 0;
    for (int i = 0; i < len && o + 2 < (int)n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = d[i];
    }
    buf[o] = 0;
}

int match_params(const char *model, const char *other, const char *vary, const KdlSet *sets, int nsets,
                 FILE *out, FILE *diag)
{
    size_t mlen, olen;
    char *msrc = read_model(model, &mlen, diag), *osrc = msrc ? read_model(other, &olen, diag) : NULL;
    int rc = 1;
    KdlSet *s = xmalloc(sizeof *s * (size_t)(nsets + 1));
    if (!osrc) goto out;
    for (int i = 0; i < nsets; i++) {
        if (!strcmp(sets[i].name, vary)) {
            fprintf(diag, "kanc: error: --set %s and --match-params --vary %s: the scan sets %s itself\n", vary,
                    vary, vary);
            goto out;
        }
        s[i] = sets[i];
        s[i].soft = 1; /* OTHER takes the overrides it declares (vocabulary, context) */
    }
    int64_t target = match_count_params(other, osrc, olen, s, nsets, diag);
    if (target < 0) goto out;
    /* MODEL must declare `vary` as an integer */
    Graph g;
    graph_init(&g);
    KdlParams kp = {0};
    int bad = kdl_compile(model, msrc, mlen, sets, nsets, &g, &kp, diag);
    const char *v0 = bad ? NULL : kdl_param_get(&kp, vary);
    char *end = NULL;
    long long cur = v0 ? strtoll(v0, &end, 10) : 0;
    int ok = v0 && *end == 0 && end != v0;
    if (!bad && !ok) {
        fprintf(diag, "kanc: error: --vary %s: %s has no integer hyperparameter '%s'%s", vary, model, vary,
                kp.n ? " (it has: " : "\n");
        for (int i = 0; i < kp.n; i++) fprintf(diag, "%s%s%s", i ? ", " : "", kp.names[i], i + 1 == kp.n ? ")\n" : "");
    }
    graph_free(&g);
    kdl_params_free(&kp);
    if (bad || !ok) goto out;
    /* the scan; a refused value is skipped, its diagnostics dropped */
    FILE *quiet = fopen("/dev/null", "w");
    char val[32];
    s[nsets] = (KdlSet){vary, val, 0};
    long long best_v = -1;
    int64_t best_n = -1;
    for (long long v = 1; v <= MATCH_MAX; v++) {
        snprintf(val, sizeof val, "%lld", v);
        int64_t n = match_count_params(model, msrc, mlen, s, nsets + 1, quiet ? quiet : diag);
        if (n < 0) continue;
        if (best_n < 0 || llabs(n - target) < llabs(best_n - target)) best_v = v, best_n = n;
        if (n >= target) break;
    }
    if (quiet) fclose(quiet);
    if (best_n < 0) {
        fprintf(diag, "kanc: error: --vary %s: %s compiles with no value of %s in [1, %d]\n", vary, model, vary,
                MATCH_MAX);
        goto out;
    }
    char a[32], b[32];
    grouped(best_n, a, sizeof a);
    grouped(target, b, sizeof b);
    fprintf(out, "%s = %lld: %s has %s parameters, %s has %s (%+.2f%%; %s is %lld now)\n", vary, best_v, model, a,
            other, b, 100.0 * (double)(best_n - target) / (double)(target ? target : 1), vary, cur);
    rc = 0;
out:
    free(s);
    free(msrc);
    free(osrc);
    return rc;
}
