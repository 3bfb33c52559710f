/* config.h: the layered JSON configuration (skystack.conf(5)): built-in defaults
 * (share/skystack/defaults.json) < user file (--config, $SKYSTACK_CONFIG,
 * ~/.config/skystack/config.json) < --set a.b=value overrides. Every key
 * must exist in the defaults and keep its type; unknown keys are errors. */
#ifndef SKYSTACK_CONFIG_H
#define SKYSTACK_CONFIG_H

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_config {
    json_t *root;          /* effective configuration (owned) */
    json_t *defaults;      /* the built-in defaults: the schema every override
                              is checked against (owned) */
    char *user_path;       /* user file that was applied, or NULL */
} sk_config;

/* Load defaults, then the user file (`user_path`, else $SKYSTACK_CONFIG,
 * else ~/.config/skystack/config.json when it exists), then each
 * "a.b=value" of `sets` in order. SK_EINPUT naming the file/key/value on an
 * unknown key, a wrong type or unparsable JSON. */
int sk_config_load(const char *user_path, char *const *sets, int nsets, sk_config **out);
void sk_config_free(sk_config *c);

/* Apply one "section.key=value" override. The value is parsed as JSON when
 * it parses (numbers, true/false, null, arrays, objects), else taken as a
 * string; where the default is a string the text is always taken as the
 * string itself (so "--set x.filter=1" gives "1"). Then it is checked
 * against the default's type:
 * - a real default accepts integers too (stored as reals, so 3 and 3.0 give
 *   the same provenance); an integer default accepts integers only;
 * - a null default accepts null, a number or a string, kept as given;
 * - an object default is merged key by key (unknown keys are errors), except
 *   the open map preprocessing.instruments, where a new instrument starts as
 *   a copy of the built-in "generic" entry and is checked against it;
 * - an array default is replaced whole; each element is checked against the
 *   default's first element (objects are filled from it), any element is
 *   accepted when the default array is empty. */
int sk_config_set(sk_config *c, const char *assignment);

/* The same for a key and its value text given apart; `origin` ("--method")
 * names the option in messages. */
int sk_config_set_text(sk_config *c, const char *key, const char *value, const char *origin);

/* Merge a JSON object over the configuration with the same checks
 * (`origin` names it in messages). */
int sk_config_merge(sk_config *c, const json_t *overrides, const char *origin);

/* Value at a dotted path ("coaddition.method"), borrowed; NULL if absent. */
json_t *sk_config_get(const sk_config *c, const char *path);
/* Typed access; the fallback is returned when the key is absent or null. */
double sk_config_double(const sk_config *c, const char *path, double fallback);
long sk_config_long(const sk_config *c, const char *path, long fallback);
int sk_config_bool(const sk_config *c, const char *path, int fallback);
const char *sk_config_string(const sk_config *c, const char *path, const char *fallback);

/* The effective configuration, pretty-printed with sorted keys and
 * shortest round-trip numbers (sk_json_pretty), a valid user file (malloc'd). */
char *sk_config_dump(const sk_config *c);

/* The critical parameters of a process section (a new object): the section
 * without its non-critical keys (names, descriptions, verbosity, threads,
 * output paths), the input to sk_prov_new. The sections storage, db and
 * query are wholly non-critical and give {}. NULL with SK_EINPUT for a
 * section that does not exist. */
json_t *sk_config_critical(const sk_config *c, const char *section);

/* 1 when `path` (dotted) is a non-critical key: threads, description,
 * name, verbosity, output, output_dir or output_path directly in a section,
 * or anything in storage, db or query. */
int sk_config_is_noncritical(const char *path);

#ifdef __cplusplus
}
#endif
#endif
