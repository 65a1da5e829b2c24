/* config.c: hyperparameters between JSON and .kdl text. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* a JSON value as .kdl expression text; NULL for objects and null */
static char *kdl_text(const cJSON *v)
{
    if (cJSON_IsBool(v)) return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15) return xasprintf("%lld", (long long)d);
        return xasprintf("%.17g", d);
    }
    if (cJSON_IsString(v)) return xasprintf("\"%s\"", v->valuestring);
    if (cJSON_IsArray(v)) {
        char *s = xstrdup("[");
        const cJSON *e;
        int first = 1;
        cJSON_ArrayForEach(e, v)
        {
            char *t = kdl_text(e);
            if (!t) {
                free(s);
                return NULL;
            }
            char *u = xasprintf("%s%s%s", s, first ? "" : ", ", t);
            free(s), free(t);
            s = u;
            first = 0;
        }
        char *u = xasprintf("%s]", s);
        free(s);
        return u;
    }
    return NULL;
}

/* NULL when v has a .kdl spelling, else what it is */
static const char *not_kdl(const cJSON *v)
{
    if (cJSON_IsString(v)) /* a .kdl string literal has no escapes: "[^"\n]*" */
        return strpbrk(v->valuestring, "\"\n") ? "a string with a '\"' or a line break" : NULL;
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            const char *why = not_kdl(e);
            if (why) return why;
        }
        return NULL;
    }
    if (cJSON_IsNumber(v) || cJSON_IsBool(v)) return NULL;
    return cJSON_IsObject(v) ? "an object" : "null";
}

int config_check(const cJSON *obj, char *err, size_t errlen)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, obj)
    {
        const char *why = not_kdl(v);
        if (why) {
            set_err(err, errlen, "'%s' is %s, not a hyperparameter value (a number, bool, string "
                                 "or list)", v->string, why);
            return -1;
        }
    }
    return 0;
}

void config_sets_add(ConfigSets *cs, const char *name, const char *value, int soft)
{
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 16;
        cs->sets = xrealloc(cs->sets, sizeof *cs->sets * (size_t)cs->cap);
    }
    cs->sets[cs->n++] = (KdlSet){xstrdup(name), xstrdup(value), soft};
}

void config_to_sets(const cJSON *obj, ConfigSets *cs)
{
    memset(cs, 0, sizeof *cs);
    const cJSON *v;
    cJSON_ArrayForEach(v, obj)
    {
        char *text = kdl_text(v);
        if (!text) continue;
        config_sets_add(cs, v->string, text, 1);
        free(text);
    }
}

void config_sets_add_int(ConfigSets *cs, const char *name, long long value, int soft)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", value);
    config_sets_add(cs, name, v, soft);
}

void config_sets_free(ConfigSets *cs)
{
    for (int i = 0; i < cs->n; i++) {
        free((char *)cs->sets[i].name);
        free((char *)cs->sets[i].value);
    }
    free(cs->sets);
    memset(cs, 0, sizeof *cs);
}

int config_parse_set(const char *arg, ConfigSets *cs)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return -1;
    char *name = xstrdup(arg);
    name[eq - arg] = 0;
    config_sets_add(cs, name, eq + 1, 0);
    free(name);
    return 0;
}

double config_number(const cJSON *obj, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

cJSON *config_from_params(const KdlParams *p)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < p->n; i++) {
        cJSON *v = cJSON_Parse(p->values[i]); /* ints, floats, bools, lists are JSON too */
        if (!v) v = cJSON_CreateString(p->values[i]);
        cJSON_AddItemToObject(o, p->names[i], v);
    }
    return o;
}

int config_load_preset(const char *name, ConfigSets *cs)
{
    char *path = strchr(name, '/') || strstr(name, ".set") ? xstrdup(name)
                                                           : xasprintf("models/presets/%s.set", name);
    if (access(path, F_OK) != 0) { /* not opened: a FIFO would block; the reader refuses it */
        const char *root = getenv("KANC_ROOT");
        if (root && !strchr(name, '/')) {
            free(path);
            path = xasprintf("%s/models/presets/%s.set", root, name);
        }
    }
    KdlSet *sets = NULL;
    int n = 0;
    if (kdl_sets_load(path, 0, &sets, &n, stderr)) {
        fprintf(stderr, "error: cannot use the preset '%s' (%s)\n", name, path);
        free(path);
        return -1;
    }
    for (int i = 0; i < n; i++) config_sets_add(cs, sets[i].name, sets[i].value, 0);
    kdl_sets_free(sets, n);
    free(path);
    return 0;
}

int config_cli_set(const char *value, void *sets)
{
    if (config_parse_set(value, sets) == 0) return 0;
    fprintf(stderr, "kanrun: error: --set needs NAME=VALUE, got '%s'\n", value);
    return -1;
}

int config_cli_preset(const char *value, void *sets) { return config_load_preset(value, sets); }
