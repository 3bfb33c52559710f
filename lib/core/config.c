/* config.c: the layered, type-checked JSON configuration (skystack.conf(5)) (see skystack/config.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/json.h"
#include "skystack/share.h"

/* The non-critical keys, the one place they are listed (documented in
 * skystack.conf(5)): keys with these names directly in a section (so
 * coaddition.threads but not a critical nested key such as x.kernel.name),
 * and whole sections that are not processes. They never enter a
 * provenance. */
static const char *const noncritical_names[] = {
    "threads", "description", "name", "verbosity", "output", "output_dir", "output_path", NULL,
};
static const char *const noncritical_sections[] = {"storage", "db", "query", NULL};

/* The one open map: users add entries, each checked against "generic". */
#define OPEN_MAP_PATH "preprocessing.instruments"
#define OPEN_MAP_TEMPLATE "generic"

static int in_list(const char *const *list, const char *s, size_t n)
{
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(list[i], s, n) == 0)
            return 1;
    return 0;
}

int sk_config_is_noncritical(const char *path)
{
    if (!path || !*path)
        return 0;
    const char *dot = strchr(path, '.');
    if (in_list(noncritical_sections, path, dot ? (size_t)(dot - path) : strlen(path)))
        return 1;
    if (!dot || strchr(dot + 1, '.'))
        return 0;
    return in_list(noncritical_names, dot + 1, strlen(dot + 1));
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* What a default of this type accepts, for messages. */
static const char *expected_for(const json_t *schema)
{
    switch (json_typeof(schema)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "true or false";
    case JSON_NULL: return "null, a number or a string";
    }
    return "?";
}

/* "a, b, c" of an object's keys, for unknown-key messages (malloc'd). */
static char *key_list(const json_t *obj)
{
    size_t len = 1;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
        len += strlen(k) + 2;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    json_object_foreach((json_t *)obj, k, v) {
        if (s[0])
            strcat(s, ", ");
        strcat(s, k);
    }
    return s;
}

static char *join_path(const char *parent, const char *key)
{
    size_t n = strlen(parent) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", parent, *parent ? "." : "", key);
    return p;
}

static int merge_object(json_t *schema, json_t *target, const json_t *over, const char *path,
                        const char *origin);

/* The value to store for `over` where the default is `schema` and the
 * current value `cur` (may be NULL): a new reference in *out. */
static int checked_value(json_t *schema, json_t *cur, const json_t *over, const char *path,
                         const char *origin, json_t **out)
{
    *out = NULL;
    int st = json_typeof(schema), ot = json_typeof(over);
    switch (st) {
    case JSON_OBJECT: {
        if (ot != JSON_OBJECT)
            break;
        json_t *dst = cur && json_is_object(cur) ? json_deep_copy(cur) : json_deep_copy(schema);
        if (!dst)
            return sk_error(SK_EIO, "%s: out of memory", origin);
        int rc = merge_object(schema, dst, over, path, origin);
        if (rc) {
            json_decref(dst);
            return rc;
        }
        *out = dst;
        return SK_OK;
    }
    case JSON_ARRAY: {
        if (ot != JSON_ARRAY)
            break;
        json_t *dst = json_array();
        if (!dst)
            return sk_error(SK_EIO, "%s: out of memory", origin);
        json_t *elem_schema = json_array_get(schema, 0);
        for (size_t i = 0; i < json_array_size(over); i++) {
            json_t *elem = json_array_get(over, i), *val = NULL;
            if (!elem_schema) {
                val = json_deep_copy(elem);
            } else {
                char sub[64];
                snprintf(sub, sizeof sub, "[%zu]", i);
                size_t n = strlen(path) + sizeof sub;
                char *subpath = malloc(n);
                if (!subpath) {
                    json_decref(dst);
                    return sk_error(SK_EIO, "%s: out of memory", origin);
                }
                snprintf(subpath, n, "%s%s", path, sub);
                int rc = checked_value(elem_schema, NULL, elem, subpath, origin, &val);
                free(subpath);
                if (rc) {
                    json_decref(dst);
                    return rc;
                }
            }
            if (!val || json_array_append_new(dst, val)) {
                json_decref(dst);
                return sk_error(SK_EIO, "%s: out of memory", origin);
            }
        }
        *out = dst;
        return SK_OK;
    }
    case JSON_STRING:
        if (ot == JSON_STRING)
            *out = json_incref((json_t *)over);
        break;
    case JSON_INTEGER:
        if (ot == JSON_INTEGER)
            *out = json_incref((json_t *)over);
        break;
    case JSON_REAL:
        if (ot == JSON_REAL)
            *out = json_incref((json_t *)over);
        else if (ot == JSON_INTEGER)
            *out = json_real((double)json_integer_value(over));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        if (ot == JSON_TRUE || ot == JSON_FALSE)
            *out = json_incref((json_t *)over);
        break;
    case JSON_NULL:
        if (ot == JSON_NULL || ot == JSON_INTEGER || ot == JSON_REAL || ot == JSON_STRING)
            *out = json_incref((json_t *)over);
        break;
    }
    if (*out)
        return SK_OK;
    return sk_error(SK_EINPUT, "%s: %s must be %s, not %s", origin, path, expected_for(schema),
                    type_name(over));
}

/* Merge `over` (an object) into `target` (an object of the same place as
 * `schema`), checking every key. */
static int merge_object(json_t *schema, json_t *target, const json_t *over, const char *path,
                        const char *origin)
{
    const char *key;
    json_t *val;
    int open_map = strcmp(path, OPEN_MAP_PATH) == 0;
    json_object_foreach((json_t *)over, key, val) {
        json_t *sub_schema = json_object_get(schema, key);
        if (!sub_schema && open_map)
            sub_schema = json_object_get(schema, OPEN_MAP_TEMPLATE);
        if (!sub_schema) {
            char *full = join_path(path, key);
            char *known = key_list(schema);
            int rc = sk_error(SK_EINPUT, "%s: unknown key %s (%s%shas: %s)", origin,
                              full ? full : key, path, *path ? " " : "the configuration ",
                              known ? known : "");
            free(full);
            free(known);
            return rc;
        }
        char *full = join_path(path, key);
        if (!full)
            return sk_error(SK_EIO, "%s: out of memory", origin);
        json_t *newval = NULL;
        int rc = checked_value(sub_schema, json_object_get(target, key), val, full, origin, &newval);
        free(full);
        if (rc)
            return rc;
        if (json_object_set_new(target, key, newval))
            return sk_error(SK_EIO, "%s: out of memory", origin);
    }
    return SK_OK;
}

int sk_config_merge(sk_config *c, const json_t *overrides, const char *origin)
{
    if (!json_is_object(overrides))
        return sk_error(SK_EINPUT, "%s: the configuration must be a JSON object, not %s", origin,
                        overrides ? type_name(overrides) : "nothing");
    /* Work on a copy so that a rejected override leaves the configuration as it was. */
    json_t *work = json_deep_copy(c->root);
    if (!work)
        return sk_error(SK_EIO, "%s: out of memory", origin);
    int rc = merge_object(c->defaults, work, overrides, "", origin);
    if (rc) {
        json_decref(work);
        return rc;
    }
    json_decref(c->root);
    c->root = work;
    return SK_OK;
}

static int merge_file(sk_config *c, const char *path)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return sk_error(SK_EINPUT, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column,
                        jerr.text);
    int rc = sk_config_merge(c, j, path);
    json_decref(j);
    return rc;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The default at a dotted path (following the open map), or NULL. */
static json_t *schema_at(const json_t *defaults, const char *key)
{
    json_t *node = (json_t *)defaults;
    char *copy = strdup(key);
    if (!copy)
        return NULL;
    char *save = NULL;
    size_t consumed = 0;
    for (char *part = strtok_r(copy, ".", &save); part && node; part = strtok_r(NULL, ".", &save)) {
        json_t *next = json_object_get(node, part);
        if (!next && consumed == strlen(OPEN_MAP_PATH) && strncmp(key, OPEN_MAP_PATH, consumed) == 0)
            next = json_object_get(node, OPEN_MAP_TEMPLATE);
        node = next;
        consumed += strlen(part) + (consumed ? 1 : 0);
    }
    free(copy);
    return node;
}

int sk_config_set_text(sk_config *c, const char *key, const char *value, const char *origin)
{
    size_t klen = strlen(key);
    if (klen == 0 || key[0] == '.' || key[klen - 1] == '.' || strstr(key, ".."))
        return sk_error(SK_EINPUT, "%s: expected section.key=value, not an empty key part", origin);

    json_t *schema = schema_at(c->defaults, key);
    json_t *val = NULL;
    if (!json_is_string(schema))
        val = json_loads(value, JSON_DECODE_ANY, NULL);
    if (!val)
        val = json_string(value);
    if (!val)
        return sk_error(SK_EINPUT, "%s: the value is not valid UTF-8", origin);

    /* Wrap into {a:{b:value}} and merge with the usual checks. */
    char *copy = strdup(key);
    if (!copy) {
        json_decref(val);
        return sk_error(SK_EIO, "%s: out of memory", origin);
    }
    for (char *dot = strrchr(copy, '.');; dot = strrchr(copy, '.')) {
        const char *leaf = dot ? dot + 1 : copy;
        json_t *obj = json_object();
        if (!obj || json_object_set_new(obj, leaf, val)) {
            json_decref(obj);
            free(copy);
            return sk_error(SK_EIO, "%s: out of memory", origin);
        }
        val = obj;
        if (!dot)
            break;
        *dot = '\0';
    }
    free(copy);
    int rc = sk_config_merge(c, val, origin);
    json_decref(val);
    return rc;
}

int sk_config_set(sk_config *c, const char *assignment)
{
    size_t n = strlen(assignment) + 8;
    char *origin = malloc(n);
    char *key = strdup(assignment);
    if (!origin || !key) {
        free(origin);
        free(key);
        return sk_error(SK_EIO, "--set: out of memory");
    }
    snprintf(origin, n, "--set %s", assignment);
    char *eq = strchr(key, '=');
    int rc;
    if (!eq) {
        rc = sk_error(SK_EINPUT, "%s: expected section.key=value", origin);
    } else {
        *eq = '\0';
        rc = sk_config_set_text(c, key, eq + 1, origin);
    }
    free(origin);
    free(key);
    return rc;
}

int sk_config_load(const char *user_path, char *const *sets, int nsets, sk_config **out)
{
    *out = NULL;
    char defaults_path[PATH_MAX];
    int rc = sk_share_path("defaults.json", defaults_path, sizeof defaults_path);
    if (rc)
        return rc;
    sk_config *c = calloc(1, sizeof *c);
    if (!c)
        return sk_error(SK_EIO, "configuration: out of memory");
    json_error_t jerr;
    c->defaults = json_load_file(defaults_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(c->defaults)) {
        sk_config_free(c);
        return sk_error(SK_EIO, "%s:%d:%d: built-in defaults are not a JSON object: %s",
                        defaults_path, jerr.line, jerr.column, jerr.text);
    }
    c->root = json_deep_copy(c->defaults);

    /* The user file: --config, else $SKYSTACK_CONFIG, else the XDG place if it exists. */
    char home_path[PATH_MAX];
    const char *env = getenv("SKYSTACK_CONFIG");
    const char *from = NULL, *file = NULL;
    if (user_path && *user_path) {
        file = user_path;
        from = "--config";
    } else if (env && *env) {
        file = env;
        from = "$SKYSTACK_CONFIG";
    } else {
        const char *home = getenv("HOME");
        if (home && *home) {
            snprintf(home_path, sizeof home_path, "%s/.config/skystack/config.json", home);
            if (is_file(home_path))
                file = home_path;
        }
    }
    if (file) {
        if (from && !is_file(file)) {
            rc = sk_error(SK_ENOTFOUND, "%s %s: no such configuration file", from, file);
            sk_config_free(c);
            return rc;
        }
        rc = merge_file(c, file);
        if (rc) {
            sk_config_free(c);
            return rc;
        }
        c->user_path = strdup(file);
    }
    for (int i = 0; i < nsets; i++) {
        rc = sk_config_set(c, sets[i]);
        if (rc) {
            sk_config_free(c);
            return rc;
        }
    }
    *out = c;
    return SK_OK;
}

void sk_config_free(sk_config *c)
{
    if (!c)
        return;
    json_decref(c->root);
    json_decref(c->defaults);
    free(c->user_path);
    free(c);
}

json_t *sk_config_get(const sk_config *c, const char *path)
{
    if (!c || !path)
        return NULL;
    json_t *node = c->root;
    const char *s = path;
    while (node && *s) {
        const char *e = strchr(s, '.');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (json_is_object(node)) {
            node = json_object_getn(node, s, n);
        } else if (json_is_array(node)) {
            char *end;
            unsigned long idx = strtoul(s, &end, 10);
            node = end == s + n && n ? json_array_get(node, idx) : NULL;
        } else {
            node = NULL;
        }
        if (!e)
            break;
        s = e + 1;
    }
    return node;
}

double sk_config_double(const sk_config *c, const char *path, double fallback)
{
    json_t *v = sk_config_get(c, path);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

long sk_config_long(const sk_config *c, const char *path, long fallback)
{
    json_t *v = sk_config_get(c, path);
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_real(v))
        return (long)json_real_value(v);
    return fallback;
}

int sk_config_bool(const sk_config *c, const char *path, int fallback)
{
    json_t *v = sk_config_get(c, path);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

const char *sk_config_string(const sk_config *c, const char *path, const char *fallback)
{
    json_t *v = sk_config_get(c, path);
    return json_is_string(v) ? json_string_value(v) : fallback;
}

char *sk_config_dump(const sk_config *c) { return sk_json_pretty(c->root); }

json_t *sk_config_critical(const sk_config *c, const char *section)
{
    json_t *sec = json_object_get(c->root, section);
    if (!json_is_object(sec)) {
        sk_error(SK_EINPUT, "configuration: no section %s", section);
        return NULL;
    }
    if (in_list(noncritical_sections, section, strlen(section)))
        return json_object();
    json_t *copy = json_deep_copy(sec);
    for (int i = 0; copy && noncritical_names[i]; i++)
        json_object_del(copy, noncritical_names[i]);
    return copy;
}
