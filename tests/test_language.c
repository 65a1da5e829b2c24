/* test_language.c: the .kdl front end (parser, elaborator, diagnostics).
 *
 *  - the shipped models compile with every preset, and their parameter and
 *    buffer names and shapes are exactly those of the PyTorch fixtures;
 *  - golden diagnostics for the broken files in tests/kdl_errors/ (run with
 *    KDL_UPDATE_GOLDEN=1 to rewrite the .err files, then review them);
 *  - every ```kdl block of docs/language.md compiles;
 *  - hyperparameter arithmetic, overrides, scopes and the graph each layer
 *    makes; light fuzzing (prefixes, byte mutations) under a time bound.
 *
 * Fixtures come from $SHARED/fixtures (default ../shared), the repository
 * from $KANC_ROOT (default .).
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "graph.h"
#include "util.h"
#include "test_util.h"

TestSuite(language);

/* ---------------------------------------------------------------- helpers */


static char *slurp(const char *path, size_t *len)
{
    char *s = read_file(path, len);
    cr_assert(s, "cannot read %s", path);
    return s;
}

/* Compiles src; the diagnostics text goes to *diag_out (caller frees). */
static int compile(const char *path, const char *src, size_t len, const KdlSet *sets, int nsets,
                   Graph *g, KdlParams *params, char **diag_out)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    int errors = kdl_compile(path, src, len, sets, nsets, g, params, f);
    fclose(f);
    if (diag_out) *diag_out = buf;
    else free(buf);
    return errors;
}

/* Compiles a string that must be fine; the graph stays in g. */
static void compile_ok(const char *src, const KdlSet *sets, int nsets, Graph *g, KdlParams *p)
{
    char *diag;
    graph_init(g);
    int e = compile("test.kdl", src, strlen(src), sets, nsets, g, p, &diag);
    cr_assert_eq(e, 0, "expected no errors, got %d:\n%s\nsource:\n%s", e, diag, src);
    free(diag);
}

/* Compiles a string that must fail; returns the diagnostics (caller frees). */
static char *compile_err(const char *src, const KdlSet *sets, int nsets)
{
    char *diag;
    Graph g;
    graph_init(&g);
    int e = compile("test.kdl", src, strlen(src), sets, nsets, &g, NULL, &diag);
    cr_assert_gt(e, 0, "expected errors for:\n%s", src);
    cr_assert_eq(g.n, 0, "a failed compile leaves no nodes");
    graph_free(&g);
    return diag;
}

static const char *param_of(const char *src, const KdlSet *sets, int nsets, const char *name)
{
    static char value[256];
    Graph g;
    KdlParams p;
    compile_ok(src, sets, nsets, &g, &p);
    const char *v = kdl_param_get(&p, name);
    cr_assert(v, "no hyperparameter %s", name);
    snprintf(value, sizeof value, "%s", v);
    kdl_params_free(&p);
    graph_free(&g);
    return value;
}

static int find_leaf(const Graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++) {
        GOp op = g->nodes[i].op;
        if ((op == OP_PARAM || op == OP_BUFFER || op == OP_INPUT) && g->nodes[i].name &&
            !strcmp(g->nodes[i].name, name))
            return i;
    }
    return -1;
}

static int count_op(const Graph *g, GOp op)
{
    int n = 0;
    for (int i = 0; i < g->n; i++) n += g->nodes[i].op == op;
    return n;
}

static const char *sh(const GShape *s)
{
    static char buf[4][96];
    static int k;
    k = (k + 1) % 4;
    return shape_str(s, buf[k], sizeof buf[k]);
}

static void assert_shape(const Graph *g, int id, const char *want)
{
    cr_assert_geq(id, 0);
    cr_assert_str_eq(sh(&g->nodes[id].shape), want, "node %d (%s)", id,
                     g->nodes[id].name ? g->nodes[id].name : op_name(g->nodes[id].op));
}

/* ------------------------------------------------------ safetensors fixtures */

/* The JSON header of a .safetensors file (8-byte little-endian length, then
   a JSON object of name -> {dtype, shape, data_offsets} and __metadata__). */
static cJSON *st_header(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open fixture %s (set SHARED to the shared folder)", path);
    unsigned char len8[8];
    cr_assert_eq(fread(len8, 1, 8, f), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    cr_assert_lt(n, (uint64_t)1 << 26);
    char *json = xmalloc(n + 1);
    cr_assert_eq(fread(json, 1, n, f), n);
    fclose(f);
    cJSON *h = cJSON_ParseWithLength(json, n);
    free(json);
    cr_assert(h, "bad safetensors header in %s", path);
    return h;
}

static const char *json_shape(const cJSON *entry)
{
    static char buf[4][96];
    static int k;
    k = (k + 1) % 4;
    size_t at = (size_t)snprintf(buf[k], sizeof buf[k], "[");
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(entry, "shape"))
        at += (size_t)snprintf(buf[k] + at, sizeof buf[k] - at, "%s%lld", i++ ? ", " : "",
                               (long long)d->valuedouble);
    snprintf(buf[k] + at, sizeof buf[k] - at, "]");
    return buf[k];
}

/* A JSON config value as .kdl text (NULL for what .kdl has no literal of). */
static char *json_to_kdl(const cJSON *v)
{
    if (cJSON_IsBool(v)) return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsString(v)) return xasprintf("\"%s\"", v->valuestring);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9e15) return xasprintf("%lld", (long long)d);
        return xasprintf("%.17g", d);
    }
    if (!cJSON_IsArray(v)) return NULL;
    char *s = xstrdup("[");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, v) {
        char *t = json_to_kdl(e);
        if (!t) {
            free(s);
            return NULL;
        }
        char *u = xasprintf("%s%s%s", s, i++ ? ", " : "", t);
        free(s);
        free(t);
        s = u;
    }
    char *u = xasprintf("%s]", s);
    free(s);
    return u;
}

/* Soft --set overrides from a fixture's __metadata__.config. */
static int config_sets(const cJSON *cfg, KdlSet *sets, int cap)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cfg) {
        char *v = json_to_kdl(it);
        if (!v || n == cap) {
            free(v);
            continue;
        }
        sets[n++] = (KdlSet){xstrdup(it->string), v, 1};
    }
    return n;
}

static void free_sets(KdlSet *sets, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)sets[i].name);
        free((char *)sets[i].value);
    }
}

static int is_prefixed(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* Compiles models/<model> with the fixture's config and checks that the
   graph's parameters and buffers are exactly the fixture's state_dict. */
static void check_fixture(const char *model, const char *fixture, const char *const *non_state)
{
    char *fpath = test_fixture_path(fixture), *mpath = test_repo_path(model);
    cJSON *h = st_header(fpath);
    cJSON *meta = cJSON_GetObjectItem(h, "__metadata__");
    cJSON *cfg = cJSON_Parse(cJSON_GetObjectItem(meta, "config")->valuestring);
    cr_assert(cfg);
    KdlSet sets[64];
    int nsets = config_sets(cfg, sets, 64);
    size_t len;
    char *src = slurp(mpath, &len), *diag;
    Graph g;
    graph_init(&g);
    int e = compile(model, src, len, sets, nsets, &g, NULL, &diag);
    cr_assert_eq(e, 0, "%s with the config of %s:\n%s", model, fixture, diag);

    /* every state entry of the file is a leaf of the graph, same shape */
    const cJSON *t;
    int n_state = 0;
    cJSON_ArrayForEach(t, h) {
        const char *name = t->string;
        int skip = !strcmp(name, "__metadata__") || is_prefixed(name, "grad.") ||
                   is_prefixed(name, "step1.");
        for (int i = 0; non_state[i] && !skip; i++) skip = !strcmp(name, non_state[i]);
        if (skip) continue;
        n_state++;
        int id = find_leaf(&g, name);
        cr_expect_geq(id, 0, "%s: '%s' of %s is not in the graph", model, name, fixture);
        if (id < 0) continue;
        cr_expect(g.nodes[id].op == OP_PARAM || g.nodes[id].op == OP_BUFFER);
        cr_expect_str_eq(sh(&g.nodes[id].shape), json_shape(t), "%s: shape of %s", model, name);
    }
    cr_assert_gt(n_state, 0);

    /* every parameter has a gradient in the file (so even names the fixture
       writer dropped, like c_attn.bias, are checked), every buffer is in the
       file but the causal masks; decay follows the reference optimizer */
    const cJSON *decay = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "optimizer"), "decay");
    for (int i = 0; i < g.n; i++) {
        const GNode *n = &g.nodes[i];
        if (n->op == OP_PARAM) {
            char *gname = xasprintf("grad.%s", n->name);
            const cJSON *ge = cJSON_GetObjectItem(h, gname);
            cr_expect(ge, "%s: parameter %s has no gradient in %s", model, n->name, fixture);
            if (ge) cr_expect_str_eq(sh(&n->shape), json_shape(ge), "%s: shape of %s", model, gname);
            free(gname);
            if (decay) {
                int listed = 0;
                const cJSON *d;
                cJSON_ArrayForEach(d, decay) listed |= !strcmp(d->valuestring, n->name);
                cr_expect_eq(n->decay, listed, "%s: decay of %s", model, n->name);
            }
        } else if (n->op == OP_BUFFER) {
            int mask = n->init == INIT_TRIL && n->optional;
            cr_expect(mask || cJSON_GetObjectItem(h, n->name), "%s: buffer %s is not in %s", model,
                      n->name, fixture);
        } else if (n->op == OP_INPUT) {
            const cJSON *in = cJSON_GetObjectItem(h, n->name);
            cr_expect(in, "%s: input %s is not in %s", model, n->name, fixture);
            if (in) cr_expect_str_eq(sh(&n->shape), json_shape(in), "input %s", n->name);
        }
    }
    free(diag);
    free(src);
    graph_free(&g);
    free_sets(sets, nsets);
    cJSON_Delete(cfg);
    cJSON_Delete(h);
    free(fpath);
    free(mpath);
}

static const char *const GPT_NON_STATE[] = {"idx", "targets", "logits", "loss", "losses", NULL};
static const char *const KAN_NON_STATE[] = {"x", "dy", "y", "bases", NULL};

Test(language, fixture_names_kansformers)
{
    check_fixture("models/kansformers.kdl", "gpt_kansformers.safetensors", GPT_NON_STATE);
}

Test(language, fixture_names_hybrid)
{
    check_fixture("models/hybrid.kdl", "gpt_hybrid.safetensors", GPT_NON_STATE);
}

Test(language, fixture_names_mingpt)
{
    check_fixture("models/mingpt.kdl", "gpt_mlp.safetensors", GPT_NON_STATE);
}

Test(language, fixture_names_kan_linear)
{
    static const char *const files[] = {"kan_linear_default.safetensors",
                                        "kan_linear_g8k2_3d.safetensors",
                                        "kan_linear_k1.safetensors",
                                        "kan_linear_nonuniform.safetensors"};
    for (int i = 0; i < 4; i++) check_fixture("models/kan-linear.kdl", files[i], KAN_NON_STATE);
}

/* the GPT fixtures' outputs: logits [B, T, V] and a scalar loss */
Test(language, gpt_outputs)
{
    static const char *const models[] = {"models/kansformers.kdl", "models/hybrid.kdl",
                                         "models/mingpt.kdl"};
    for (int m = 0; m < 3; m++) {
        char *path = test_repo_path(models[m]);
        size_t len;
        char *src = slurp(path, &len);
        KdlSet sets[] = {{"batch", "3", 0}, {"block_size", "8", 0}, {"vocab_size", "32", 0}};
        Graph g;
        compile_ok(src, sets, 3, &g, NULL);
        cr_assert_eq(g.n_outputs, 2);
        cr_assert_str_eq(g.output_names[0], "logits");
        cr_assert_str_eq(g.output_names[1], "loss");
        cr_assert_eq(g.output, g.outputs[0]);
        cr_assert_eq(g.loss, g.outputs[1]);
        assert_shape(&g, g.output, "[3, 8, 32]");
        assert_shape(&g, g.loss, "[]");
        cr_assert_eq(g.nodes[g.loss].op, OP_CROSS_ENTROPY);
        cr_assert_eq(g.n_forward, g.n);
        for (int i = 0; i < g.n; i++) cr_assert_gt(g.nodes[i].src_line, 0, "node %d has no line", i);
        graph_free(&g);
        free(src);
        free(path);
    }
}

/* ------------------------------------------------------ models x presets */

static char **list_dir(const char *dir, const char *suffix, int *n)
{
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    char **names = NULL;
    *n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (l <= s || strcmp(e->d_name + l - s, suffix)) continue;
        names = xrealloc(names, (size_t)(*n + 1) * sizeof *names);
        names[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < *n; i++) /* sorted, for a stable order */
        for (int j = i + 1; j < *n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    return names;
}

static void free_list(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

Test(language, models_compile_with_every_preset)
{
    char *mdir = test_repo_path("models"), *pdir = test_repo_path("models/presets");
    int nm, np;
    char **models = list_dir(mdir, ".kdl", &nm), **presets = list_dir(pdir, ".set", &np);
    cr_assert_geq(nm, 4);
    cr_assert_geq(np, 3);
    for (int m = 0; m < nm; m++) {
        char *mpath = xasprintf("%s/%s", mdir, models[m]);
        size_t len;
        char *src = slurp(mpath, &len);
        int gpt = strncmp(models[m], "kan-", 4) != 0; /* the one-layer models */
        for (int p = -1; p < np; p++) {
            KdlSet *sets = NULL;
            int nsets = 0;
            if (p >= 0) {
                char *ppath = xasprintf("%s/%s", pdir, presets[p]);
                /* the GPT presets name GPT hyperparameters: strict for GPTs */
                cr_assert_eq(kdl_sets_load(ppath, !gpt, &sets, &nsets, stderr), 0);
                cr_assert_gt(nsets, 0);
                free(ppath);
            }
            char *diag;
            Graph g;
            KdlParams params;
            graph_init(&g);
            int e = compile(models[m], src, len, sets, nsets, &g, &params, &diag);
            cr_expect_eq(e, 0, "%s with %s:\n%s", models[m], p >= 0 ? presets[p] : "defaults",
                         diag);
            for (int i = 0; gpt && !e && i < nsets; i++)
                cr_expect_str_eq(kdl_param_get(&params, sets[i].name), sets[i].value);
            free(diag);
            kdl_params_free(&params);
            graph_free(&g);
            kdl_sets_free(sets, nsets);
        }
        free(src);
        free(mpath);
    }
    free_list(models, nm);
    free_list(presets, np);
    free(mdir);
    free(pdir);
}

Test(language, preset_file_errors)
{
    char path[] = "/tmp/kdl_preset_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\n\n  n_layer = 4 \nnonsense\n=5\nn_embd=[1, 2]\n", f);
    fclose(f);
    KdlSet *sets = NULL;
    int n = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    int e = kdl_sets_load(path, 1, &sets, &n, diag);
    fclose(diag);
    cr_assert_eq(e, 2, "%s", buf);
    cr_assert(strstr(buf, ":4:1: error: expected 'name=value'"), "%s", buf);
    cr_assert(strstr(buf, ":5:1: error: expected 'name=value'"), "%s", buf);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(sets[0].name, "n_layer");
    cr_assert_str_eq(sets[0].value, "4");
    cr_assert_str_eq(sets[1].value, "[1, 2]");
    cr_assert_eq(sets[1].soft, 1);
    kdl_sets_free(sets, n);
    free(buf);
    remove(path);
    cr_assert_gt(kdl_sets_load("/nonexistent/x.set", 0, &sets, &n, NULL), 0);
}

/* ------------------------------------------------------ golden diagnostics */

/* "# kdl-test-set: name=value" lines in a corpus file give --set overrides */
static int corpus_sets(const char *src, KdlSet *sets, int cap)
{
    int n = 0;
    for (const char *s = src; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
        int soft = !strncmp(s, "# kdl-test-soft-set: ", 21);
        if (strncmp(s, "# kdl-test-set: ", 16) && !soft) continue;
        const char *kv = s + (soft ? 21 : 16), *eq = strchr(kv, '='), *nl = strchr(kv, '\n');
        if (!eq || !nl || eq > nl || n == cap) continue;
        char *name = xmalloc((size_t)(eq - kv) + 1);
        memcpy(name, kv, (size_t)(eq - kv));
        name[eq - kv] = 0;
        char *value = xmalloc((size_t)(nl - eq));
        memcpy(value, eq + 1, (size_t)(nl - eq - 1));
        value[nl - eq - 1] = 0;
        sets[n++] = (KdlSet){name, value, soft};
    }
    return n;
}

Test(language, error_corpus, .timeout = 120)
{
    char *dir = test_repo_path("tests/kdl_errors");
    int n;
    char **files = list_dir(dir, ".kdl", &n);
    cr_assert_geq(n, 20);
    int update = getenv("KDL_UPDATE_GOLDEN") != NULL;
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, files[i]);
        char *shown = xasprintf("tests/kdl_errors/%s", files[i]); /* stable in messages */
        size_t len;
        char *src = slurp(path, &len);
        KdlSet sets[16];
        int nsets = corpus_sets(src, sets, 16);
        Graph g;
        graph_init(&g);
        char *diag;
        int e = compile(shown, src, len, sets, nsets, &g, NULL, &diag);
        cr_expect_gt(e, 0, "%s: expected errors", files[i]);
        cr_expect_eq(g.n, 0, "%s: a failed compile leaves no nodes", files[i]);
        char *errpath = xasprintf("%.*s.err", (int)(strlen(path) - 4), path);
        if (update) {
            FILE *f = fopen(errpath, "w");
            cr_assert(f);
            fputs(diag, f);
            fclose(f);
        }
        size_t elen;
        char *want = read_file(errpath, &elen);
        cr_expect(want, "%s: no golden file %s (KDL_UPDATE_GOLDEN=1 makes it)", files[i], errpath);
        if (want) cr_expect_str_eq(diag, want, "%s: diagnostics differ from %s", files[i], errpath);
        free(want);
        free(errpath);
        free(diag);
        graph_free(&g);
        free_sets(sets, nsets);
        free(src);
        free(shown);
        free(path);
    }
    free_list(files, n);
    free(dir);
}

/* ------------------------------------------------------ docs/language.md */

Test(language, docs_examples_compile)
{
    char *path = test_repo_path("docs/language.md");
    size_t len;
    char *md = slurp(path, &len);
    int blocks = 0, line = 1;
    for (char *s = md; *s;) {
        char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) : strlen(s);
        if (l >= 6 && !strncmp(s, "```kdl", 6) && (l == 6 || s[6] == ' ' || s[6] == '\r')) {
            int start = line + 1;
            char *body = nl ? nl + 1 : s + l, *end = body;
            line++;
            while (*end && strncmp(end, "```", 3)) {
                char *e2 = strchr(end, '\n');
                end = e2 ? e2 + 1 : end + strlen(end);
                line++;
            }
            /* blank lines in front, so messages give the line in the .md file */
            size_t n = (size_t)(end - body);
            char *text = xmalloc((size_t)start + n);
            memset(text, '\n', (size_t)start - 1);
            memcpy(text + start - 1, body, n);
            char *diag;
            Graph g;
            KdlParams p;
            graph_init(&g);
            int e = compile("docs/language.md", text, (size_t)start - 1 + n, NULL, 0, &g, &p, &diag);
            cr_expect_eq(e, 0, "the kdl block at docs/language.md line %d does not compile:\n%s",
                         start, diag);
            cr_expect(e || g.n_outputs > 0);
            blocks++;
            free(diag);
            free(text);
            kdl_params_free(&p);
            graph_free(&g);
            s = end;
            continue;
        }
        s += l + (nl ? 1 : 0);
        line++;
    }
    cr_assert_geq(blocks, 10, "only %d kdl blocks found in docs/language.md", blocks);
    free(md);
    free(path);
}

/* ------------------------------------------------------ hyperparameters */

Test(language, hyperparameter_arithmetic)
{
    const char *src =
        "param a = 7 / 2, b = 8 / 2, c = 7 // 2, d = -7 // 2, e = -7 % 3, f = 7 % -3\n"
        "param g = 2 * (3 + 4) - 1, h = sqrt(16), i = min(3, 1, 2), j = max([1.5, 4, 2])\n"
        "param k = int(7.9), l = int(-7.9), m = float(3), n = 0.1 + 0.2, o = 1e-5, p = -0.5\n"
        "param q = [-1, 1], r = [0.5, 2], s = \"gelu\", t = true and not false, u = 3 < 2\n"
        "param v = abs(-4), w = len([1, 2, 3]), x = 7.5 // 2, y = -7.5 % 2, z = q[-1]\n"
        "param big = 9223372036854775807, e2 = 2e3, lst = []\n"
        "model m(x: real[2]) { return x }\n";
    static const char *const want[][2] = {
        {"a", "3.5"}, {"b", "4"}, {"c", "3"}, {"d", "-4"}, {"e", "2"}, {"f", "-2"},
        {"g", "13"}, {"h", "4.0"}, {"i", "1"}, {"j", "4"}, {"k", "7"}, {"l", "-7"},
        {"m", "3.0"}, {"n", "0.30000000000000004"}, {"o", "1e-05"}, {"p", "-0.5"},
        {"q", "[-1, 1]"}, {"r", "[0.5, 2]"}, {"s", "\"gelu\""}, {"t", "true"}, {"u", "false"},
        {"v", "4"}, {"w", "3"}, {"x", "3.0"}, {"y", "0.5"}, {"z", "1"},
        {"big", "9223372036854775807"}, {"e2", "2000.0"}, {"lst", "[]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_str_eq(param_of(src, NULL, 0, want[i][0]), want[i][1], "param %s", want[i][0]);
}

Test(language, overrides_apply_before_dependents)
{
    const char *src = "param n = 2, m = n * 3, f = 0.5, l = [1, 2], s = \"a\"\n"
                      "model m(x: real[m]) { return x }\n";
    KdlSet sets[] = {{"n", "5", 0}, {"f", "2", 0}, {"l", "[3.5]", 0}, {"s", "\"b\"", 0},
                     {"unknown", "[this is not even parsed", 1}};
    cr_assert_str_eq(param_of(src, sets, 5, "m"), "15");
    cr_assert_str_eq(param_of(src, sets, 5, "f"), "2.0"); /* an int for a float: promoted */
    cr_assert_str_eq(param_of(src, sets, 5, "l"), "[3.5]");
    cr_assert_str_eq(param_of(src, sets, 5, "s"), "\"b\"");
    /* a later --set of the same name wins; a value may use earlier params */
    KdlSet twice[] = {{"n", "5", 0}, {"n", "1 + 1", 0}, {"m", "n * 10", 0}};
    cr_assert_str_eq(param_of(src, twice, 3, "m"), "20");
    Graph g;
    compile_ok(src, sets, 5, &g, NULL);
    assert_shape(&g, find_leaf(&g, "x"), "[15]");
    graph_free(&g);
    /* canonical values round-trip through --set */
    KdlParams p;
    compile_ok("param f = 0.1, g = -2.5e-7, l = [-1.0, 2], b = false\n"
               "model m(x: real[2]) { return x }\n", NULL, 0, &g, &p);
    KdlSet back[4];
    for (int i = 0; i < 4; i++) back[i] = (KdlSet){p.names[i], p.values[i], 0};
    cr_assert_str_eq(param_of("param f = 1.0, g = 1.0, l = [0], b = true\n"
                              "model m(x: real[2]) { return x }\n", back, 4, "g"), "-2.5e-07");
    kdl_params_free(&p);
    graph_free(&g);
}

Test(language, set_errors)
{
    const char *src = "param n_layer = 2, pdrop = 0.0\nmodel m(x: real[n_layer]) { return x }\n";
    KdlSet bad1[] = {{"n_layr", "4", 0}};
    char *d = compile_err(src, bad1, 1);
    cr_assert(strstr(d, "<command line>:1:7: error: unknown hyperparameter 'n_layr'"), "%s", d);
    cr_assert(strstr(d, "hint: did you mean 'n_layer'?"), "%s", d);
    free(d);
    KdlSet bad2[] = {{"n_layer", "[1, 2]", 0}};
    d = compile_err(src, bad2, 1);
    cr_assert(strstr(d, "hyperparameter 'n_layer' is an int, but --set gives a list"), "%s", d);
    free(d);
    KdlSet bad3[] = {{"pdrop", "\"x\"", 0}};
    d = compile_err(src, bad3, 1);
    cr_assert(strstr(d, "'pdrop' is a float, but --set gives a string"), "%s", d);
    free(d);
}

/* ------------------------------------------------------ scopes and names */

Test(language, labels_scope_parameters)
{
    const char *src =
        "param C = 4\n"
        "block inner(x) { return proj: linear(x, C) }\n"
        "block outer(x) {\n"
        "  y = a.b: inner(x)\n"          /* labelled block call: a scope */
        "  return inner(y)\n"            /* unlabelled: no scope, but a clash */
        "}\n"
        "model m(x: real[2, C]) {\n"
        "  repeat i in 2 { x = stack[i * 2].blk: outer(x) }\n"
        "  return top: linear(x, C, bias = false)\n"
        "}\n";
    /* the unlabelled inner() makes "stack.0.blk.proj.weight" as well as the
       labelled one "stack.0.blk.a.b.proj.weight": different names, no clash */
    Graph g;
    compile_ok(src, NULL, 0, &g, NULL);
    static const char *const names[] = {
        "stack.0.blk.a.b.proj.weight", "stack.0.blk.a.b.proj.bias", "stack.0.blk.proj.weight",
        "stack.2.blk.a.b.proj.weight", "stack.2.blk.proj.bias", "top.weight"};
    for (int i = 0; i < 6; i++) cr_expect_geq(find_leaf(&g, names[i]), 0, "%s", names[i]);
    cr_expect_lt(find_leaf(&g, "top.bias"), 0);
    cr_expect_eq(count_op(&g, OP_PARAM), 2 * 2 * 2 + 1);
    graph_free(&g);
}

Test(language, duplicate_names_and_recursion_do_not_hang)
{
    char *d = compile_err("block f(x) { return g(x) }\nblock g(x) { return f(x) }\n"
                          "model m(x: real[2]) { repeat i in 1000 { x = f(x) } return x }\n",
                          NULL, 0);
    cr_assert(strstr(d, "recursive call: f -> g -> f"), "%s", d);
    free(d);
    /* 70 distinct blocks calling each other: the depth limit, not a crash */
    char *src = xstrdup("");
    for (int i = 0; i < 70; i++) {
        char callee[16];
        snprintf(callee, sizeof callee, i < 69 ? "b%d" : "gelu", i + 1);
        char *s = xasprintf("%sblock b%d(x) { return %s(x) }\n", src, i, callee);
        free(src);
        src = s;
    }
    char *s = xasprintf("%smodel m(x: real[2]) { return b0(x) }\n", src);
    d = compile_err(s, NULL, 0);
    cr_assert(strstr(d, "block calls nested more than 64 deep"), "%s", d);
    free(d);
    free(s);
    free(src);
}

Test(language, limits_are_errors, .timeout = 60)
{
    char *d = compile_err("model m(x: real[2]) { repeat i in 4000000000 { x = x } return x }\n",
                          NULL, 0);
    cr_assert(strstr(d, "takes too long to elaborate"), "%s", d);
    free(d);
    /* deep nesting: parser stack and evaluator depth */
    size_t n = 20000;
    char *deep = xmalloc(2 * n + 64);
    size_t at = (size_t)sprintf(deep, "param a = ");
    for (size_t i = 0; i < n; i++) deep[at++] = '(';
    deep[at++] = '1';
    for (size_t i = 0; i < n; i++) deep[at++] = ')';
    strcpy(deep + at, "\nmodel m(x: real[2]) { return x }\n");
    d = compile_err(deep, NULL, 0);
    cr_assert(strstr(d, "nested too deeply"), "%s", d);
    free(d);
    /* a long flat chain 1+1+...: deep on the left, fine for the parser */
    at = (size_t)sprintf(deep, "param a = 1");
    for (size_t i = 0; i < n / 2 - 4; i++) deep[at++] = '+', deep[at++] = '1';
    strcpy(deep + at, "\nmodel m(x: real[2]) { return x }\n");
    d = compile_err(deep, NULL, 0);
    cr_assert(strstr(d, "nested too deeply"), "%s", d);
    free(d);
    free(deep);
    d = compile_err("param a = [1, 2]\nmodel m(x: real[100000, 100000, 100000]) { return x }\n",
                    NULL, 0);
    cr_assert(strstr(d, "is too large"), "%s", d);
    free(d);
}

/* ------------------------------------------------------ the graph of each layer */

Test(language, linear_and_embedding)
{
    Graph g;
    compile_ok("model m(idx: tokens[2, 3], x: real[2, 3, 4]) {\n"
               "  e = wte: embedding(idx, 10, 4)\n"
               "  y = fc: linear(x, 5, init_std = 0.5)\n"
               "  z = nb: linear(x, 6, bias = false)\n"
               "  return e, y, z\n}\n", NULL, 0, &g, NULL);
    int idx = find_leaf(&g, "idx"), w = find_leaf(&g, "wte.weight");
    cr_assert_eq(g.nodes[idx].op, OP_INPUT);
    cr_assert_eq(g.nodes[idx].dtype, DT_I32);
    cr_assert_eq(g.nodes[find_leaf(&g, "x")].dtype, DT_REAL);
    assert_shape(&g, w, "[10, 4]");
    cr_assert_eq(g.nodes[w].init, INIT_NORMAL);
    cr_assert_float_eq(g.nodes[w].init_a, 0.02, 1e-15);
    cr_assert_eq(g.nodes[w].decay, 0);
    cr_assert_eq(g.nodes[w].trainable, 1);
    int e = g.outputs[0];
    cr_assert_eq(g.nodes[e].op, OP_EMBEDDING);
    cr_assert_eq(g.nodes[e].in[0], idx);
    cr_assert_eq(g.nodes[e].in[1], w);
    assert_shape(&g, e, "[2, 3, 4]");
    int y = g.outputs[1], fw = find_leaf(&g, "fc.weight"), fb = find_leaf(&g, "fc.bias");
    cr_assert_eq(g.nodes[y].op, OP_LINEAR);
    cr_assert_eq(g.nodes[y].nin, 3);
    cr_assert_eq(g.nodes[y].in[1], fw);
    cr_assert_eq(g.nodes[y].in[2], fb);
    cr_assert_eq(g.nodes[y].a.has_bias, 1);
    assert_shape(&g, y, "[2, 3, 5]");
    assert_shape(&g, fw, "[5, 4]");
    cr_assert_float_eq(g.nodes[fw].init_a, 0.5, 1e-15);
    cr_assert_eq(g.nodes[fw].decay, 1);
    cr_assert_eq(g.nodes[fb].init, INIT_ZEROS);
    cr_assert_eq(g.nodes[fb].decay, 0);
    int z = g.outputs[2];
    cr_assert_eq(g.nodes[z].nin, 2);
    cr_assert_eq(g.nodes[z].a.has_bias, 0);
    cr_assert_lt(find_leaf(&g, "nb.bias"), 0);
    cr_assert_eq(g.loss, -1);
    cr_assert_str_eq(g.output_names[2], "z");
    graph_free(&g);
}

Test(language, kan_layers)
{
    Graph g;
    compile_ok("model m(x: real[3, 4]) {\n"
               "  a = k: kan(x, [6, 2], grid_size = 7, spline_order = 2, grid_range = [-2, 3],\n"
               "             scale_noise = 0.3, scale_base = 2, scale_spline = 0.5)\n"
               "  b = kl: kan_linear(x, 5, scaler = false, base = \"gelu\")\n"
               "  return a, b\n}\n", NULL, 0, &g, NULL);
    int grid = find_leaf(&g, "k.layers.0.grid"), base = find_leaf(&g, "k.layers.0.base_weight");
    int spline = find_leaf(&g, "k.layers.0.spline_weight");
    int scaler = find_leaf(&g, "k.layers.0.spline_scaler");
    cr_assert(grid >= 0 && base == grid + 1 && spline == grid + 2 && scaler == grid + 3,
              "order grid, base_weight, spline_weight, spline_scaler");
    cr_assert_eq(g.nodes[grid].op, OP_BUFFER);
    assert_shape(&g, grid, "[4, 12]"); /* G + 2k + 1 */
    cr_assert_eq(g.nodes[grid].init, INIT_KAN_GRID);
    cr_assert_float_eq(g.nodes[grid].init_a, -2, 0);
    cr_assert_float_eq(g.nodes[grid].init_b, 3, 0);
    cr_assert_eq(g.nodes[grid].a.grid_size, 7);
    cr_assert_eq(g.nodes[grid].a.spline_order, 2);
    assert_shape(&g, base, "[6, 4]");
    cr_assert_eq(g.nodes[base].init, INIT_KAIMING_UNIFORM);
    cr_assert_float_eq(g.nodes[base].init_a, 2 * sqrt(5.0), 1e-12);
    assert_shape(&g, spline, "[6, 4, 9]"); /* G + k */
    cr_assert_eq(g.nodes[spline].init, INIT_KAN_SPLINE);
    cr_assert_eq(g.nodes[spline].init_ref, grid);
    cr_assert_float_eq(g.nodes[spline].init_a, 0.3, 1e-15);
    cr_assert_eq(g.nodes[spline].a.grid_size, 7);
    cr_assert_float_eq(g.nodes[scaler].init_a, 0.5 * sqrt(5.0), 1e-12);
    for (int id = base; id <= scaler; id++) cr_assert_eq(g.nodes[id].decay, 1);
    int k1 = find_leaf(&g, "k.layers.1.grid");
    assert_shape(&g, k1, "[6, 12]");
    assert_shape(&g, find_leaf(&g, "k.layers.1.spline_weight"), "[2, 6, 9]");
    int a = g.outputs[0];
    cr_assert_eq(g.nodes[a].op, OP_KAN);
    cr_assert_eq(g.nodes[a].nin, 5);
    cr_assert_eq(g.nodes[a].in[1], k1);
    cr_assert_eq(g.nodes[a].a.has_scaler, 1);
    cr_assert_eq(g.nodes[a].a.act, ACT_SILU);
    cr_assert_eq(g.nodes[a].a.grid_size, 7);
    cr_assert_eq(g.nodes[a].a.spline_order, 2);
    assert_shape(&g, a, "[3, 2]");
    cr_assert_eq(g.nodes[g.nodes[a].in[0]].op, OP_KAN); /* the stack: layer 0 feeds layer 1 */
    int b = g.outputs[1];
    cr_assert_eq(g.nodes[b].nin, 4);
    cr_assert_eq(g.nodes[b].a.has_scaler, 0);
    cr_assert_eq(g.nodes[b].a.act, ACT_GELU);
    cr_assert_geq(find_leaf(&g, "kl.grid"), 0);
    cr_assert_lt(find_leaf(&g, "kl.spline_scaler"), 0);
    graph_free(&g);
}

Test(language, layer_presets)
{
    Graph g;
    compile_ok("param G = 8\n"
               "layer K = kan(grid_size = G, spline_order = 1)\n"
               "layer K2 = K(grid_size = 3)\n"
               "layer kan = kan(scaler = false)\n"
               "model m(x: real[3, 4]) {\n"
               "  a = a: K(x, 2)\n"
               "  b = b: K(x, 2, spline_order = 2)\n"
               "  c = c: K2(x, 2)\n"
               "  d = d: kan(x, 2)\n"
               "  return a, b, c, d\n}\n", NULL, 0, &g, NULL);
    cr_assert_eq(g.nodes[g.outputs[0]].a.grid_size, 8);
    cr_assert_eq(g.nodes[g.outputs[0]].a.spline_order, 1);
    cr_assert_eq(g.nodes[g.outputs[1]].a.spline_order, 2);
    cr_assert_eq(g.nodes[g.outputs[2]].a.grid_size, 3);
    cr_assert_eq(g.nodes[g.outputs[2]].a.spline_order, 1);
    cr_assert_eq(g.nodes[g.outputs[3]].a.has_scaler, 0);
    graph_free(&g);
}

/* 'layer' and 'model' are keywords where an item starts and plain names in
   labels (Hugging Face's encoder.layer.0..., model.layers.0...) */
Test(language, layer_as_label_component)
{
    Graph g;
    compile_ok("param C = 4\n"
               "layer L = linear(bias = false)\n"
               "block block_(x) { return dense: L(x, C) }\n"
               "model m(x: real[2, C]) {\n"
               "  repeat i in 2 { x = encoder.layer[i]: block_(x) }\n"
               "  x = layer.out: L(x, C)\n"
               "  x = model.layers[0].model: L(x, C)\n"
               "  return layer[3]: rmsnorm(x)\n"
               "}\n", NULL, 0, &g, NULL);
    static const char *const names[] = {"encoder.layer.0.dense.weight", "encoder.layer.1.dense.weight",
                                        "layer.out.weight", "model.layers.0.model.weight", "layer.3.weight"};
    for (int i = 0; i < 5; i++) cr_expect_geq(find_leaf(&g, names[i]), 0, "%s", names[i]);
    cr_expect_eq(count_op(&g, OP_PARAM), 5);
    graph_free(&g);
    /* a variable cannot be called 'layer': it stays a keyword where a statement starts */
    char *d = compile_err("model m(x: real[2, 4]) {\n  layer = x\n  return x\n}\n", NULL, 0);
    cr_expect(strstr(d, "test.kdl:2:3: error:") != NULL, "%s", d);
    free(d);
}

/* rmsnorm's one parameter; attention(rope = true) and rope() put a rope node
   on q and k (qkv's first 2C columns) or on every column; their errors */
Test(language, rmsnorm_and_rope)
{
    Graph g;
    compile_ok("model m(x: real[2, 5, 12]) {\n"
               "  h = norm: rmsnorm(x)\n"
               "  a = attn: attention(h, heads = 2, rope = true, rope_base = 500.0)\n"
               "  q = rope(a, heads = 2)\n"
               "  return a, q\n}\n", NULL, 0, &g, NULL);
    cr_assert_eq(count_op(&g, OP_PARAM), 1);
    int w = find_leaf(&g, "norm.weight"), nrm = w + 1;
    cr_assert_eq(g.nodes[w].init, INIT_ONES);
    cr_assert_eq(g.nodes[nrm].op, OP_RMSNORM);
    cr_assert_float_eq(g.nodes[nrm].a.eps, 1e-6, 1e-20);
    cr_assert_str_eq(sh(&g.nodes[nrm].aux), "[10]");
    cr_assert_eq(count_op(&g, OP_ROPE), 2);
    int ra = -1, rq = -1;
    for (int i = 0; i < g.n; i++)
        if (g.nodes[i].op == OP_ROPE) *(ra < 0 ? &ra : &rq) = i;
    cr_assert_eq(g.nodes[ra].in[0], nrm, "attention's rope rotates the attention's input");
    cr_assert_eq(g.nodes[ra].a.len, 8);
    cr_assert_eq(g.nodes[ra].a.heads, 4); /* 2 heads of q and 2 of k, D = 2 */
    cr_assert_float_eq(g.nodes[ra].a.rope_base, 500.0, 1e-9);
    int att = -1;
    for (int i = 0; i < g.n; i++)
        if (g.nodes[i].op == OP_ATTENTION) att = i;
    cr_assert_eq(g.nodes[att].in[0], ra);
    cr_assert_eq(g.nodes[rq].a.len, 4);
    cr_assert_eq(g.nodes[rq].a.heads, 2);
    cr_assert_float_eq(g.nodes[rq].a.rope_base, 10000.0, 1e-9);
    graph_free(&g);
    char *d = compile_err("model m(x: real[2, 5, 18]) {\n  return attention(x, heads = 2, rope = true)\n}\n",
                          NULL, 0);
    cr_expect(strstr(d, "rope needs an even head width, got C / heads = 3") != NULL, "%s", d);
    free(d);
    d = compile_err("model m(x: real[2, 5, 12]) {\n  return attention(x, heads = 2, rope_base = 100.0)\n}\n",
                    NULL, 0);
    cr_expect(strstr(d, "rope_base is given but rope is false") != NULL, "%s", d);
    free(d);
    d = compile_err("model m(x: real[2, 5, 12]) {\n  return rope(x, heads = 4)\n}\n", NULL, 0);
    cr_expect(strstr(d, "must split into heads = 4 of an even width") != NULL, "%s", d);
    free(d);
    d = compile_err("model m(x: real[2, 5, 12]) {\n  return norm: rmsnorm(x, eps = 0)\n}\n", NULL, 0);
    cr_expect(strstr(d, "argument 'eps' of 'rmsnorm' must be positive") != NULL, "%s", d);
    free(d);
}

Test(language, norm_attention_loss)
{
    Graph g;
    compile_ok("model m(x: real[2, 5, 12], t: tokens[2, 5]) {\n"
               "  h = ln: layernorm(x, eps = 1e-6)\n"
               "  a = attn: attention(h, heads = 2, dropout = 0.1)\n"
               "  b = bi: attention(h, heads = 4, causal = false)\n"
               "  loss = cross_entropy(a, t)\n"
               "  s = sum(b)\n"
               "  return a, loss, s\n}\n", NULL, 0, &g, NULL);
    int ln = find_leaf(&g, "ln.weight") + 2; /* after ln.weight and ln.bias */
    cr_assert_eq(g.nodes[ln].op, OP_LAYERNORM);
    cr_assert_float_eq(g.nodes[ln].a.eps, 1e-6, 1e-20);
    cr_assert_str_eq(sh(&g.nodes[ln].aux), "[10, 2]");
    cr_assert_eq(g.nodes[ln].aux_numel, 20);
    cr_assert_eq(g.nodes[find_leaf(&g, "ln.weight")].init, INIT_ONES);
    cr_assert_eq(g.nodes[find_leaf(&g, "ln.bias")].init, INIT_ZEROS);
    int mask = find_leaf(&g, "attn.bias");
    cr_assert_eq(g.nodes[mask].op, OP_BUFFER);
    cr_assert_eq(g.nodes[mask].init, INIT_TRIL);
    cr_assert_eq(g.nodes[mask].optional, 1);
    assert_shape(&g, mask, "[1, 1, 5, 5]");
    cr_assert_lt(find_leaf(&g, "bi.bias"), 0, "no mask without causal");
    int a = g.outputs[0];
    cr_assert_eq(g.nodes[a].op, OP_ATTENTION);
    cr_assert_eq(g.nodes[a].nin, 1);
    cr_assert_eq(g.nodes[a].a.heads, 2);
    cr_assert_eq(g.nodes[a].a.causal, 1);
    cr_assert_float_eq(g.nodes[a].a.p, 0.1, 1e-15);
    assert_shape(&g, a, "[2, 5, 4]");
    cr_assert_str_eq(sh(&g.nodes[a].aux), "[2, 2, 5, 5]");
    cr_assert_eq(g.nodes[a].aux_numel, 100);
    int l = g.outputs[1];
    cr_assert_eq(g.loss, l);
    cr_assert_eq(g.nodes[l].op, OP_CROSS_ENTROPY);
    cr_assert_eq(g.nodes[l].shape.nd, 0);
    cr_assert_str_eq(sh(&g.nodes[l].aux), "[10]");
    cr_assert_eq(g.nodes[g.outputs[2]].op, OP_SUM);
    graph_free(&g);
}

Test(language, elementwise_and_shape_ops)
{
    Graph g;
    compile_ok("model m(x: real[2, 3, 6], p: real[3, 6]) {\n"
               "  a = p + x\n"            /* swapped: the broadcast one is in[1] */
               "  b = x - p\n"
               "  c = p * x\n"
               "  d = 2 * x / 4\n"
               "  e = -x\n"
               "  f = dropout(x, 0.0)\n"
               "  g = dropout(x, 0.5)\n"
               "  q, k, v = split(x, 3)\n"
               "  s1, s2 = split(x, [1, 5])\n"
               "  h = concat(q, k, s2)\n"
               "  r = reshape(x, [-1, 6])\n"
               "  act = gelu(silu(relu(x)))\n"
               "  return a, b, c, d, e, f, g, v, s2, h, r, act\n}\n", NULL, 0, &g, NULL);
    int x = find_leaf(&g, "x"), p = find_leaf(&g, "p");
    const GNode *n = &g.nodes[g.outputs[0]];
    cr_assert(n->op == OP_ADD && n->in[0] == x && n->in[1] == p);
    n = &g.nodes[g.outputs[1]];
    cr_assert(n->op == OP_SUB && n->in[0] == x && n->in[1] == p);
    n = &g.nodes[g.outputs[2]];
    cr_assert(n->op == OP_MUL && n->in[0] == x && n->in[1] == p);
    n = &g.nodes[g.outputs[3]];
    cr_assert_eq(n->op, OP_SCALE);
    cr_assert_float_eq(n->a.scale, 0.25, 0);
    cr_assert_float_eq(g.nodes[n->in[0]].a.scale, 2, 0);
    cr_assert_float_eq(g.nodes[g.outputs[4]].a.scale, -1, 0);
    cr_assert_eq(g.outputs[5], x, "dropout(x, 0) is x itself");
    cr_assert_eq(g.nodes[g.outputs[6]].op, OP_DROPOUT);
    cr_assert_float_eq(g.nodes[g.outputs[6]].a.p, 0.5, 0);
    n = &g.nodes[g.outputs[7]];
    cr_assert(n->op == OP_SLICE && n->a.start == 4 && n->a.len == 2);
    n = &g.nodes[g.outputs[8]];
    cr_assert(n->op == OP_SLICE && n->a.start == 1 && n->a.len == 5);
    n = &g.nodes[g.outputs[9]];
    cr_assert_eq(n->op, OP_CONCAT);
    assert_shape(&g, g.outputs[9], "[2, 3, 9]");
    cr_assert_eq(g.nodes[n->in[0]].op, OP_CONCAT);
    assert_shape(&g, g.outputs[10], "[6, 6]");
    cr_assert_eq(g.nodes[g.outputs[10]].op, OP_RESHAPE);
    cr_assert_eq(g.nodes[g.outputs[11]].op, OP_GELU);
    cr_assert_eq(g.n_outputs, 12);
    graph_free(&g);
}

/* tensor-number arithmetic as the affine scale, / as * (1 / b), the unary ops
   (abs, exp, log: the op on a tensor, the value on a number), softmax and the
   axis sums with their shapes */
Test(language, math_ops_and_tensor_arithmetic)
{
    Graph g;
    KdlParams kp;
    compile_ok("param k = abs(-3), e = exp(0), l = log(1.0)\n"
               "model m(x: real[2, 3, 6], p: real[3, 6]) {\n"
               "  a = x + 1\n"
               "  b = 1 - x\n"
               "  c = x - 2\n"
               "  d = 2 / x\n"
               "  f = x / p\n"
               "  h = p / x\n"             /* p broadcasts: recip(x) first, p second */
               "  u = abs(x) + tanh(x) * sigmoid(x) + exp(x) + log(x) + abs(-2) * k\n"
               "  sm = softmax(x)\n"
               "  m1 = mean(x, 1)\n"
               "  s1 = sum(x, -1, keepdim = true)\n"
               "  m0 = mean(x, 0)\n"
               "  mt = mean(x)\n"
               "  return a, b, c, d, f, h, u, sm, m1, s1, m0, mt\n}\n", NULL, 0, &g, &kp);
    cr_assert_str_eq(kdl_param_get(&kp, "k"), "3");
    cr_assert_str_eq(kdl_param_get(&kp, "e"), "1.0");
    cr_assert_str_eq(kdl_param_get(&kp, "l"), "0.0");
    kdl_params_free(&kp);
    int x = find_leaf(&g, "x"), p = find_leaf(&g, "p");
    const GNode *n = &g.nodes[g.outputs[0]];
    cr_assert(n->op == OP_SCALE && n->a.scale == 1 && n->a.shift == 1 && n->in[0] == x);
    n = &g.nodes[g.outputs[1]];
    cr_assert(n->op == OP_SCALE && n->a.scale == -1 && n->a.shift == 1);
    n = &g.nodes[g.outputs[2]];
    cr_assert(n->op == OP_SCALE && n->a.scale == 1 && n->a.shift == -2);
    n = &g.nodes[g.outputs[3]];
    cr_assert(n->op == OP_SCALE && n->a.scale == 2 && n->a.shift == 0);
    cr_assert(g.nodes[n->in[0]].op == OP_RECIP && g.nodes[n->in[0]].in[0] == x);
    n = &g.nodes[g.outputs[4]];
    cr_assert(n->op == OP_MUL && n->in[0] == x && g.nodes[n->in[1]].op == OP_RECIP &&
              g.nodes[n->in[1]].in[0] == p);
    n = &g.nodes[g.outputs[5]];
    cr_assert(n->op == OP_MUL && n->in[1] == p && g.nodes[n->in[0]].op == OP_RECIP &&
              g.nodes[n->in[0]].in[0] == x);
    assert_shape(&g, g.outputs[5], "[2, 3, 6]");
    GOp unary[] = {OP_ABS, OP_TANH, OP_SIGMOID, OP_EXP, OP_LOG};
    for (int i = 0; i < 5; i++) cr_assert_eq(count_op(&g, unary[i]), 1, "%s", op_name(unary[i]));
    cr_assert_eq(g.nodes[g.outputs[7]].op, OP_SOFTMAX);
    assert_shape(&g, g.outputs[8], "[2, 6]");
    cr_assert_eq(g.nodes[g.outputs[8]].op, OP_SUM_AXIS, "[2, 3, 6] over axis 1 needs no reshape");
    cr_assert_float_eq(g.nodes[g.outputs[8]].a.scale, 1.0 / 3, 1e-15);
    assert_shape(&g, g.outputs[9], "[2, 3, 1]");
    n = &g.nodes[g.outputs[9]];
    cr_assert(n->op == OP_RESHAPE && g.nodes[n->in[0]].op == OP_SUM_AXIS);
    assert_shape(&g, n->in[0], "[6, 1]");
    cr_assert_float_eq(g.nodes[n->in[0]].a.scale, 1, 0);
    assert_shape(&g, g.outputs[10], "[3, 6]");
    n = &g.nodes[g.outputs[11]];
    cr_assert(n->op == OP_SCALE && g.nodes[n->in[0]].op == OP_SUM);
    cr_assert_float_eq(n->a.scale, 1.0 / 36, 1e-15);
    assert_shape(&g, g.outputs[11], "[]");
    graph_free(&g);

    const char *bad[][2] = {
        {"model m(x: real[2, 3]) {\n  return mean(x, 2)\n}\n",
         "argument 'axis' of 'mean' must be between -2 and 1, got 2"},
        {"model m(x: real[2, 3]) {\n  return sum(x, keepdim = true)\n}\n",
         "argument 'keepdim' of 'sum' needs an axis"},
        {"model m(x: real[2, 3]) {\n  return x / 0\n}\n", "division by zero"},
        {"model m(x: real[2, 3]) {\n  return x // 2\n}\n", "'//' between a tensor and a number is not defined"},
        {"param a = log(0)\nmodel m(x: real[2, 3]) {\n  return x\n}\n", "argument 'x' of 'log' must be positive"},
        {"model m(x: real[2, 3]) {\n  return softmax(3)\n}\n", "argument 'x' of 'softmax' must be a tensor"},
        {"model m(x: real[2, 3], t: tokens[2]) {\n  return abs(t)\n}\n", "'abs'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *d = compile_err(bad[i][0], NULL, 0);
        cr_expect(strstr(d, bad[i][1]), "want '%s' in:\n%s", bad[i][1], d);
        free(d);
    }
}

Test(language, statements)
{
    Graph g;
    KdlParams p;
    compile_ok("param grids = [3, 5, 8], n = len(grids)\n"
               "block pair(x, scale = 2) { return x, scale * x }\n"
               "block pick(x, i) {\n"
               "  if i == 0 { return relu(x) } else if i == 1 { return gelu(x) } else {\n"
               "    return silu(x) }\n"
               "}\n"
               "model m(x: real[2, 4]) {\n"
               "  repeat i in n { x = h[i]: kan(x, 4, grid_size = grids[i]); x = pick(x, i) }\n"
               "  a, b = pair(x); c, d = pair(x, scale = 3)\n"
               "  repeat 2 { a = a + b }\n"
               "  w = shape(x)[-1]\n"
               "  return a, d, w: linear(x, w * 2)\n"
               "}\n", NULL, 0, &g, &p);
    for (int i = 0; i < 3; i++) {
        char *name = xasprintf("h.%d.layers.0.spline_weight", i);
        static const char *const want[] = {"[4, 4, 6]", "[4, 4, 8]", "[4, 4, 11]"};
        assert_shape(&g, find_leaf(&g, name), want[i]);
        free(name);
    }
    cr_assert_eq(count_op(&g, OP_RELU), 1);
    cr_assert_eq(count_op(&g, OP_GELU), 1);
    cr_assert_eq(count_op(&g, OP_SILU), 1);
    cr_assert_eq(count_op(&g, OP_ADD), 2);
    cr_assert_float_eq(g.nodes[g.outputs[1]].a.scale, 3, 0);
    cr_assert_str_eq(g.output_names[2], "out2");
    assert_shape(&g, g.outputs[2], "[2, 8]");
    cr_assert_str_eq(kdl_param_get(&p, "n"), "3");
    cr_assert_null(kdl_param_get(&p, "nope"));
    kdl_params_free(&p);
    graph_free(&g);
}

Test(language, graph_is_appended_and_kept_on_error)
{
    Graph g;
    graph_init(&g);
    const char *ok = "model m(x: real[2]) { return gelu(x) }\n";
    cr_assert_eq(kdl_compile("a.kdl", ok, strlen(ok), NULL, 0, &g, NULL, NULL), 0);
    int n = g.n;
    const char *bad = "model m(x: real[2]) { y = gelu(x)\n return y + nope }\n";
    cr_assert_gt(kdl_compile("b.kdl", bad, strlen(bad), NULL, 0, &g, NULL, NULL), 0);
    cr_assert_eq(g.n, n, "a failed compile removes what it added");
    cr_assert_eq(g.n_outputs, 1);
    /* the source need not be NUL-terminated */
    char buf[64];
    memcpy(buf, ok, strlen(ok));
    memset(buf + strlen(ok), '(', sizeof buf - strlen(ok));
    Graph h;
    graph_init(&h);
    cr_assert_eq(kdl_compile("c.kdl", buf, strlen(ok), NULL, 0, &h, NULL, NULL), 0);
    graph_free(&h);
    graph_free(&g);
}

/* ------------------------------------------------------ robustness */

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void compile_quietly(const char *src, size_t len)
{
    Graph g;
    KdlParams p;
    graph_init(&g);
    kdl_compile("fuzz.kdl", src, len, NULL, 0, &g, &p, NULL);
    kdl_params_free(&p);
    graph_free(&g);
}

/* Runs fn on the text of each .kdl file in models/. */
static void for_each_model(void (*fn)(const char *src, size_t len))
{
    char *mdir = test_repo_path("models");
    int nm;
    char **models = list_dir(mdir, ".kdl", &nm);
    for (int m = 0; m < nm; m++) {
        char *path = xasprintf("%s/%s", mdir, models[m]);
        size_t len;
        char *src = slurp(path, &len);
        fn(src, len);
        free(src);
        free(path);
    }
    free_list(models, nm);
    free(mdir);
}

static void every_prefix(const char *src, size_t len)
{
    for (size_t l = 0; l <= len; l++) compile_quietly(src, l);
}

/* 1000 copies with 1-4 random byte edits (replace, insert, delete) each */
static void mutations(const char *src, size_t len)
{
    static const char bytes[] = "(){}[]:,.=+-*/#\"\n\t 0123456789abxyz_\xff\xc3\x80";
    char *buf = xmalloc(len + 64);
    for (int k = 0; k < 1000; k++) {
        memcpy(buf, src, len);
        size_t n = len;
        for (int j = 0, muts = 1 + (int)(rng() % 4); j < muts && n > 1; j++) {
            size_t at = rng() % n;
            char c = (rng() & 3) ? bytes[rng() % (sizeof bytes - 1)] : (char)rng();
            switch (rng() % 3) {
            case 0: buf[at] = c; break;
            case 1:
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = c;
                n++;
                break;
            default: memmove(buf + at, buf + at + 1, n - at - 1); n--;
            }
        }
        compile_quietly(buf, n);
    }
    free(buf);
}

Test(language, fuzz_prefixes, .timeout = 300) { for_each_model(every_prefix); }

Test(language, fuzz_mutations, .timeout = 300) { for_each_model(mutations); }
