/* test_tying.c: weight tying (linear(..., tie = "transformer.wte.weight")).
 *
 * nanoGPT's tied head: one parameter, two uses. The tied model must give the
 * loss of the untied model whose head holds a copy of the embedding, and its
 * one gradient must be the sum of the untied model's two (in double on the
 * CPU, and in float under the emulated CUDA path); its checkpoint holds one
 * name, which loads back by name; a state_dict that also lists the tied name
 * (nanoGPT's) loads when the copies agree. The shape check names both places.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "model.h"
#include "safetensors.h"
#include "state_dict.h"
#include "test_util.h"
#include "util.h"

/* a tiny GPT-like stack; HEAD is the lm_head call's extra arguments */
#define TIED_SRC(HEAD)                                                                  \
    "param V = 13, C = 6, B = 2, T = 5\n"                                               \
    "model m(idx: tokens[B, T], targets: tokens[B, T]) {\n"                             \
    "  x = transformer.wte: embedding(idx, V, C) + transformer.wpe: positions(T, C)\n"  \
    "  x = x + mix: linear(transformer.ln_1: rmsnorm(x), C)\n"                          \
    "  logits = lm_head: linear(transformer.ln_f: rmsnorm(x), V, bias = false" HEAD ")\n" \
    "  loss = cross_entropy(logits, targets)\n"                                         \
    "  return logits, loss\n"                                                           \
    "}\n"

static const char *const TIED = TIED_SRC(", tie = \"transformer.wte.weight\"");
static const char *const UNTIED = TIED_SRC("");

static void compile(Model *m, const char *src, size_t real_size, const char *device)
{
    char *path = test_repo_path("tests/tied.kdl"); /* only named: the source is given */
    int rc = model_compile(m, path, src, NULL, 0, MODEL_TRAIN, real_size, device, stderr);
    free(path);
    cr_assert_eq(rc, 0, "the model does not compile on %s", device);
}

static int param_node(const Model *m, const char *name)
{
    int i = graph_find(&m->g, OP_PARAM, name);
    cr_assert_geq(i, 0, "no parameter %s", name);
    return i;
}

static int64_t n_params(const Model *m, int64_t *elems)
{
    int64_t n = 0;
    *elems = 0;
    for (int i = 0; i < m->g.n; i++)
        if (m->g.nodes[i].op == OP_PARAM) n++, *elems += shape_numel(&m->g.nodes[i].shape);
    return n;
}

/* copies every parameter of `from` into `to` by name (the head from the embedding
   when `to` has a head of its own) */
static void copy_params(Model *from, Model *to)
{
    for (int i = 0; i < to->g.n; i++) {
        const GNode *n = &to->g.nodes[i];
        if (n->op != OP_PARAM) continue;
        const char *src = !strcmp(n->name, "lm_head.weight") ? "transformer.wte.weight" : n->name;
        int j = param_node(from, src);
        double *v = xmalloc(sizeof(double) * (size_t)shape_numel(&n->shape));
        model_read_value(from, j, v);
        model_write_value(to, i, v);
        free(v);
    }
}

/* forward and backward (no AdamW) on fixed tokens; returns the loss */
static double step_grads(Model *m)
{
    int32_t ids[10], tg[10];
    for (int i = 0; i < 10; i++) ids[i] = (i * 5 + 2) % 13, tg[i] = (i * 7 + 1) % 13;
    tg[3] = -1;
    char err[256];
    cr_assert_eq(model_set_tokens(m, model_input(m, "idx"), ids, err, sizeof err), 0, "%s", err);
    cr_assert_eq(model_set_tokens(m, model_input(m, "targets"), tg, err, sizeof err), 0, "%s", err);
    int adam = -1;
    for (int i = 0; i < m->g.n; i++)
        if (m->g.nodes[i].op == OP_ADAMW) adam = i;
    cr_assert_geq(adam, 0);
    m->dev->training = 1;
    m->dev->ops->run(m->dev, 0, adam);
    double loss;
    model_read_value(m, m->g.loss, &loss);
    return loss;
}

static double *grad_of(Model *m, const char *name)
{
    int i = param_node(m, name);
    double *g = xmalloc(sizeof(double) * (size_t)shape_numel(&m->g.nodes[i].shape));
    model_read_grad(m, i, g);
    return g;
}

/* the tied model (on device, real_size) against the untied one in double on the CPU */
static void tied_matches_untied(const char *device, size_t real_size, double tol)
{
    Model u, t;
    compile(&u, UNTIED, 8, "cpu");
    compile(&t, TIED, real_size, device);
    char err[256];
    cr_assert_eq(model_init_params(&u, 7, err, sizeof err), 0, "%s", err);
    int64_t eu, et;
    cr_assert_eq(n_params(&t, &et), n_params(&u, &eu) - 1, "one parameter fewer");
    cr_assert_eq(et, eu - 13 * 6, "the head's [V, C] is not stored twice");
    copy_params(&u, &t); /* t gets u's embedding, which u's head copies too */
    copy_params(&t, &u);
    double lu = step_grads(&u), lt = step_grads(&t);
    cr_expect(fabs(lu - lt) <= tol * fabs(lu), "%s: loss %.15g tied vs %.15g untied", device, lt, lu);
    int64_t n = 13 * 6;
    double *ge = grad_of(&u, "transformer.wte.weight"), *gh = grad_of(&u, "lm_head.weight");
    double *gt = grad_of(&t, "transformer.wte.weight");
    double *sum = xmalloc(sizeof(double) * (size_t)n);
    double he = 0, hh = 0;
    for (int64_t i = 0; i < n; i++) sum[i] = ge[i] + gh[i], he += ge[i] * ge[i], hh += gh[i] * gh[i];
    cr_assert(he > 0 && hh > 0, "both uses contribute a gradient");
    double r = test_rel_err(gt, sum, n);
    cr_expect(r < tol, "%s: tied gradient vs the sum of the two: relative error %.3e", device, r);
    cr_expect(test_rel_err(gt, ge, n) > 1e-3, "the tied gradient is not the embedding's alone");
    static const char *const others[] = {"transformer.wpe.weight", "mix.weight", "mix.bias",
                                         "transformer.ln_1.weight", "transformer.ln_f.weight"};
    for (int k = 0; k < 5; k++) {
        int i = param_node(&u, others[k]);
        int64_t m = shape_numel(&u.g.nodes[i].shape);
        double *a = grad_of(&t, others[k]), *b = grad_of(&u, others[k]);
        double e = test_rel_err(a, b, m);
        cr_expect(e < tol, "%s: gradient of %s: relative error %.3e", device, others[k], e);
        free(a);
        free(b);
    }
    free(ge);
    free(gh);
    free(gt);
    free(sum);
    model_free(&u);
    model_free(&t);
}

Test(tying, same_loss_and_summed_gradients_cpu) { tied_matches_untied("cpu", 8, 1e-12); }

Test(tying, same_loss_and_summed_gradients_emulated_cuda, .timeout = 120)
{
    tied_matches_untied("emu", 4, 2e-5);
}

/* a checkpoint of the tied model holds the weight once and loads back by name */
Test(tying, one_name_in_the_checkpoint)
{
    Model t;
    compile(&t, TIED, 4, "cpu");
    char err[512];
    cr_assert_eq(model_init_params(&t, 3, err, sizeof err), 0, "%s", err);
    step_grads(&t);
    char *dir = test_tmpdir();
    cr_assert_eq(ckpt_save(dir, &t, NULL, NULL, err, sizeof err), 0, "%s", err);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    StFile f;
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cr_expect(st_find(&f, "transformer.wte.weight") != NULL);
    cr_expect(st_find(&f, "lm_head.weight") == NULL, "the tied head is not saved a second time");
    st_close(&f);
    Model back;
    compile(&back, TIED, 4, "cpu");
    cr_assert_eq(sd_load(&back, path, err, sizeof err), 0, "%s", err);
    int a = param_node(&t, "transformer.wte.weight"), b = param_node(&back, "transformer.wte.weight");
    double va[78], vb[78];
    model_read_value(&t, a, va);
    model_read_value(&back, b, vb);
    cr_expect(memcmp(va, vb, sizeof va) == 0, "the loaded weight is the saved one");
    /* the untied model needs the head's own weight: the file lacks it */
    Model u;
    compile(&u, UNTIED, 4, "cpu");
    cr_expect_neq(sd_load(&u, path, err, sizeof err), 0);
    cr_expect(strstr(err, "lm_head.weight") != NULL, "%s", err);
    model_free(&u);
    model_free(&back);
    model_free(&t);
    test_run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* u's parameters as a float32 state_dict file, leaving out `skip` (NULL: none) */
static void save_state_dict(Model *u, const char *path, const char *skip)
{
    StEntry e[16];
    float *data[16];
    int k = 0;
    for (int i = 0; i < u->g.n; i++) {
        const GNode *n = &u->g.nodes[i];
        if (n->op != OP_PARAM || (skip && !strcmp(n->name, skip))) continue;
        cr_assert_lt(k, 16);
        int64_t c = shape_numel(&n->shape);
        double *v = xmalloc(sizeof(double) * (size_t)c);
        model_read_value(u, i, v);
        data[k] = xmalloc(sizeof(float) * (size_t)c);
        for (int64_t j = 0; j < c; j++) data[k][j] = (float)v[j];
        free(v);
        e[k] = (StEntry){.name = n->name, .dtype = ST_F32, .rank = n->shape.nd, .data = data[k]};
        for (int d = 0; d < n->shape.nd; d++) e[k].shape[d] = n->shape.d[d];
        k++;
    }
    char err[256];
    cr_assert_eq(st_write(path, e, k, NULL, 0, err, sizeof err), 0, "%s", err);
    for (int j = 0; j < k; j++) free(data[j]);
}

/* a PyTorch state_dict of a tied model lists the shared tensor under both names (nanoGPT:
   lm_head.weight and transformer.wte.weight): it loads when the two are equal, and from the
   tied name alone; two that differ are an error naming both */
Test(tying, a_state_dict_with_the_tied_name_loads)
{
    Model t, u, back;
    compile(&t, TIED, 4, "cpu");
    compile(&u, UNTIED, 4, "cpu");
    char err[1024];
    cr_assert_eq(model_init_params(&t, 5, err, sizeof err), 0, "%s", err);
    copy_params(&t, &u); /* u's head holds t's embedding */
    int wu = param_node(&u, "lm_head.weight");
    double head[78], got[78];
    model_read_value(&u, wu, head);
    char *dir = test_tmpdir();
    char *path = xasprintf("%s/sd.safetensors", dir);
    save_state_dict(&u, path, NULL); /* both names, equal */
    compile(&back, TIED, 4, "cpu");
    cr_assert_eq(sd_load(&back, path, err, sizeof err), 0, "%s", err);
    model_read_value(&back, param_node(&back, "transformer.wte.weight"), got);
    for (int i = 0; i < 78; i++) cr_assert_eq((float)got[i], (float)head[i], "element %d", i);
    model_free(&back);
    /* the tied name alone */
    head[7] += 0.5;
    model_write_value(&u, wu, head);
    save_state_dict(&u, path, "transformer.wte.weight");
    compile(&back, TIED, 4, "cpu");
    cr_assert_eq(sd_load(&back, path, err, sizeof err), 0, "%s", err);
    model_read_value(&back, param_node(&back, "transformer.wte.weight"), got);
    cr_expect_eq((float)got[7], (float)head[7], "the embedding comes from lm_head.weight");
    model_free(&back);
    /* both names, different values (the head changed at element 7) */
    save_state_dict(&u, path, NULL);
    compile(&back, TIED, 4, "cpu");
    cr_expect_neq(sd_load(&back, path, err, sizeof err), 0);
    cr_expect(strstr(err, "1 tied copy that differs") &&
                  strstr(err, "lm_head.weight differs from transformer.wte.weight, the parameter it is tied to "
                              "(by 0.5 at element 7)"),
              "%s", err);
    model_free(&back);
    model_free(&u);
    model_free(&t);
    free(path);
    test_run(NULL, "rm -rf %s", dir);
    free(dir);
}

static char *compile_errors(const char *src)
{
    Model m;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    int rc = model_compile(&m, "tied.kdl", src, NULL, 0, MODEL_FORWARD, 4, "none", f);
    fclose(f);
    cr_assert_neq(rc, 0, "expected an error for:\n%s", src);
    return buf;
}

/* a wrong shape names the tie and where the parameter was made; no such
   parameter gets a near name; a buffer is not a parameter */
Test(tying, errors_name_both_places)
{
    char *d = compile_errors("model m(idx: tokens[2, 4]) {\n"
                             "  x = transformer.wte: embedding(idx, 13, 6)\n"
                             "  return lm_head: linear(x, 12, bias = false, tie = \"transformer.wte.weight\")\n"
                             "}\n");
    cr_expect(strstr(d, "tied.kdl:3:53: error: 'linear' ties its weight to 'transformer.wte.weight', but it "
                        "needs [12, 6] and 'transformer.wte.weight' is [13, 6]") != NULL,
              "%s", d);
    cr_expect(strstr(d, "tied.kdl:2:24: note: 'transformer.wte.weight' was made here, with shape [13, 6]") != NULL,
              "%s", d);
    free(d);
    d = compile_errors("model m(idx: tokens[2, 4]) {\n"
                       "  x = transformer.wte: embedding(idx, 13, 6)\n"
                       "  return lm_head: linear(x, 13, tie = \"transformer.wte.weigth\")\n"
                       "}\n");
    cr_expect(strstr(d, "no parameter of that name was made before it") != NULL, "%s", d);
    cr_expect(strstr(d, "hint: did you mean 'transformer.wte.weight'?") != NULL, "%s", d);
    free(d);
    d = compile_errors("model m(x: real[2, 4, 6]) {\n"
                       "  y = attention(c_attn: linear(x, 18), heads = 2)\n"
                       "  return head: linear(y, 4, tie = \"bias\")\n"
                       "}\n");
    cr_expect(strstr(d, "'bias' is a buffer, not a parameter") != NULL, "%s", d);
    free(d);
    d = compile_errors("model m(idx: tokens[2, 4]) {\n"
                       "  x = transformer.wte: embedding(idx, 13, 6)\n"
                       "  return lm_head: linear(x, 13, tie = 3)\n"
                       "}\n");
    cr_expect(strstr(d, "must be a parameter's name in quotes") != NULL, "%s", d);
    free(d);
}
