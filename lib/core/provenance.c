/* provenance.c: provenances, their ids over canonical JSON, and the product sidecars (skystack(7), PROVENANCE) (see skystack/provenance.h). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/json.h"
#include "skystack/provenance.h"
#include "skystack/share.h"

/* The code version of each process. Bump MINOR (or MAJOR) whenever the
 * process's code changes its output; PATCH for changes that never do. */
static const struct {
    const char *process;
    const char *version;
} code_versions[] = {
    {"preprocessing", "1.0.0"},
    {"extraction", "1.16.0"},
    {"coaddition", "1.5.0"},
    {"referencing", "1.0.0"},
};
#define NPROCESSES (sizeof code_versions / sizeof code_versions[0])

const char *sk_code_version(const char *process)
{
    for (size_t i = 0; process && i < NPROCESSES; i++)
        if (strcmp(code_versions[i].process, process) == 0)
            return code_versions[i].version;
    return NULL;
}

/* "MAJOR.MINOR" of "MAJOR.MINOR[.PATCH]" (decimal, leading zeros dropped)
 * into `out`; -1 when malformed. */
static int major_minor(const char *version, char out[32])
{
    unsigned long part[3] = {0, 0, 0};
    int n = 0;
    const char *s = version;
    while (n < 3) {
        if (*s < '0' || *s > '9')
            return -1;
        char *end;
        errno = 0;
        part[n++] = strtoul(s, &end, 10);
        if (errno || part[n - 1] > 999999)
            return -1;
        s = end;
        if (*s == '\0')
            break;
        if (*s != '.')
            return -1;
        s++;
    }
    if (n < 2 || *s != '\0')
        return -1;
    snprintf(out, 32, "%lu.%lu", part[0], part[1]);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The hashed document of `p` (new reference), NULL when out of memory. */
static json_t *hashed_doc(const sk_prov *p)
{
    char mm[32];
    if (major_minor(p->code_version, mm) != 0)
        return NULL;
    const char **ids = malloc((size_t)(p->nupstreams ? p->nupstreams : 1) * sizeof *ids);
    json_t *hashes = json_array();
    if (!ids || !hashes) {
        free(ids);
        json_decref(hashes);
        return NULL;
    }
    for (int i = 0; i < p->nupstreams; i++)
        ids[i] = p->upstreams[i]->id;
    qsort(ids, (size_t)p->nupstreams, sizeof *ids, cmp_str);
    for (int i = 0; i < p->nupstreams; i++)
        if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
            json_array_append_new(hashes, json_string(ids[i]));
    free(ids);
    return json_pack("{s:s, s:O, s:s, s:o}", "code_version", mm, "parameters", p->parameters,
                     "process", p->process, "upstream_hashes", hashes);
}

char *sk_prov_canonical(const sk_prov *p)
{
    json_t *doc = hashed_doc(p);
    char *text = sk_json_canonical(doc);
    json_decref(doc);
    return text;
}

void sk_prov_id_of(const char *canonical, char id[SK_PROV_ID_LEN + 1])
{
    unsigned char digest[32];
    char b32[64];
    sk_sha256(canonical, strlen(canonical), digest);
    sk_base32(digest, sizeof digest, b32, sizeof b32);
    memcpy(id, b32, SK_PROV_ID_LEN);
    id[SK_PROV_ID_LEN] = '\0';
}

static int update_id(sk_prov *p)
{
    char *text = sk_prov_canonical(p);
    if (!text)
        return sk_error(SK_EINPUT, "%s provenance: parameters cannot be written as canonical JSON "
                                   "(non-finite number or out of memory)", p->process);
    sk_prov_id_of(text, p->id);
    free(text);
    return SK_OK;
}

int sk_prov_new(const char *process, const char *code_version, const json_t *parameters, sk_prov **out)
{
    *out = NULL;
    char mm[32];
    if (!process || !sk_code_version(process))
        return sk_error(SK_EINPUT, "provenance: unknown process '%s' (preprocessing, extraction, "
                                   "coaddition or referencing)", process ? process : "");
    if (!code_version || strlen(code_version) >= sizeof ((sk_prov *)0)->code_version ||
        major_minor(code_version, mm) != 0)
        return sk_error(SK_EINPUT, "%s provenance: code version '%s' is not MAJOR.MINOR[.PATCH]", process,
                        code_version ? code_version : "");
    if (parameters && !json_is_object(parameters))
        return sk_error(SK_EINPUT, "%s provenance: parameters must be a JSON object", process);
    sk_prov *p = calloc(1, sizeof *p);
    if (!p)
        return sk_error(SK_EIO, "%s provenance: out of memory", process);
    snprintf(p->process, sizeof p->process, "%s", process);
    snprintf(p->code_version, sizeof p->code_version, "%s", code_version);
    p->parameters = parameters ? json_deep_copy(parameters) : json_object();
    if (!p->parameters) {
        sk_prov_free(p);
        return sk_error(SK_EIO, "%s provenance: out of memory", process);
    }
    int rc = update_id(p);
    if (rc) {
        sk_prov_free(p);
        return rc;
    }
    *out = p;
    return SK_OK;
}

int sk_prov_add_upstream(sk_prov *p, const sk_prov *up)
{
    for (int i = 0; i < p->nupstreams; i++)
        if (strcmp(p->upstreams[i]->id, up->id) == 0)
            return SK_OK; /* already there: ids are sets */
    sk_prov *copy = sk_prov_copy(up);
    sk_prov **grown = copy ? realloc(p->upstreams, (size_t)(p->nupstreams + 1) * sizeof *grown) : NULL;
    if (!grown) {
        sk_prov_free(copy);
        return sk_error(SK_EIO, "%s provenance: out of memory adding an upstream", p->process);
    }
    p->upstreams = grown;
    p->upstreams[p->nupstreams++] = copy;
    return update_id(p);
}

sk_prov *sk_prov_copy(const sk_prov *p)
{
    sk_prov *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->process, p->process, sizeof c->process);
    memcpy(c->code_version, p->code_version, sizeof c->code_version);
    memcpy(c->id, p->id, sizeof c->id);
    c->parameters = json_deep_copy(p->parameters);
    if (p->nupstreams)
        c->upstreams = calloc((size_t)p->nupstreams, sizeof *c->upstreams);
    if (!c->parameters || (p->nupstreams && !c->upstreams)) {
        sk_prov_free(c);
        return NULL;
    }
    for (int i = 0; i < p->nupstreams; i++) {
        c->upstreams[i] = sk_prov_copy(p->upstreams[i]);
        c->nupstreams = i + 1;
        if (!c->upstreams[i]) {
            sk_prov_free(c);
            return NULL;
        }
    }
    return c;
}

void sk_prov_free(sk_prov *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nupstreams; i++)
        sk_prov_free(p->upstreams[i]);
    free(p->upstreams);
    json_decref(p->parameters);
    free(p);
}

json_t *sk_prov_to_json(const sk_prov *p)
{
    json_t *ups = json_array();
    for (int i = 0; ups && i < p->nupstreams; i++) {
        json_t *u = sk_prov_to_json(p->upstreams[i]);
        if (!u || json_array_append_new(ups, u)) {
            json_decref(ups);
            return NULL;
        }
    }
    json_t *params = json_deep_copy(p->parameters);
    if (!ups || !params) {
        json_decref(ups);
        json_decref(params);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", p->id, "process", p->process, "code_version",
                     p->code_version, "parameters", params, "upstreams", ups);
}

int sk_prov_from_json(const json_t *j, sk_prov **out)
{
    *out = NULL;
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *process = json_string_value(json_object_get(j, "process"));
    const char *version = json_string_value(json_object_get(j, "code_version"));
    json_t *params = json_object_get(j, "parameters");
    json_t *ups = json_object_get(j, "upstreams");
    if (!json_is_object(j) || !id || !process || !version || !json_is_object(params) ||
        (ups && !json_is_array(ups)))
        return sk_error(SK_EINPUT, "provenance %s: needs id, process and code_version (strings), "
                                   "parameters (an object) and upstreams (an array)",
                        id ? id : "(no id)");
    sk_prov *p;
    int rc = sk_prov_new(process, version, params, &p);
    if (rc)
        return sk_error_context("provenance %s", id);
    for (size_t i = 0; i < json_array_size(ups); i++) {
        sk_prov *up;
        rc = sk_prov_from_json(json_array_get(ups, i), &up);
        if (rc == SK_OK) {
            rc = sk_prov_add_upstream(p, up);
            sk_prov_free(up);
        }
        if (rc) {
            sk_prov_free(p);
            return sk_error_context("upstream of provenance %s", id);
        }
    }
    if (strcmp(p->id, id) != 0) {
        rc = sk_error(SK_EINPUT, "provenance %s: its contents hash to %s; it was edited or written "
                                 "by an incompatible version", id, p->id);
        sk_prov_free(p);
        return rc;
    }
    *out = p;
    return SK_OK;
}

static char *sidecar_path(const char *product_path)
{
    size_t n = strlen(product_path) + 6;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s.json", product_path);
    return s;
}

int sk_sidecar_write(const char *product_path, const char *product_type, const sk_prov *prov,
                     const sk_input_file *inputs, int ninputs)
{
    return sk_sidecar_write_md5(product_path, NULL, product_type, prov, inputs, ninputs);
}

int sk_sidecar_write_md5(const char *product_path, const char *known_md5, const char *product_type,
                         const sk_prov *prov, const sk_input_file *inputs, int ninputs)
{
    if (!product_type || !*product_type || !prov)
        return sk_error(SK_EINPUT, "%s: a sidecar needs a product type and a provenance", product_path);
    char md5[33];
    int rc = SK_OK;
    if (known_md5)
        snprintf(md5, sizeof md5, "%s", known_md5);
    else
        rc = sk_md5_file(product_path, md5);
    if (rc)
        return rc;
    json_t *list = json_array();
    for (int i = 0; list && i < ninputs; i++) {
        char in_md5[33];
        const char *m = inputs[i].md5;
        if (!m) {
            rc = sk_md5_file(inputs[i].path, in_md5);
            if (rc) {
                json_decref(list);
                return sk_error_context("%s: input %d", product_path, i + 1);
            }
            m = in_md5;
        }
        json_t *entry = json_pack("{s:s?, s:s, s:s}", "id", inputs[i].id, "path", inputs[i].path, "md5", m);
        if (entry && inputs[i].role && json_object_set_new(entry, "role", json_string(inputs[i].role))) {
            json_decref(entry);
            entry = NULL;
        }
        if (!entry || json_array_append_new(list, entry)) {
            json_decref(list);
            return sk_error(SK_EINPUT, "%s: input %d (%s) has no path or is not UTF-8", product_path, i + 1,
                            inputs[i].path ? inputs[i].path : "no path");
        }
    }
    char created[32];
    /* SOURCE_DATE_EPOCH (the reproducible-builds convention) fixes the
     * creation time, so that deterministic producers such as imsim give
     * byte-identical sidecars. */
    time_t now = time(NULL);
    const char *epoch = getenv("SOURCE_DATE_EPOCH");
    if (epoch && *epoch) {
        char *end;
        long long v = strtoll(epoch, &end, 10);
        if (*end == '\0' && v >= 0)
            now = (time_t)v;
    }
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char software[64];
    snprintf(software, sizeof software, "skystack %s", sk_version());
    char *copy = strdup(product_path);
    json_t *pj = sk_prov_to_json(prov);
    json_t *doc = NULL;
    if (copy && pj && list)
        doc = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s}", "product_type", product_type, "path",
                        basename(copy), "md5", md5, "provenance", pj, "inputs", list, "created", created,
                        "software", software);
    else {
        json_decref(pj);
        json_decref(list);
    }
    free(copy);
    char *text = sk_json_pretty(doc);
    json_decref(doc);
    char *path = sidecar_path(product_path);
    if (!text || !path) {
        free(text);
        free(path);
        return sk_error(SK_EIO, "%s: cannot build its sidecar (out of memory)", product_path);
    }
    rc = sk_atomic_write_file(path, text, strlen(text));
    free(text);
    free(path);
    return rc;
}

int sk_sidecar_read(const char *product_path, sk_prov **prov, char *product_type, size_t type_size,
                    char md5[33], json_t **json_out)
{
    if (prov)
        *prov = NULL;
    if (json_out)
        *json_out = NULL;
    char *path = sidecar_path(product_path);
    if (!path)
        return sk_error(SK_EIO, "%s: out of memory", product_path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = sk_error(errno == ENOENT ? SK_ENOTFOUND : SK_EIO, "%s: cannot open sidecar: %s", path,
                          strerror(errno));
        free(path);
        return rc;
    }
    json_error_t jerr;
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    int rc = SK_OK;
    const char *type = json_string_value(json_object_get(doc, "product_type"));
    const char *sum = json_string_value(json_object_get(doc, "md5"));
    if (!doc)
        rc = sk_error(SK_EINPUT, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    else if (!type || !sum || strlen(sum) != 32 || !json_is_object(json_object_get(doc, "provenance")))
        rc = sk_error(SK_EINPUT, "%s: a sidecar needs product_type, md5 (32 hex digits) and provenance", path);
    else if (product_type && strlen(type) >= type_size)
        rc = sk_error(SK_EINPUT, "%s: product type '%s' is too long for this reader", path, type);
    if (rc == SK_OK && prov) {
        rc = sk_prov_from_json(json_object_get(doc, "provenance"), prov);
        if (rc)
            sk_error_context("%s", path);
    }
    if (rc == SK_OK) {
        if (product_type)
            snprintf(product_type, type_size, "%s", type);
        if (md5)
            memcpy(md5, sum, 33);
        if (json_out)
            *json_out = json_incref(doc);
    }
    json_decref(doc);
    free(path);
    return rc;
}

/* Is input `in` (md5 `md5`) among the recorded inputs `rec`? */
static int recorded_has(const json_t *rec, const sk_input_file *in, const char *md5)
{
    for (size_t j = 0; j < json_array_size(rec); j++) {
        const json_t *e = json_array_get(rec, j);
        const char *m = json_string_value(json_object_get(e, "md5"));
        const char *r = json_string_value(json_object_get(e, "role"));
        if (m && strcmp(m, md5) == 0 && (!r || !in->role || strcmp(r, in->role) == 0))
            return 1;
    }
    return 0;
}

/* The recorded input of role `role` (NULL: none) that is not among `inputs`. */
static const json_t *recorded_only(const json_t *rec, const sk_input_file *inputs, int n, const char *role)
{
    for (size_t j = 0; j < json_array_size(rec); j++) {
        const json_t *e = json_array_get(rec, j);
        const char *m = json_string_value(json_object_get(e, "md5"));
        const char *r = json_string_value(json_object_get(e, "role"));
        if (role && (!r || strcmp(r, role) != 0))
            continue;
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = m && inputs[i].md5 && strcmp(inputs[i].md5, m) == 0 &&
                    (!r || !inputs[i].role || strcmp(r, inputs[i].role) == 0);
        if (!found)
            return e;
    }
    return NULL;
}

int sk_sidecar_inputs_differ(const json_t *doc, const sk_input_file *inputs, int ninputs, char *what,
                             size_t what_size)
{
    const json_t *rec = json_object_get(doc, "inputs");
    char dummy[2];
    if (!what) {
        what = dummy;
        what_size = sizeof dummy;
    }
    what[0] = '\0';
    for (int i = 0; i < ninputs; i++) {
        const char *role = inputs[i].role ? inputs[i].role : "input";
        if (!inputs[i].md5 || recorded_has(rec, &inputs[i], inputs[i].md5))
            continue;
        const json_t *old = recorded_only(rec, inputs, ninputs, inputs[i].role);
        if (old)
            snprintf(what, what_size, "%s %s (md5 %s) was not an input (it had %s %s (md5 %s))", role,
                     inputs[i].path, inputs[i].md5, role, json_string_value(json_object_get(old, "path")),
                     json_string_value(json_object_get(old, "md5")));
        else
            snprintf(what, what_size, "%s %s (md5 %s) was not an input", role, inputs[i].path, inputs[i].md5);
        return 1;
    }
    const json_t *old = recorded_only(rec, inputs, ninputs, NULL);
    if (old) {
        const char *r = json_string_value(json_object_get(old, "role"));
        snprintf(what, what_size, "%s %s (md5 %s) is no longer an input", r ? r : "input",
                 json_string_value(json_object_get(old, "path")), json_string_value(json_object_get(old, "md5")));
        return 1;
    }
    return 0;
}

int sk_sidecar_verify(const char *product_path)
{
    char recorded[33], actual[33];
    int rc = sk_sidecar_read(product_path, NULL, NULL, 0, recorded, NULL);
    if (rc)
        return rc;
    rc = sk_md5_file(product_path, actual);
    if (rc)
        return rc;
    if (strcmp(recorded, actual) != 0)
        return sk_error(SK_EINPUT, "%s: md5 is %s but its sidecar %s.json records %s", product_path, actual,
                        product_path, recorded);
    return SK_OK;
}

int sk_sidecar_set(const char *product_path, const char *key, json_t *value)
{
    static const char *const own[] = {"product_type", "path", "md5", "provenance", "inputs", "created", "software"};
    for (size_t k = 0; k < sizeof own / sizeof *own; k++)
        if (strcmp(key, own[k]) == 0) {
            json_decref(value);
            return sk_error(SK_EINPUT, "%s: the sidecar's own key '%s' cannot be set", product_path, key);
        }
    json_t *doc = NULL;
    int rc = sk_sidecar_read(product_path, NULL, NULL, 0, NULL, &doc);
    if (rc) {
        json_decref(value);
        return rc;
    }
    if (!value || json_object_set_new(doc, key, value)) {
        json_decref(doc);
        return sk_error(SK_EIO, "%s: cannot add '%s' to its sidecar", product_path, key);
    }
    char *text = sk_json_pretty(doc);
    json_decref(doc);
    char *path = sidecar_path(product_path);
    rc = text && path ? sk_atomic_write_file(path, text, strlen(text))
                      : sk_error(SK_EIO, "%s: cannot build its sidecar (out of memory)", product_path);
    free(text);
    free(path);
    return rc;
}
