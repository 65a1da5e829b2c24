/* config.h: hyperparameters as JSON (file metadata) <-> .kdl overrides. */
#ifndef KANC_CONFIG_H
#define KANC_CONFIG_H

#include <cjson/cJSON.h>

#include "frontend.h"

/* An owned, growable list of overrides. */
typedef struct {
    KdlSet *sets;
    int n, cap;
} ConfigSets;

/* One soft override per number, bool, string or list member of the object
   (keys a model does not declare are ignored). "batch" maps to `batch`. */
void config_to_sets(const cJSON *obj, ConfigSets *cs);
/* Checks that every member of obj has a .kdl spelling (config_to_sets would
   otherwise drop it): a number, bool, string without '"' or a line break, or
   a list of those. Returns 0, or -1 with "'name' is ..." in err. */
int config_check(const cJSON *obj, char *err, size_t errlen);
/* Appends name=value (copied); soft as in KdlSet. A later entry wins. */
void config_sets_add(ConfigSets *cs, const char *name, const char *value, int soft);
/* The same for an integer value (--batch B is --set batch=B). */
void config_sets_add_int(ConfigSets *cs, const char *name, long long value, int soft);
void config_sets_free(ConfigSets *cs);
/* Parses "name=value" into an override; -1 if there is no '='. */
int config_parse_set(const char *arg, ConfigSets *cs);

/* Appends the overrides of a preset: a .set file (one NAME=VALUE a line),
   given as a path or as a name looked up in models/presets/NAME.set.
   Returns 0, or -1 (the error is printed). */
int config_load_preset(const char *name, ConfigSets *cs);

/* Option handlers (cli_opts.h CLI_CALL) for --set NAME=VALUE and --preset
   NAME; sets is a ConfigSets *. 0, or -1 with the message printed. */
int config_cli_set(const char *value, void *sets);
int config_cli_preset(const char *value, void *sets);

/* obj[key] as a number, or def when absent or not a number */
double config_number(const cJSON *obj, const char *key, double def);

/* The resolved hyperparameters as a JSON object (numbers, bools, lists). */
cJSON *config_from_params(const KdlParams *p);

#endif
