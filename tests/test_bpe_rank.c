/* test_bpe_rank.c: BPE merges by rank (the line order of vocab.bpe), whatever
 * that order, in near-linear time.
 *
 *   - tiny vocabularies checked by hand: swapping two lines swaps their ranks
 *     and so the result; a merge listed before the merge that makes its
 *     input merges in GPT-2's rounds (every occurrence of the best pair, left
 *     to right, before any pair that round creates);
 *   - GPT-2's vocab.bpe with two lines swapped (so that a merge uses a symbol
 *     before the line that makes it): the same ids as the literal port of
 *     encoder.py (tok_set_reference_bpe) on varied text;
 *   - a 200 KB single word with that file encodes in well under 2 s.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rng.h"
#include "test_util.h"
#include "tokenizer.h"
#include "util.h"

TestSuite(bpe_rank, .timeout = 120);

static void write_text(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(s, 1, n, f) == n && fclose(f) == 0, "%s", path);
}

static void rm_tree(char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    cr_expect(system(cmd) == 0);
    free(cmd);
    free(dir);
}

/* GPT-2's bytes_to_unicode() as UTF-8: the symbol of byte b */
static void byte_symbol(int b, char out[4])
{
    int cp = b, n = 0;
    if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))) {
        for (int c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
    }
}

/* a folder with encoder.json (the 256 bytes as ids 0..255, then `extra` from
   256 on) and vocab.bpe (the merge lines, in this order); caller frees */
static char *tiny_vocab(const char *const *extra, int nextra, const char *merges)
{
    char *dir = test_tmpdir();
    cJSON *o = cJSON_CreateObject();
    for (int b = 0; b < 256; b++) {
        char s[4];
        byte_symbol(b, s);
        cJSON_AddNumberToObject(o, s, b);
    }
    for (int i = 0; i < nextra; i++) cJSON_AddNumberToObject(o, extra[i], 256 + i);
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *p = xasprintf("%s/encoder.json", dir);
    write_text(p, js, strlen(js));
    free(p);
    free(js);
    char *bpe = xasprintf("#version: 0.2\n%s", merges);
    p = xasprintf("%s/vocab.bpe", dir);
    write_text(p, bpe, strlen(bpe));
    free(p);
    free(bpe);
    return dir;
}

static Tokenizer *open_dir(const char *dir)
{
    char *spec = xasprintf("gpt2:%s", dir);
    char err[1024];
    Tokenizer *t = tok_open(spec, err, sizeof err);
    cr_assert(t, "%s", err);
    free(spec);
    return t;
}

static void expect_ids(Tokenizer *t, const char *text, const int32_t *want, size_t nwant)
{
    for (int reference = 0; reference < 2; reference++) {
        tok_set_reference_bpe(t, reference);
        int32_t *ids;
        size_t n;
        cr_assert(tok_encode(t, text, strlen(text), &ids, &n) == 0, "%s", tok_error(t));
        int same = n == nwant;
        for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
        char got[256] = "";
        for (size_t i = 0; i < n && strlen(got) < 200; i++) snprintf(got + strlen(got), 16, " %d", ids[i]);
        cr_expect(same, "\"%s\"%s: got%s", text, reference ? " (reference loop)" : "", got);
        free(ids);
    }
    tok_set_reference_bpe(t, 0);
}

Test(bpe_rank, swapping_two_lines_swaps_their_ranks)
{
    const char *extra[] = {"ab", "bc"};
    char *d1 = tiny_vocab(extra, 2, "a b\nb c\n"), *d2 = tiny_vocab(extra, 2, "b c\na b\n");
    Tokenizer *t1 = open_dir(d1), *t2 = open_dir(d2);
    expect_ids(t1, "abc", (int32_t[]){256, 'c'}, 2); /* "a b" is rank 0 */
    expect_ids(t2, "abc", (int32_t[]){'a', 257}, 2); /* now "b c" is */
    tok_close(t1);
    tok_close(t2);
    rm_tree(d1);
    rm_tree(d2);
}

Test(bpe_rank, a_merge_listed_before_its_input_is_made_merges_in_rounds)
{
    /* "ab a" (rank 0) uses "ab", which only "a b" (rank 1) makes */
    const char *extra[] = {"ab", "aba"};
    char *d = tiny_vocab(extra, 2, "ab a\na b\n");
    Tokenizer *t = open_dir(d);
    /* round 1 merges both "a b": [ab, ab]; no pair left */
    expect_ids(t, "abab", (int32_t[]){256, 256}, 2);
    /* [ab, a] then "ab a" */
    expect_ids(t, "aba", (int32_t[]){257}, 1);
    /* [ab, ab, a] then the rank-0 pair: [ab, aba] */
    expect_ids(t, "ababa", (int32_t[]){256, 257}, 2);
    expect_ids(t, "aaba", (int32_t[]){'a', 257}, 2);
    tok_close(t);
    rm_tree(d);
}

static uint64_t rnd_state;
static uint64_t rnd(void) { return kanc_mix64(rnd_state++); }

/* random merge tables over "abc", their lines shuffled (so merges often come
   before the merge that makes their input): the heap loop and the literal
   encoder.py loop agree on random words */
Test(bpe_rank, random_tables_in_random_order_match_the_reference_loop)
{
    rnd_state = 3;
    for (int table = 0; table < 20; table++) {
        char *syms[64] = {"a", "b", "c"};
        int ns = 3;
        char *lines[61];
        int nl = 0;
        while (ns < 40) {
            const char *x = syms[rnd() % (uint64_t)ns], *y = syms[rnd() % (uint64_t)ns];
            char *m = xasprintf("%s%s", x, y);
            int dup = strlen(m) > 12;
            for (int i = 0; i < ns && !dup; i++) dup = !strcmp(syms[i], m);
            if (dup) {
                free(m);
                continue;
            }
            syms[ns++] = m;
            lines[nl++] = xasprintf("%s %s\n", x, y);
        }
        for (int i = nl - 1; i > 0; i--) { /* shuffle */
            int j = (int)(rnd() % (uint64_t)(i + 1));
            char *tmp = lines[i];
            lines[i] = lines[j], lines[j] = tmp;
        }
        size_t cap = 4096;
        char *merges = xmalloc(cap);
        merges[0] = 0;
        for (int i = 0; i < nl; i++) strcat(merges, lines[i]);
        char *dir = tiny_vocab((const char *const *)syms + 3, ns - 3, merges);
        Tokenizer *t = open_dir(dir), *r = open_dir(dir);
        tok_set_reference_bpe(r, 1);
        for (int w = 0; w < 50; w++) {
            char word[200];
            size_t n = 1 + rnd() % 150;
            for (size_t i = 0; i < n; i++) word[i] = "abc"[rnd() % 3];
            word[n] = 0;
            int32_t *a, *b;
            size_t na, nb;
            cr_assert(tok_encode(t, word, n, &a, &na) == 0, "%s", tok_error(t));
            cr_assert(tok_encode(r, word, n, &b, &nb) == 0, "%s", tok_error(r));
            cr_assert(na == nb && !memcmp(a, b, na * sizeof *a), "table %d, word %s:\n%s", table, word, merges);
            free(a);
            free(b);
        }
        tok_close(t);
        tok_close(r);
        rm_tree(dir);
        free(merges);
        for (int i = 3; i < ns; i++) free(syms[i]);
        for (int i = 0; i < nl; i++) free(lines[i]);
    }
}

/* ------------------------------------------------------------ GPT-2's file, two lines swapped */

/* a copy of GPT-2's tokenizer with merge lines 1 ("Ġ t") and 7 ("Ġt he")
   swapped: "Ġt he" now comes before the merge that makes "Ġt" */
static char *swapped_gpt2(void)
{
    char *enc = test_shared_path("data/gpt2/encoder.json"), *bpe = test_shared_path("data/gpt2/vocab.bpe");
    if (access(enc, R_OK) || access(bpe, R_OK)) cr_skip_test("no %s", bpe);
    size_t len;
    char *text = read_file(bpe, &len);
    cr_assert(text);
    char *l1 = strstr(text, "\n\xc4\xa0 t\n"), *l7 = strstr(text, "\n\xc4\xa0t he\n");
    cr_assert(l1 && l7 && l1 < l7, "%s: the expected lines are not there", bpe);
    /* "\nĠ t\n" and "\nĠt he\n" differ in length: rebuild the text */
    char *out = xmalloc(len + 1), *w = out;
    size_t a = (size_t)(l1 - text) + 1, alen = 4, b = (size_t)(l7 - text) + 1, blen = 6;
    memcpy(w, text, a), w += a;
    memcpy(w, text + b, blen), w += blen;
    memcpy(w, text + a + alen, b - a - alen), w += b - a - alen;
    memcpy(w, text + a, alen), w += alen;
    memcpy(w, text + b + blen, len - b - blen), w += len - b - blen;
    cr_assert((size_t)(w - out) == len);
    const char *head = "#version: 0.2\n\xc4\xa0t he\n\xc4\xa0 a\n";
    cr_assert(!strncmp(out, head, strlen(head)), "%.40s", out);
    char *dir = test_tmpdir();
    char *p = xasprintf("%s/vocab.bpe", dir), *q = xasprintf("%s/encoder.json", dir);
    write_text(p, out, len);
    cr_assert(symlink(enc, q) == 0);
    free(p);
    free(q);
    free(out);
    free(text);
    free(enc);
    free(bpe);
    return dir;
}

Test(bpe_rank, swapped_gpt2_file_matches_the_reference_loop)
{
    char *dir = swapped_gpt2();
    Tokenizer *t = open_dir(dir), *r = open_dir(dir);
    tok_set_reference_bpe(r, 1);
    /* words that use both lines, words from the vectors, random words */
    const char *fixed[] = {" the", " then the", " theatre", " tthe", " the the thethe", " t the", " athe",
                           "The quick brown fox jumps over the lazy dog; the end.", " ttttttthe hetheth"};
    char *texts[64];
    int nt = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) texts[nt++] = xstrdup(fixed[i]);
    char *vp = test_shared_path("data/gpt2/encode_vectors.json");
    char *vj = read_file(vp, NULL);
    cJSON *root = vj ? cJSON_Parse(vj) : NULL;
    for (cJSON *c = root ? root->child : NULL; c && nt < 40; c = c->next)
        texts[nt++] = xstrdup(cJSON_GetObjectItem(c, "text")->valuestring);
    cJSON_Delete(root);
    free(vj);
    free(vp);
    rnd_state = 7;
    const char *alpha = "the ath";
    while (nt < 64) {
        size_t n = 20 + rnd() % 300;
        char *s = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) s[i] = alpha[rnd() % 7];
        s[n] = 0;
        texts[nt++] = s;
    }
    int differ_from_default = 0;
    Tokenizer *plain = NULL;
    char *gd = test_shared_path("data/gpt2");
    char *spec = xasprintf("gpt2:%s", gd);
    char err[512];
    plain = tok_open(spec, err, sizeof err);
    cr_assert(plain, "%s", err);
    for (int k = 0; k < nt; k++) {
        int32_t *a, *b, *c;
        size_t na, nb, nc;
        size_t len = strlen(texts[k]);
        cr_assert(tok_encode(t, texts[k], len, &a, &na) == 0, "%s", tok_error(t));
        cr_assert(tok_encode(r, texts[k], len, &b, &nb) == 0, "%s", tok_error(r));
        cr_assert(tok_encode(plain, texts[k], len, &c, &nc) == 0, "%s", tok_error(plain));
        int same = na == nb && !memcmp(a, b, na * sizeof *a);
        cr_expect(same, "text %d (\"%.60s\"): %zu ids, the reference loop gives %zu", k, texts[k], na, nb);
        differ_from_default += nc != na || memcmp(a, c, na * sizeof *a);
        free(a);
        free(b);
        free(c);
        free(texts[k]);
    }
    cr_log_info("the swap changed %d of %d encodings", differ_from_default, nt);
    tok_close(plain);
    free(spec);
    free(gd);
    tok_close(t);
    tok_close(r);
    rm_tree(dir);
}

Test(bpe_rank, a_200kb_word_is_fast_with_the_swapped_file)
{
    char *dir = swapped_gpt2();
    Tokenizer *t = open_dir(dir);
    size_t n = 200 * 1024;
    char *s = xmalloc(n + 1);
    rnd_state = 11;
    s[0] = ' ';
    for (size_t i = 1; i < n; i++) s[i] = (char)('a' + rnd() % 26);
    s[n] = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids;
    size_t nids;
    cr_assert(tok_encode(t, s, n, &ids, &nids) == 0, "%s", tok_error(t));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_log_info("200 KB word: %zu ids in %.3f s", nids, sec);
    cr_expect(sec < 2.0, "a 200 KB word took %.2f s", sec);
    cr_expect(nids > 1000 && nids < n);
    /* and it decodes back */
    size_t dl;
    char *back = tok_decode(t, ids, nids, &dl);
    cr_expect(dl == n && !memcmp(back, s, n));
    free(back);
    free(ids);
    free(s);
    tok_close(t);
    rm_tree(dir);
}
