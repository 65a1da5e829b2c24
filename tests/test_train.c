/* test_train.c: kanrun end to end: training, checkpoints, resume, eval, sample, bad input.
 *
 * Runs the built binary (test_bin("kanrun")) the way a user does, on a
 * small kansformers model and the King James Bible corpus (data/kjv.txt,
 * written by scripts/prepare_corpus.sh, which make test runs first).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "run_check.h"
#include "test_util.h"
#include "util.h"

/* a tiny kansformers: 2 layers, 2 heads, 32 wide, context 32, batch 4 */
#define TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --batch 4"

/* the losses of metrics.jsonl's step lines, as printed */
static int same_area(Model *a, Model *b, KancArea area)
{
    size_t na, nb;
    void *x = run_read_area(a, area, &na), *y = run_read_area(b, area, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

Test(train, same_seed_same_losses_and_resume_equals_uninterrupted, .timeout = 300)
{
    char *a = test_tmpdir(), *b = test_tmpdir(), *out = NULL;
    const char *data = test_corpus();
    const char *flags = TINY " --steps 8 --warmup 2 --eval-every 0 --log-every 1 --threads 2";
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s %s", data, a, flags), 0,
                 "%s", out);
    free(out);
    /* the same run again, killed (SIGKILL) during step 5, after the
       checkpoint of step 4; then resumed */
    char *cmd = xasprintf("cd '%s' && exec %s train models/kansformers.kdl --data %s --out %s %s "
                          "--save-every 4", test_root(), test_bin("kanrun"), data, b, flags);
    test_kill_at(cmd, "step      5/8");
    free(cmd);
    cr_assert_eq(test_run(&out, "$KANRUN train --resume %s", b), 0, "%s", out);
    free(out);
    char la[16][64], lb[16][64];
    int na = run_read_losses(a, la, NULL, 16), nb = run_read_losses(b, lb, NULL, 16);
    cr_assert_eq(na, 8);
    cr_assert_eq(nb, 8, "the resumed run's metrics hold every step once");
    for (int i = 0; i < 8; i++) cr_expect_str_eq(la[i], lb[i], "loss of step %d", i + 1);
    /* and the final state is identical to the bit */
    Model ma, mb;
    cJSON *sa = NULL, *sb = NULL;
    run_load_ckpt(a, &ma, &sa);
    run_load_ckpt(b, &mb, &sb);
    cr_expect(same_area(&ma, &mb, AREA_PARAMS), "parameters differ after resume");
    cr_expect(same_area(&ma, &mb, AREA_M) && same_area(&ma, &mb, AREA_V), "AdamW moments differ");
    cr_expect_eq(ma.dev->step, 8);
    cr_expect_eq(mb.dev->step, 8);
    cJSON_Delete(sa), cJSON_Delete(sb);
    model_free(&ma), model_free(&mb);
    /* a third run with the same seed: the same losses */
    char *c = test_tmpdir();
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s %s", data, c, flags), 0,
                 "%s", out);
    free(out);
    char lc[16][64];
    cr_assert_eq(run_read_losses(c, lc, NULL, 16), 8);
    for (int i = 0; i < 8; i++) cr_expect_str_eq(la[i], lc[i], "same seed, step %d", i + 1);
}

Test(train, checkpoint_round_trip_is_bit_exact, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/hybrid.kdl --data %s --out %s " TINY
                           " --steps 3 --warmup 1 --eval-every 0 --quiet",
                     test_corpus(), dir), 0, "%s", out);
    free(out);
    Model m, m2;
    cJSON *st = NULL, *st2 = NULL;
    run_load_ckpt(dir, &m, &st);
    /* save it elsewhere, load that: every area and the step survive exactly */
    char *dir2 = test_tmpdir(), err[512];
    cr_assert_eq(ckpt_save(dir2, &m, NULL, st, err, sizeof err), 0, "%s", err);
    run_load_ckpt(dir2, &m2, &st2);
    cr_expect(same_area(&m, &m2, AREA_PARAMS));
    cr_expect(same_area(&m, &m2, AREA_BUFFERS));
    cr_expect(same_area(&m, &m2, AREA_M));
    cr_expect(same_area(&m, &m2, AREA_V));
    cr_expect_eq(m2.dev->step, 3);
    /* model.safetensors is a PyTorch state_dict: format pt, minGPT's mask buffers */
    char *path = xasprintf("%s/model.safetensors", dir2);
    StFile f;
    cr_assert_eq(st_open(&f, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(st_meta(&f, "format"), "pt");
    const StTensor *mask = st_find(&f, "transformer.h.0.attn.bias");
    cr_assert(mask, "attn.bias buffer exported");
    cr_expect_eq(mask->rank, 4);
    cr_expect(st_find(&f, "transformer.h.1.mlp.c_fc.layers.0.spline_weight") != NULL);
    cr_expect(st_find(&f, "lm_head.weight") != NULL);
    st_close(&f);
    free(path);
    cJSON_Delete(st), cJSON_Delete(st2);
    model_free(&m), model_free(&m2);
}

Test(train, a_checkpoint_killed_mid_write_leaves_the_previous_one, .timeout = 200)
{
    char *dir = test_tmpdir(), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                           " --steps 2 --warmup 1 --eval-every 0 --quiet",
                     test_corpus(), dir), 0, "%s", out);
    free(out);
    Model m;
    cJSON *st = NULL;
    run_load_ckpt(dir, &m, &st);
    size_t nbytes;
    void *before = run_read_area(&m, AREA_PARAMS, &nbytes);
    /* children that start overwriting the checkpoint (as step 3) and are
       killed at increasing moments; after each, the directory still loads */
    for (int attempt = 0; attempt < 6; attempt++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            char err[256];
            m.dev->step = 3;
            for (;;) ckpt_save(dir, &m, NULL, st, err, sizeof err);
        }
        usleep(200 + 1500 * attempt);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        Model m2;
        cJSON *st2 = NULL;
        run_load_ckpt(dir, &m2, &st2);
        size_t n2;
        void *after = run_read_area(&m2, AREA_PARAMS, &n2);
        cr_expect(n2 == nbytes && !memcmp(before, after, nbytes), "parameters survive a kill");
        cr_expect(m2.dev->step == 2 || m2.dev->step == 3, "a whole checkpoint, step %lld",
                  (long long)m2.dev->step);
        free(after);
        cJSON_Delete(st2);
        model_free(&m2);
    }
    free(before);
    cJSON_Delete(st);
    model_free(&m);
}

Test(train, sampling_with_a_seed_is_reproducible, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                           " --steps 2 --warmup 1 --eval-every 0 --quiet",
                     test_corpus(), dir), 0, "%s", out);
    free(out);
    const char *args = "--prompt 'In the beginning' --tokens 24 --temperature 0.9 --top-k 40 --top-p 0.95";
    cr_assert_eq(test_run(&s1, "$KANRUN sample %s %s --seed 7", dir, args), 0, "%s", s1);
    cr_assert_eq(test_run(&s2, "$KANRUN sample %s %s --seed 7", dir, args), 0, "%s", s2);
    cr_assert_eq(test_run(&s3, "$KANRUN sample %s %s --seed 8", dir, args), 0, "%s", s3);
    cr_expect_str_eq(s1, s2);
    cr_expect(strncmp(s1, "In the beginning", 16) == 0, "the prompt is echoed: %s", s1);
    cr_expect(strcmp(s1, s3) != 0, "another seed, another sample");
    /* greedy decoding ignores the seed; a long prompt is cropped to the context */
    free(s1), free(s2);
    cr_assert_eq(test_run(&s1, "$KANRUN sample %s --temperature 0 --tokens 8 --seed 1 --prompt \"$(head -c 3000 %s)\"",
                     dir, test_corpus()), 0, "%s", s1);
    cr_assert_eq(test_run(&s2, "$KANRUN sample %s --temperature 0 --tokens 8 --seed 2 --prompt \"$(head -c 3000 %s)\"",
                     dir, test_corpus()), 0, "%s", s2);
    cr_expect_str_eq(s1, s2);
}

/* The measured bar: kansformers gpt-nano (3 layers, 3 heads, 48 wide, context
   64, batch 16, bytes) for 300 steps at lr 3e-3 reaches a validation loss of
   about 2.4 nats per byte (uniform: ln 256 = 5.55). The bar is 2.75. */
Test(train, kansformers_nano_learns_english, .timeout = 600)
{
    char *dir = test_tmpdir(), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s --steps 300 --lr 3e-3 "
                           "--min-lr 3e-4 --warmup 30 --eval-every 300 --eval-batches 10 --log-every 100 --threads 2",
                     test_corpus(), dir), 0, "%s", out);
    char *p = strstr(out, "val loss ");
    cr_assert(p, "%s", out);
    double vl = atof(p + 9);
    cr_log_info("kansformers gpt-nano, 300 steps: val loss %.4f", vl);
    cr_expect_lt(vl, 2.75, "validation loss %.4f is not below the bar 2.75", vl);
    free(out);
    cr_assert_eq(test_run(&out, "$KANRUN eval %s --data %s --batches 10", dir, test_corpus()), 0, "%s", out);
    cr_expect(strstr(out, "perplexity") != NULL, "%s", out);
    free(out);
}

/* kan-llama (RMSNorm, RoPE, a SwiGLU of KANs), 2 layers, 2 heads, 32 wide,
   context 32, batch 8, bytes: measured, 150 steps at lr 3e-3 from a loss of
   5.57 reach a validation loss of 2.37 (2m for kan-llama's defaults at 100
   steps: 2.33). The bar is 2.75. */
#define LLAMA_TINY "--set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=32 --set ffn_hidden=64"

Test(train, kan_llama_learns_english, .timeout = 600)
{
    char *dir = test_tmpdir(), *out = NULL;
    cr_assert_eq(test_run(&out, "$KANRUN train models/kan-llama.kdl --data %s --out %s --steps 150 --lr 3e-3 "
                           "--min-lr 3e-4 --warmup 15 --eval-every 150 --eval-batches 10 --log-every 50 --threads 2 "
                           "--batch 8 " LLAMA_TINY, test_corpus(), dir), 0, "%s", out);
    static char lines[160][64];
    double loss[160];
    int n = run_read_losses(dir, lines, loss, 160);
    cr_assert_eq(n, 150, "%s", out);
    char *p = strstr(out, "val loss ");
    cr_assert(p, "%s", out);
    double vl = atof(p + 9);
    cr_log_info("kan-llama tiny, 150 steps: loss %.4f -> %.4f, val loss %.4f", loss[0], loss[n - 1], vl);
    cr_expect_gt(loss[0], 5.0, "the first loss %.4f is not near ln 256", loss[0]);
    cr_expect_lt(loss[n - 1], loss[0] - 2.0, "the loss fell only from %.4f to %.4f", loss[0], loss[n - 1]);
    cr_expect_lt(vl, 2.75, "validation loss %.4f is not below the bar 2.75", vl);
    free(out);
    test_run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* the same two steps of kan-llama, tied head, on the CPU and the emulated CUDA path */
Test(train, kan_llama_emulated_cuda_matches_the_cpu, .timeout = 600)
{
    char *dir = test_tmpdir(), *out = NULL;
    const char *dev[2] = {"cpu", "emu"};
    double loss[2][4];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(test_run(&out, "$KANRUN train models/kan-llama.kdl --data %s --out %s/%s --steps 2 --lr 3e-3 "
                               "--warmup 0 --log-every 1 --threads 2 --device %s --batch 2 --set tie_head=true "
                               "--set n_layer=1 --set n_head=2 --set n_embd=16 --set block_size=16 --set ffn_hidden=32",
                         test_corpus(), dir, dev[k], dev[k]),
                     0, "%s", out);
        free(out);
        char *run = xasprintf("%s/%s", dir, dev[k]);
        char lines[4][64];
        cr_assert_eq(run_read_losses(run, lines, loss[k], 4), 2, "%s", run);
        free(run);
    }
    for (int s = 0; s < 2; s++)
        cr_expect(fabs(loss[0][s] - loss[1][s]) <= 1e-4 * loss[0][s], "step %d: loss cpu %.6f, emu %.6f", s + 1,
                  loss[0][s], loss[1][s]);
    test_run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* every command's bad input: a message and a non-zero status, never a signal */
Test(train, bad_input_is_an_error_not_a_crash, .timeout = 200)
{
    char *dir = test_tmpdir(), *out = NULL;
    struct {
        const char *cmd, *expect;
    } cases[] = {
        {"$KANRUN train models/kansformers.kdl --data /nonexistent/text", "/nonexistent/text"},
        {"$KANRUN train models/kansformers.kdl", "--data"},
        {"$KANRUN train models/kansformers.kdl --data %s/empty.txt --out %s/r1", "empty"},
        {"$KANRUN train models/kansformers.kdl --data %s/short.txt --out %s/r2", "too short"},
        {"$KANRUN train models/kansformers.kdl --data %s/short.txt --steps -4", "--steps"},
        {"$KANRUN train models/nonexistent.kdl --data %s/short.txt", "nonexistent.kdl"},
        {"$KANRUN train --resume %s/nockpt", "model.safetensors"},
        {"$KANRUN train --resume %s/trunc", "truncated"},
        {"$KANRUN sample %s/trunc", "truncated"},
        {"$KANRUN eval %s/trunc --data %s/short.txt", "truncated"},
        {"$KANRUN sample %s/nockpt --temperature -1", "temperature"},
        {"$KANRUN verify models/kansformers.kdl %s/trunc/model.safetensors", "truncated"},
        {"$KANRUN verify models/mingpt.kdl ../shared/fixtures/gpt_kansformers.safetensors", "missing"},
        {"$KANRUN encode --tokenizer gpt2:/nonexistent", "/nonexistent"},
        {"echo 1 2 999999 | $KANRUN decode", "outside the vocabulary"},
        {"$KANRUN bench models/kansformers.kdl --set n_head=5", "n_head"},
        {"$KANRUN frobnicate", "unknown command"},
    };
    /* fixtures: an empty file, a too-short file, a truncated checkpoint */
    char *cmd = xasprintf("cd %s && : > empty.txt && printf 'tiny' > short.txt && mkdir -p trunc nockpt", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    cr_assert_eq(test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s/good " TINY
                           " --steps 1 --warmup 1 --eval-every 0 --quiet && head -c 5000 %s/good/model.safetensors > %s/trunc/model.safetensors",
                     test_corpus(), dir, dir, dir), 0, "%s", out);
    free(out);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *c = xasprintf(cases[i].cmd, dir, dir);
        int st = test_run(&out, "%s", c);
        cr_expect(st != 0 && st < 128, "'%s' exited %d:\n%s", c, st, out);
        cr_expect(strstr(out, cases[i].expect) != NULL, "'%s' should mention '%s':\n%s", c,
                  cases[i].expect, out);
        free(out);
        free(c);
    }
}

/* A diverging run stops on the first non-finite loss (exit status 3) and the
   checkpoint written before it stays whole and finite. (--lr 1e16: step 1's
   weights stay within the load-time bound of 1.8e19 and step 2's loss is
   NaN; with --lr 1e30 step 1 already makes weights no checkpoint may hold,
   tests/test_saved_values.c.) */
Test(train, a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint, .timeout = 120)
{
    char *dir = test_tmpdir(), *out = NULL;
    int st = test_run(&out, "$KANRUN train models/kansformers.kdl --data %s --out %s " TINY
                       " --steps 30 --lr 1e16 --warmup 0 --clip 0 --save-every 1 --eval-every 0 --log-every 1",
                 test_corpus(), dir);
    cr_assert_eq(st, 3, "exit status %d:\n%s", st, out);
    cr_expect(strstr(out, "the loss is NaN at step 2") || strstr(out, "the loss is infinite at step 2"),
              "%s", out);
    cr_expect(strstr(out, "the last good checkpoint is") != NULL, "%s", out);
    free(out);
    Model m;
    cJSON *state = NULL;
    run_load_ckpt(dir, &m, &state);
    cr_expect_eq(m.dev->step, 1);
    size_t n;
    float *p = run_read_area(&m, AREA_PARAMS, &n);
    for (size_t i = 0; i < n / 4; i++)
        if (!isfinite(p[i])) cr_assert_fail("parameter %zu of the kept checkpoint is %g", i, p[i]);
    free(p);
    cJSON_Delete(state);
    model_free(&m);
}

/* The exported model.safetensors is a PyTorch state_dict of the reference:
   every name and shape of the fixture's state (plus minGPT's attn.bias causal
   masks, which the fixtures leave out), and, where a CPU torch is installed,
   kanref's load_state_dict(strict=True) takes it. */
Test(train, exported_weights_load_into_the_pytorch_reference, .timeout = 300)
{
    struct {
        const char *model, *fixture, *layout;
    } cases[] = {{"kansformers.kdl", "gpt_kansformers", "kansformers"},
                 {"hybrid.kdl", "gpt_hybrid", "hybrid"},
                 {"mingpt.kdl", "gpt_mlp", "mlp"}};
    const char *shared = test_shared();
    int have_torch = test_have_torch();
    cr_log_info("PyTorch %s", have_torch ? "found: load_state_dict(strict=True) is checked"
                                         : "not installed: names and shapes only");
    for (int c = 0; c < 3; c++) {
        char err[512], *path = xasprintf("%s/fixtures/%s.safetensors", shared, cases[c].fixture);
        StFile fx;
        cr_assert_eq(st_open(&fx, path, err, sizeof err), 0, "%s", err);
        cJSON *cfg = cJSON_Parse(st_meta(&fx, "config"));
        ConfigSets cs;
        config_to_sets(cfg, &cs);
        char *mpath = xasprintf("%s/models/%s", test_root(), cases[c].model);
        Model m;
        cr_assert_eq(model_compile(&m, mpath, NULL, cs.sets, cs.n, MODEL_TRAIN, 4, "cpu", stderr), 0);
        cr_assert_eq(model_init_params(&m, 1, err, sizeof err), 0, "%s", err);
        char *dir = test_tmpdir();
        cr_assert_eq(ckpt_save(dir, &m, NULL, NULL, err, sizeof err), 0, "%s", err);
        char *saved = xasprintf("%s/model.safetensors", dir);
        StFile ours;
        cr_assert_eq(st_open(&ours, saved, err, sizeof err), 0, "%s", err);
        /* the fixture's state entries: everything but inputs, expectations and gradients */
        int n_state = 0;
        for (int i = 0; i < st_num_tensors(&fx); i++) {
            const StTensor *t = st_tensor_at(&fx, i);
            const char *nm = t->name;
            if (!strncmp(nm, "grad.", 5) || !strncmp(nm, "step1.", 6) || !strcmp(nm, "idx") ||
                !strcmp(nm, "targets") || !strcmp(nm, "logits") || !strcmp(nm, "loss") || !strcmp(nm, "losses"))
                continue;
            n_state++;
            const StTensor *o = st_find(&ours, nm);
            cr_expect(o != NULL, "%s: the export lacks %s", cases[c].model, nm);
            if (!o) continue;
            cr_expect(o->rank == t->rank && !memcmp(o->shape, t->shape, sizeof o->shape),
                      "%s: %s has another shape", cases[c].model, nm);
        }
        for (int i = 0; i < st_num_tensors(&ours); i++) { /* nothing else but attn.bias */
            const char *nm = st_tensor_at(&ours, i)->name;
            size_t len = strlen(nm);
            int mask = len > 9 && !strcmp(nm + len - 9, "attn.bias");
            cr_expect(mask || st_find(&fx, nm), "%s: the export has %s, the reference has not",
                      cases[c].model, nm);
        }
        cr_expect_gt(n_state, 10);
        if (have_torch) {
            char *out = NULL;
            int st = test_run(&out, "/usr/bin/python3 tests/torch_load_state.py %s %s %s", dir, cases[c].layout, shared);
            cr_expect_eq(st, 0, "%s: load_state_dict failed:\n%s", cases[c].model, out);
            cr_expect(strncmp(out, "ok", 2) == 0, "%s", out);
            free(out);
        }
        st_close(&ours);
        st_close(&fx);
        model_free(&m);
        config_sets_free(&cs);
        cJSON_Delete(cfg);
        free(saved), free(mpath), free(path), free(dir);
    }
}
