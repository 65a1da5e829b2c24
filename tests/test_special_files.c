/* test_special_files.c: a FIFO, /dev/zero or a folder where a file is read.
 *
 * Every reader (checkpoints, cubins, token shards and the token cache, the
 * gpt2 tokenizer's encoder.json and vocab.bpe, models, presets, the text
 * kanrun encode reads) refuses what is not a regular file at once, with
 * "PATH: ... not a regular file (a FIFO)", instead of blocking on a FIFO or
 * growing without bound on /dev/zero. In-process calls for the FIFOs (a hang
 * is the suite's timeout); the commands under `timeout` and a memory limit
 * for /dev/zero, asserting an exit that is not a signal and the message.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact.h"
#include "config.h"
#include "corpus.h"
#include "frontend.h"
#include "model.h"
#include "safetensors.h"
#include "shards.h"
#include "test_util.h"
#include "tokenizer.h"
#include "util.h"

TestSuite(special_files, .timeout = 60);

static char *fifo_in(const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    cr_assert(mkfifo(p, 0600) == 0, "mkfifo %s", p);
    return p;
}

static void link_to(const char *target, const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    cr_assert(symlink(target, p) == 0, "symlink %s", p);
    free(p);
}

static void rm_tree(char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    cr_expect(system(cmd) == 0);
    free(cmd);
    free(dir);
}

static void expect_refusal(const char *err, const char *path, const char *kind)
{
    char *want = xasprintf("not a regular file (%s)", kind);
    cr_expect(strstr(err, path) && strstr(err, want), "message '%s' (wanted %s and '%s')", err, path, want);
    free(want);
}

Test(special_files, checkpoints_and_cubins)
{
    char *dir = test_tmpdir();
    char *p = fifo_in(dir, "model.safetensors");
    char err[1024] = "";
    StFile f;
    cr_expect(st_open(&f, p, err, sizeof err) == -1);
    expect_refusal(err, p, "a FIFO");
    cr_expect(st_open(&f, dir, err, sizeof err) == -1);
    expect_refusal(err, dir, "a directory");
    char *c = fifo_in(dir, "step.cubin");
    Artifact a;
    cr_expect(artifact_read(&a, c, err, sizeof err) == -1);
    expect_refusal(err, c, "a FIFO");
    cr_expect(artifact_is_cubin(c)); /* by its name, without opening it */
    /* a run folder whose model is a FIFO */
    char *out = NULL;
    int rc = test_run(&out, "timeout 20 $KANRUN sample '%s' --tokens 1", dir);
    cr_expect(rc == 1, "kanrun sample: status %d: %s", rc, out);
    expect_refusal(out, p, "a FIFO");
    free(out);
    free(p);
    free(c);
    rm_tree(dir);
}

Test(special_files, token_shards_and_the_token_cache)
{
    char *dir = test_tmpdir();
    char *p = fifo_in(dir, "train.bin");
    int32_t *ids;
    size_t n;
    char err[1024] = "";
    cr_expect(shard_read(p, &ids, &n, 256, err, sizeof err) == -1);
    expect_refusal(err, p, "a FIFO");
    free(p);

    /* a corpus and its cache, then each cache file replaced by a FIFO: the
       cache is not used (the note says why) and is made anew */
    char *text = xasprintf("%s/text.txt", dir), *cache = xasprintf("%s/cache", dir);
    FILE *t = fopen(text, "w");
    cr_assert(t);
    for (int i = 0; i < 200; i++) fprintf(t, "line %d of a small corpus\n", i);
    fclose(t);
    Tokenizer *tok = tok_open("bytes", err, sizeof err);
    cr_assert(tok, "%s", err);
    Corpus co;
    cr_assert(corpus_prepare(text, NULL, tok, cache, &co, err, sizeof err) == 0, "%s", err);
    corpus_free(&co);
    const char *names[] = {"tokens.json", "train.bin", "val.bin"};
    for (int i = 0; i < 3; i++) {
        char *q = xasprintf("%s/%s", cache, names[i]);
        cr_assert(unlink(q) == 0);
        cr_assert(mkfifo(q, 0600) == 0);
        cr_assert(corpus_prepare(text, NULL, tok, cache, &co, err, sizeof err) == 0, "%s: %s", names[i], err);
        cr_expect(!co.reused_cache);
        cr_expect(strstr(co.cache_status, q) && strstr(co.cache_status, "not a regular file (a FIFO)"),
                  "%s: cache status '%s'", names[i], co.cache_status);
        corpus_free(&co);
        struct stat st;
        cr_expect(stat(q, &st) == 0 && S_ISREG(st.st_mode), "%s was not made anew", q);
        free(q);
    }
    tok_close(tok);
    free(text);
    free(cache);
    rm_tree(dir);
}

Test(special_files, gpt2_tokenizer_files)
{
    char *enc = test_shared_path("data/gpt2/encoder.json"), *bpe = test_shared_path("data/gpt2/vocab.bpe");
    if (access(enc, R_OK) || access(bpe, R_OK)) cr_skip_test("no %s", enc);
    char err[1024] = "";
    for (int which = 0; which < 2; which++) {
        char *dir = test_tmpdir();
        char *p = fifo_in(dir, which ? "vocab.bpe" : "encoder.json");
        link_to(which ? enc : bpe, dir, which ? "encoder.json" : "vocab.bpe");
        char *spec = xasprintf("gpt2:%s", dir);
        cr_expect(tok_open(spec, err, sizeof err) == NULL);
        expect_refusal(err, which ? "vocab.bpe" : "encoder.json", "a FIFO");
        free(spec);
        free(p);
        rm_tree(dir);
    }
    free(enc);
    free(bpe);
}

Test(special_files, models_and_presets)
{
    char *dir = test_tmpdir();
    char *k = fifo_in(dir, "m.kdl"), *s = fifo_in(dir, "p.set");
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    Model m;
    cr_expect(model_compile(&m, k, NULL, NULL, 0, MODEL_TRAIN, 4, "cpu", diag) != 0);
    model_free(&m); /* what a failed compile holds */
    KdlSet *sets = NULL;
    int n = 0;
    cr_expect(kdl_sets_load(s, 0, &sets, &n, diag) != 0);
    fclose(diag);
    expect_refusal(buf, k, "a FIFO");
    expect_refusal(buf, s, "a FIFO");
    free(buf);
    ConfigSets cs = {0};
    cr_expect(config_load_preset(s, &cs) != 0); /* no probe that opens it */
    config_sets_free(&cs);
    /* the commands say so and exit */
    char *out = NULL;
    int rc = test_run(&out, "timeout 20 $KANC '%s'", k);
    cr_expect(rc == 1, "kanc on a FIFO: status %d: %s", rc, out);
    expect_refusal(out, k, "a FIFO");
    free(out);
    rc = test_run(&out, "timeout 20 $KANC models/mingpt.kdl --preset '%s'", s);
    cr_expect(rc != 0 && rc != 124 && rc < 128, "kanc --preset on a FIFO: status %d: %s", rc, out);
    expect_refusal(out, s, "a FIFO");
    free(out);
    char *t = fifo_in(dir, "text.txt");
    rc = test_run(&out, "timeout 20 $KANRUN encode '%s'", t);
    cr_expect(rc == 1, "kanrun encode on a FIFO: status %d: %s", rc, out);
    expect_refusal(out, t, "a FIFO");
    free(out);
    free(t);
    free(k);
    free(s);
    rm_tree(dir);
}

/* /dev/zero under each name: refused at once; the memory limit turns the old
   unbounded read into a quick failure rather than a machine out of memory */
Test(special_files, dev_zero_as_every_kind_of_file)
{
    char *dir = test_tmpdir();
    const char *names[] = {"m.kdl", "p.set", "step.cubin", "model.safetensors", "text.txt"};
    for (int i = 0; i < 5; i++) link_to("/dev/zero", dir, names[i]);
    const char *cmds[] = {"$KANC '%s/m.kdl'",
                          "$KANC models/mingpt.kdl --preset '%s/p.set'",
                          "$KANRUN info '%s/step.cubin'",
                          "$KANRUN sample '%s/model.safetensors' --tokens 1",
                          "$KANRUN encode '%s/text.txt'"};
    const char *paths[] = {"m.kdl", "p.set", "step.cubin", "model.safetensors", "text.txt"};
    for (int i = 0; i < 5; i++) {
        char *cmd = xasprintf(cmds[i], dir);
        char *out = NULL;
        /* an address-sanitized binary reserves terabytes of shadow memory: no limit there */
        int rc = test_run(&out, "%stimeout 20 %s", getenv("KANC_SANITIZE") ? "" : "ulimit -v 4000000; ", cmd);
        cr_expect(rc != 0 && rc != 124 && rc < 128, "%s: status %d: %s", cmd, rc, out);
        expect_refusal(out, paths[i], "a character device");
        free(out);
        free(cmd);
    }
    rm_tree(dir);
}
