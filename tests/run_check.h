/* run_check.h: what the training tests read back from a run folder: the step
 * losses metrics.jsonl printed, and a checkpoint loaded into a fresh model
 * whose storage areas can be compared byte for byte (tests/test_train.c,
 * tests/test_dist.c). */
#ifndef KANC_TEST_RUN_CHECK_H
#define KANC_TEST_RUN_CHECK_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "util.h"

/* the losses of metrics.jsonl's step lines, as printed, in lines (and as
   numbers in v when it is not NULL); at most max; returns how many */
static inline int run_read_losses(const char *dir, char lines[][64], double *v, int max)
{
    char *path = xasprintf("%s/metrics.jsonl", dir);
    char *text = read_file(path, NULL);
    free(path);
    cr_assert(text, "no metrics in %s", dir);
    int n = 0;
    for (char *l = strtok(text, "\n"); l && n < max; l = strtok(NULL, "\n")) {
        char *p = strstr(l, "\"loss\":");
        if (!p) continue;
        snprintf(lines[n], 64, "%.*s", (int)strcspn(p + 7, ","), p + 7);
        if (v) v[n] = atof(lines[n]);
        n++;
    }
    free(text);
    return n;
}

/* a copy of the model's storage area a (caller frees); *bytes its size */
static inline void *run_read_area(Model *m, KancArea a, size_t *bytes)
{
    *bytes = (size_t)device_area_elems(m->dev, a) * 4;
    void *p = xmalloc(*bytes + 4);
    m->dev->ops->read_area(m->dev, a, p);
    return p;
}

/* loads a checkpoint directory into a fresh model on the CPU; its training
   state into *state (NULL: dropped) */
static inline void run_load_ckpt(const char *dir, Model *m, cJSON **state)
{
    CkptInfo info;
    char err[512];
    cJSON *st = NULL;
    cr_assert_eq(ckpt_info(dir, &info, err, sizeof err), 0, "%s", err);
    ConfigSets cs;
    ckpt_sets(&info, &cs);
    cr_assert_eq(model_compile(m, info.model_path, info.source, cs.sets, cs.n, MODEL_TRAIN, 4, "cpu", stderr), 0);
    cr_assert_eq(ckpt_load(dir, m, &st, err, sizeof err), 0, "%s", err);
    if (state)
        *state = st;
    else
        cJSON_Delete(st);
    config_sets_free(&cs);
    ckpt_info_free(&info);
}

#endif
