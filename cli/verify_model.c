/* verify_model.c: the model of a reference file, from its __metadata__ kind and
 * config (`kanrun verify FIXTURE`), found in the repository's models/.
 *
 * kanrun may run from any folder, so models/ is looked for in $KANC_ROOT, then
 * next to the executable (build/kanrun: ../models), as the emulator's prelude is.
 */
#include "verify.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* models/name in the first folder that has it; NULL with a message when none does */
static char *find_model(const char *name, char *err, size_t errlen)
{
    char dirs[3][PATH_MAX];
    int nd = 0;
    const char *root = getenv("KANC_ROOT");
    if (root && *root) snprintf(dirs[nd++], PATH_MAX, "%s/models", root);
    char exe[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(dirs[nd++], PATH_MAX, "%s/../models", exe);
        snprintf(dirs[nd++], PATH_MAX, "%s/../../models", exe);
    }
    char looked[3 * PATH_MAX + 8] = "";
    for (int i = 0; i < nd; i++) {
        char *path = xasprintf("%s/%s", dirs[i], name), full[PATH_MAX];
        if (access(path, R_OK) == 0 && realpath(path, full)) {
            free(path);
            return xstrdup(full);
        }
        free(path);
        snprintf(looked + strlen(looked), sizeof looked - strlen(looked), "%s%s", i ? ", " : "",
                 dirs[i]);
    }
    snprintf(err, errlen,
             "cannot find the models folder with %s (looked in %s): set KANC_ROOT to the "
             "repository, or name the model: kanrun verify MODEL.kdl REFERENCE",
             name, nd ? looked : "no folder: no KANC_ROOT, no /proc/self/exe");
    return NULL;
}

/* a GPT's layout when its config does not say: its parameter names tell */
static const char *layout_by_names(const StFile *f)
{
    for (int i = 0; i < st_num_tensors(f); i++)
        if (!strncmp(st_tensor_at(f, i)->name, "lm_head.layers.", 15)) return "kansformers";
    for (int i = 0; i < st_num_tensors(f); i++)
        if (strstr(st_tensor_at(f, i)->name, ".mlp.c_fc.layers.")) return "hybrid";
    return st_find(f, "lm_head.weight") ? "mlp" : NULL;
}

static const char *config_string(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *verify_model_for(const StFile *f, const char *kind, const cJSON *cfg, char *err,
                       size_t errlen)
{
    if (!kind || !cJSON_IsObject(cfg)) {
        snprintf(err, errlen,
                 "%s: no __metadata__ \"kind\" and JSON \"config\", so the model cannot be "
                 "chosen: name it (kanrun verify MODEL.kdl %s)", f->path, f->path);
        return NULL;
    }
    if (!strcmp(kind, "kan_linear") || !strcmp(kind, "kan_update_grid"))
        return find_model("kan-linear.kdl", err, errlen);
    if (!strcmp(kind, "kan_reg_loss")) return find_model("kan-stack.kdl", err, errlen);
    if (!strcmp(kind, "kan_chebyshev")) return find_model("kan-chebyshev.kdl", err, errlen);
    if (!strcmp(kind, "kan_rbf")) return find_model("kan-rbf.kdl", err, errlen);
    if (strcmp(kind, "gpt")) {
        snprintf(err, errlen, "%s: fixture kind '%s' is not supported by kanc yet", f->path, kind);
        return NULL;
    }
    const char *basis = config_string(cfg, "basis"); /* absent: B-splines */
    if (basis && strcmp(basis, "bspline") && strcmp(basis, "chebyshev") && strcmp(basis, "rbf")) {
        snprintf(err, errlen, "%s: fixture kind 'gpt' with basis '%s' is not supported by kanc yet",
                 f->path, basis);
        return NULL;
    }
    const char *layout = config_string(cfg, "layout");
    if (!layout) layout = layout_by_names(f);
    /* only kansformers.kdl has the `basis` hyperparameter: another layout would
       silently build B-spline layers */
    if (basis && strcmp(basis, "bspline") && layout && strcmp(layout, "kansformers")) {
        snprintf(err, errlen,
                 "%s: fixture kind 'gpt' with basis '%s' and layout '%s' is not supported by kanc yet "
                 "(models/kansformers.kdl has the basis hyperparameter)",
                 f->path, basis, layout);
        return NULL;
    }
    const char *model = !layout                        ? NULL
                        : !strcmp(layout, "kansformers") ? "kansformers.kdl"
                        : !strcmp(layout, "hybrid")      ? "hybrid.kdl"
                        : !strcmp(layout, "mlp")         ? "mingpt.kdl"
                                                         : NULL;
    if (!model) {
        snprintf(err, errlen, "%s: fixture kind 'gpt' with layout '%s' is not supported by kanc yet",
                 f->path, layout ? layout : "(none in the config, unknown parameter names)");
        return NULL;
    }
    return find_model(model, err, errlen);
}
