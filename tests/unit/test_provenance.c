/* test_provenance.c: provenance ids against independently computed vectors
 * (tests/data/provenance/make_vectors.py), what changes an id and what does
 * not, JSON round trip, and the product sidecars. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "skystack/skystack.h"
#include "../tap.h"

static sk_prov *make(const char *process, const char *version, const char *params_json)
{
    json_error_t jerr;
    json_t *params = json_loads(params_json, 0, &jerr);
    sk_prov *p = NULL;
    if (!params || sk_prov_new(process, version, params, &p) != SK_OK)
        tap_diag("cannot make provenance from %s: %s", params_json, params ? sk_errmsg() : jerr.text);
    json_decref(params);
    return p;
}

static int has(const char *msg, const char *part)
{
    int found = strstr(msg, part) != NULL;
    if (!found)
        tap_diag("message \"%s\" lacks \"%s\"", msg, part);
    return found;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void test_vectors(void)
{
    json_error_t jerr;
    json_t *doc = json_load_file(tap_src("tests/data/provenance/vectors.json"), 0, &jerr);
    ok(doc != NULL, "vectors.json loads (%s)", doc ? "ok" : jerr.text);
    json_t *cases = json_object_get(doc, "cases");
    size_t n = json_array_size(cases);
    ok(n >= 6, "at least six provenance vectors (%zu)", n);
    sk_prov **made = calloc(n ? n : 1, sizeof *made);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        sk_prov *p = NULL;
        int rc = sk_prov_new(json_string_value(json_object_get(c, "process")),
                             json_string_value(json_object_get(c, "code_version")),
                             json_object_get(c, "parameters"), &p);
        json_t *ups = json_object_get(c, "upstreams");
        for (size_t k = 0; rc == SK_OK && k < json_array_size(ups); k++)
            rc = sk_prov_add_upstream(p, made[json_integer_value(json_array_get(ups, k))]);
        ok(rc == SK_OK, "vector %zu (%s) builds", i, name);
        if (rc) {
            sk_prov_free(p);
            continue;
        }
        made[i] = p;
        char *canon = sk_prov_canonical(p);
        is_str(canon, json_string_value(json_object_get(c, "canonical")), "vector %zu: canonical JSON", i);
        free(canon);
        is_str(p->id, json_string_value(json_object_get(c, "id")), "vector %zu: id", i);
    }
    for (size_t i = 0; i < n; i++)
        sk_prov_free(made[i]);
    free(made);

    /* Shortest round-trip reals as Python's repr writes them. */
    json_t *reals = json_object_get(doc, "reals");
    size_t bad = 0, parsed_bad = 0;
    for (size_t i = 0; i < json_array_size(reals); i++) {
        const char *want = json_string_value(json_array_get(reals, i));
        char got[48];
        sk_json_real_text(strtod(want, NULL), got, sizeof got);
        if (strcmp(got, want) != 0 && bad++ < 5)
            tap_diag("real %s written as %s", want, got);
        /* The same through jansson's parser and the canonical writer. */
        json_t *j = json_loads(want, JSON_DECODE_ANY, NULL);
        char *text = sk_json_canonical(j);
        if ((!json_is_real(j) || !text || strcmp(text, want) != 0) && parsed_bad++ < 5)
            tap_diag("parsed real %s canonical %s", want, text ? text : "(null)");
        free(text);
        json_decref(j);
    }
    ok(json_array_size(reals) > 400, "%zu reals to check", json_array_size(reals));
    is_int(bad, 0, "every real's canonical text is Python's repr");
    is_int(parsed_bad, 0, "and the same after parsing the text with jansson");
    json_decref(doc);
}

static void test_canonical(void)
{
    json_t *j = json_loads("{\"b\": 1, \"a\": [1.0, true, null, \"x\"], \"c\": {\"z\": {}, \"y\": []}}", 0, NULL);
    char *c = sk_json_canonical(j);
    is_str(c, "{\"a\":[1.0,true,null,\"x\"],\"b\":1,\"c\":{\"y\":[],\"z\":{}}}", "canonical form of a small tree");
    free(c);
    c = sk_json_pretty(j);
    is_str(c, "{\n  \"a\": [\n    1.0,\n    true,\n    null,\n    \"x\"\n  ],\n  \"b\": 1,\n  \"c\": {\n"
              "    \"y\": [],\n    \"z\": {}\n  }\n}\n",
           "pretty form of the same tree");
    free(c);
    json_decref(j);
    char buf[48];
    ok(sk_json_real_text(INFINITY, buf, sizeof buf) < 0, "infinity has no canonical text");
    ok(sk_json_canonical(NULL) == NULL, "NULL has no canonical text");
}

static void test_what_changes_the_id(void)
{
    const char *base = "{\"method\": \"clipped\", \"clip_sigma\": 3.0, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}}";
    sk_prov *p0 = make("coaddition", "1.0.0", base);
    sk_prov *same = make("coaddition", "1.0.0",
                         "{\n  \"kernel\":{\"order\":3,\n\t\"name\":\"lanczos\"},\"clip_sigma\":3.0,  \"method\":\"clipped\"}");
    ok(p0 && same, "provenances build");
    if (!p0 || !same)
        return;
    is_int(strlen(p0->id), SK_PROV_ID_LEN, "the id has 20 characters");
    ok(strspn(p0->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == SK_PROV_ID_LEN, "in the base32 alphabet");
    is_str(same->id, p0->id, "key order and whitespace of the input do not change the id");

    struct {
        const char *process, *version, *params, *what;
    } differ[] = {
        {"coaddition", "1.0.0", "{\"method\": \"clipped\", \"clip_sigma\": 3.5, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}}", "a real parameter"},
        {"coaddition", "1.0.0", "{\"method\": \"median\", \"clip_sigma\": 3.0, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}}", "a string parameter"},
        {"coaddition", "1.0.0", "{\"method\": \"clipped\", \"clip_sigma\": 3.0, \"kernel\": {\"name\": \"lanczos\", \"order\": 4}}", "a nested parameter"},
        {"coaddition", "1.0.0", "{\"method\": \"clipped\", \"clip_sigma\": 3, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}}", "a real written as an integer"},
        {"coaddition", "1.0.0", "{\"method\": \"clipped\", \"clip_sigma\": 3.0, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}, \"extra\": null}", "an added parameter"},
        {"coaddition", "1.0.0", "{\"method\": \"clipped\", \"clip_sigma\": 3.0000000000000004, \"kernel\": {\"name\": \"lanczos\", \"order\": 3}}", "a real by one ulp"},
        {"coaddition", "1.1.0", base, "the MINOR code version"},
        {"coaddition", "2.0.0", base, "the MAJOR code version"},
        {"referencing", "1.0.0", base, "the process"},
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        sk_prov *q = make(differ[i].process, differ[i].version, differ[i].params);
        ok(q && strcmp(q->id, p0->id) != 0, "changing %s changes the id", differ[i].what);
        sk_prov_free(q);
    }
    sk_prov *patch = make("coaddition", "1.0.17", base);
    ok(patch && strcmp(patch->id, p0->id) == 0, "the PATCH version does not change the id");
    sk_prov_free(patch);
    sk_prov *short_version = make("coaddition", "01.0", base);
    ok(short_version && strcmp(short_version->id, p0->id) == 0, "MAJOR.MINOR is compared as numbers (01.0 = 1.0.0)");
    sk_prov_free(short_version);

    /* Upstreams: any change changes the id; order and duplicates do not. */
    sk_prov *pre_a = make("preprocessing", "1.0.0", "{\"instrument\": \"decam\"}");
    sk_prov *pre_b = make("preprocessing", "1.0.0", "{\"instrument\": \"ztf\"}");
    sk_prov *ex_a = make("extraction", "1.0.0", "{\"threshold_sigma\": 1.5}");
    sk_prov *ex_b = make("extraction", "1.0.0", "{\"threshold_sigma\": 1.5}");
    sk_prov_add_upstream(ex_a, pre_a);
    sk_prov_add_upstream(ex_b, pre_b);
    ok(strcmp(ex_a->id, ex_b->id) != 0, "a different upstream changes the id");
    char before[SK_PROV_ID_LEN + 1];
    sk_prov *co1 = sk_prov_copy(p0), *co2 = sk_prov_copy(p0);
    snprintf(before, sizeof before, "%s", co1->id);
    sk_prov_add_upstream(co1, ex_a);
    ok(strcmp(co1->id, before) != 0, "adding an upstream changes the id");
    sk_prov_add_upstream(co1, ex_b);
    sk_prov_add_upstream(co2, ex_b);
    sk_prov_add_upstream(co2, ex_a);
    is_str(co2->id, co1->id, "upstream order does not change the id");
    snprintf(before, sizeof before, "%s", co2->id);
    sk_prov_add_upstream(co2, ex_a);
    is_str(co2->id, before, "adding an upstream again does not change the id");
    is_int(co2->nupstreams, 2, "nor the list of upstreams");

    /* Non-critical configuration keys never reach the id. */
    sk_config *cfg = NULL;
    ok(sk_config_load(NULL, NULL, 0, &cfg) == SK_OK, "configuration loads");
    if (cfg) {
        json_t *crit = sk_config_critical(cfg, "coaddition");
        sk_prov *c0 = NULL, *c1 = NULL, *c2 = NULL;
        sk_prov_new("coaddition", sk_code_version("coaddition"), crit, &c0);
        json_decref(crit);
        sk_config_set(cfg, "coaddition.threads=4");
        sk_config_set(cfg, "storage.root=/elsewhere");
        crit = sk_config_critical(cfg, "coaddition");
        sk_prov_new("coaddition", sk_code_version("coaddition"), crit, &c1);
        json_decref(crit);
        ok(c0 && c1 && strcmp(c0->id, c1->id) == 0, "threads and storage do not change the id");
        sk_config_set(cfg, "coaddition.clip_sigma=2.5");
        crit = sk_config_critical(cfg, "coaddition");
        sk_prov_new("coaddition", sk_code_version("coaddition"), crit, &c2);
        json_decref(crit);
        ok(c1 && c2 && strcmp(c1->id, c2->id) != 0, "a critical configuration key changes the id");
        sk_prov_free(c0);
        sk_prov_free(c1);
        sk_prov_free(c2);
        sk_prov *r0 = NULL, *r1 = NULL;
        crit = sk_config_critical(cfg, "referencing");
        sk_prov_new("referencing", "1.0.0", crit, &r0);
        json_decref(crit);
        sk_config_set(cfg, "referencing.description=weekly references");
        crit = sk_config_critical(cfg, "referencing");
        sk_prov_new("referencing", "1.0.0", crit, &r1);
        json_decref(crit);
        ok(r0 && r1 && strcmp(r0->id, r1->id) == 0, "the description does not change the id");
        sk_prov_free(r0);
        sk_prov_free(r1);
        sk_config_free(cfg);
    }

    /* to_json / from_json round trip, through text, with the whole chain. */
    json_t *j = sk_prov_to_json(co1);
    char *text = sk_json_pretty(j);
    json_t *back = text ? json_loads(text, 0, NULL) : NULL;
    sk_prov *r = NULL;
    ok(back && sk_prov_from_json(back, &r) == SK_OK, "from_json reads to_json's output");
    if (r) {
        is_str(r->id, co1->id, "same id after the round trip");
        is_int(r->nupstreams, 2, "same number of upstreams");
        ok(r->nupstreams == 2 && r->upstreams[0]->nupstreams == 1 &&
               strcmp(r->upstreams[0]->upstreams[0]->id, pre_a->id) == 0,
           "the upstreams' upstreams are kept");
        char *c1t = sk_prov_canonical(co1), *c2t = sk_prov_canonical(r);
        is_str(c2t, c1t, "same canonical JSON");
        free(c1t);
        free(c2t);
        ok(json_equal(r->parameters, co1->parameters), "same parameters");
    }
    sk_prov_free(r);
    /* Tampering is detected at every depth. */
    json_object_set_new(json_object_get(back, "parameters"), "clip_sigma", json_real(9.0));
    r = NULL;
    ok(sk_prov_from_json(back, &r) == SK_EINPUT && has(sk_errmsg(), co1->id), "an edited parameter is detected");
    sk_prov_free(r);
    json_decref(back);
    back = json_loads(text, 0, NULL);
    json_t *deep = json_array_get(json_object_get(json_array_get(json_object_get(back, "upstreams"), 0), "upstreams"), 0);
    json_object_set_new(json_object_get(deep, "parameters"), "instrument", json_string("hsc"));
    r = NULL;
    ok(sk_prov_from_json(back, &r) == SK_EINPUT && has(sk_errmsg(), pre_a->id), "an edited upstream's upstream is detected");
    sk_prov_free(r);
    json_object_del(back, "id");
    ok(sk_prov_from_json(back, &r) == SK_EINPUT, "a provenance without id is refused");
    json_decref(back);
    free(text);
    json_decref(j);

    /* Bad arguments. */
    sk_prov *bad = NULL;
    ok(sk_prov_new("stacking", "1.0.0", NULL, &bad) == SK_EINPUT && has(sk_errmsg(), "stacking"), "unknown process refused");
    const char *bad_versions[] = {"1", "1.x", "1.0.0.0", "", "1..0", "v1.0", "1.0.", "-1.0"};
    for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++)
        ok(sk_prov_new("coaddition", bad_versions[i], NULL, &bad) == SK_EINPUT, "code version '%s' refused", bad_versions[i]);
    json_t *arr = json_array();
    ok(sk_prov_new("coaddition", "1.0.0", arr, &bad) == SK_EINPUT, "parameters that are not an object refused");
    json_decref(arr);
    ok(sk_prov_new("coaddition", "1.0.0", NULL, &bad) == SK_OK && json_object_size(bad->parameters) == 0,
       "NULL parameters are {}");
    sk_prov_free(bad);
    const char *procs[] = {"preprocessing", "extraction", "coaddition", "referencing"};
    for (int i = 0; i < 4; i++) {
        const char *v = sk_code_version(procs[i]);
        unsigned a, b, c;
        char extra;
        ok(v && sscanf(v, "%u.%u.%u%c", &a, &b, &c, &extra) == 3, "code version of %s is MAJOR.MINOR.PATCH (%s)",
           procs[i], v ? v : "null");
    }
    ok(sk_code_version("stacking") == NULL, "no code version for an unknown process");

    sk_prov_free(p0);
    sk_prov_free(same);
    sk_prov_free(pre_a);
    sk_prov_free(pre_b);
    sk_prov_free(ex_a);
    sk_prov_free(ex_b);
    sk_prov_free(co1);
    sk_prov_free(co2);
}

/* The recorded inputs against the current ones: by role and md5. */
static void test_inputs_differ(void)
{
    json_t *doc = json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s}]}", "inputs", "path", "im.fits",
                            "md5", "11111111111111111111111111111111", "role", "image", "path", "w1.fits", "md5",
                            "22222222222222222222222222222222", "role", "weight", "path", "cat.fits", "md5",
                            "44444444444444444444444444444444");
    sk_input_file now[] = {
        {NULL, "copy-of-im.fits", "11111111111111111111111111111111", "image"},
        {NULL, "w1.fits", "22222222222222222222222222222222", "weight"},
        {NULL, "cat.fits", "44444444444444444444444444444444", "refcat"},
    };
    char what[512];
    is_int(sk_sidecar_inputs_differ(doc, now, 3, what, sizeof what), 0,
           "the same contents are the same inputs (paths aside; an input without a role matches on md5)");
    now[1] = (sk_input_file){NULL, "w2.fits", "33333333333333333333333333333333", "weight"};
    is_int(sk_sidecar_inputs_differ(doc, now, 3, what, sizeof what), 1, "another weight differs");
    ok(has(what, "weight w2.fits") && has(what, "w1.fits") && has(what, "3333"), "naming the new and the old one (%s)",
       what);
    now[1] = (sk_input_file){NULL, "w1.fits", "22222222222222222222222222222222", "mask"};
    is_int(sk_sidecar_inputs_differ(doc, now, 3, what, sizeof what), 1,
           "the same file in another role differs");
    is_int(sk_sidecar_inputs_differ(doc, now, 1, what, sizeof what), 1, "an input dropped differs");
    ok(has(what, "weight w1.fits") && has(what, "no longer"), "naming the one dropped (%s)", what);
    now[1] = (sk_input_file){NULL, "w1.fits", "22222222222222222222222222222222", "weight"};
    sk_input_file more[4] = {now[0], now[1], now[2], {NULL, "m.fits", "55555555555555555555555555555555", "mask"}};
    is_int(sk_sidecar_inputs_differ(doc, more, 4, NULL, 0), 1, "an input added differs");
    json_decref(doc);
}

static void test_sidecar(void)
{
    const char *dir = tap_tmpdir();
    char product[4200], input[4200], sidecar[4300];
    snprintf(product, sizeof product, "%s/coadd.fits", dir);
    snprintf(input, sizeof input, "%s/in1.fits", dir);
    snprintf(sidecar, sizeof sidecar, "%s.json", product);
    write_file(product, "SIMPLE  =                    T / pretend FITS");
    write_file(input, "abc");
    sk_prov *pre = make("preprocessing", "1.0.0", "{\"instrument\": \"decam\"}");
    sk_prov *ex = make("extraction", "1.0.0", "{\"threshold_sigma\": 1.5}");
    sk_prov *co = make("coaddition", "1.0.0", "{\"method\": \"clipped\", \"target\": \"M\\u00e9lange\"}");
    sk_prov_add_upstream(ex, pre);
    sk_prov_add_upstream(co, ex);
    sk_input_file inputs[] = {
        {"42", input, NULL, "image"},
        {NULL, "/archive/in2.fits", "0123456789abcdef0123456789abcdef", NULL},
    };
    ok(sk_sidecar_write(product, "coadd", co, inputs, 2) == SK_OK, "sidecar written");
    FILE *f = fopen(sidecar, "r");
    ok(f != NULL, "it is X.fits.json");
    if (f)
        fclose(f);
    int others = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".tmp"))
            others++;
    if (d)
        closedir(d);
    is_int(others, 0, "no temporary file is left behind");

    sk_prov *back = NULL;
    char type[16], md5[33], want_md5[33];
    json_t *doc = NULL;
    ok(sk_sidecar_read(product, &back, type, sizeof type, md5, &doc) == SK_OK, "sidecar read");
    sk_md5_file(product, want_md5);
    is_str(md5, want_md5, "it records the product's md5");
    is_str(type, "coadd", "and its type");
    ok(back && strcmp(back->id, co->id) == 0, "and its provenance");
    ok(back && back->nupstreams == 1 && back->upstreams[0]->nupstreams == 1 &&
           strcmp(back->upstreams[0]->upstreams[0]->id, pre->id) == 0,
       "with the whole upstream chain");
    is_str(json_string_value(json_object_get(doc, "path")), "coadd.fits", "path is the basename");
    json_t *in = json_object_get(doc, "inputs");
    is_int(json_array_size(in), 2, "two inputs");
    is_str(json_string_value(json_object_get(json_array_get(in, 0), "md5")), "900150983cd24fb0d6963f7d28e17f72",
           "an input's md5 is computed when not given");
    is_str(json_string_value(json_object_get(json_array_get(in, 0), "id")), "42", "input id kept");
    ok(json_is_null(json_object_get(json_array_get(in, 1), "id")), "a missing input id is null");
    is_str(json_string_value(json_object_get(json_array_get(in, 0), "role")), "image", "an input's role is kept");
    ok(json_object_get(json_array_get(in, 1), "role") == NULL, "an input without a role has no role key");
    is_str(json_string_value(json_object_get(json_array_get(in, 1), "md5")), "0123456789abcdef0123456789abcdef",
           "a given input md5 is kept");
    const char *created = json_string_value(json_object_get(doc, "created"));
    int y, mo, da, h, mi, s;
    char z = 0;
    ok(created && strlen(created) == 20 && sscanf(created, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &da, &h, &mi, &s, &z) == 7 &&
           z == 'Z' && y >= 2024,
       "created is a UTC ISO time (%s)", created ? created : "null");
    const char *software = json_string_value(json_object_get(doc, "software"));
    ok(software && strncmp(software, "skystack ", 9) == 0 && strstr(software, sk_version()), "software names the version");
    json_decref(doc);
    sk_prov_free(back);

    /* Pretty-printed, UTF-8 kept. */
    char text[65536];
    f = fopen(sidecar, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    ok(strstr(text, "\n  \"product_type\": \"coadd\",\n") != NULL, "the sidecar is pretty-printed");
    ok(strstr(text, "M\xc3\xa9lange") != NULL, "and keeps UTF-8 as is");

    ok(sk_sidecar_read(product, NULL, NULL, 0, NULL, NULL) == SK_OK, "all outputs are optional");
    ok(sk_sidecar_read(product, NULL, type, 3, NULL, NULL) == SK_EINPUT, "a too small type buffer is refused");
    ok(sk_sidecar_verify(product) == SK_OK, "verify: the product matches its sidecar");
    write_file(product, "SIMPLE  =                    T / changed");
    char new_md5[33];
    sk_md5_file(product, new_md5);
    ok(sk_sidecar_verify(product) == SK_EINPUT, "verify: a changed product is detected");
    ok(has(sk_errmsg(), new_md5) && has(sk_errmsg(), want_md5), "naming both md5s");

    /* Tampered and missing sidecars. */
    char *at = strstr(text, "\"clipped\"");
    if (at)
        memcpy(at, "\"clapped\"", 9);
    write_file(sidecar, text);
    back = NULL;
    ok(sk_sidecar_read(product, &back, NULL, 0, NULL, NULL) == SK_EINPUT && has(sk_errmsg(), sidecar),
       "an edited provenance in the sidecar is detected");
    sk_prov_free(back);
    write_file(sidecar, "{\"product_type\": \"coadd\"");
    ok(sk_sidecar_read(product, NULL, NULL, 0, NULL, NULL) == SK_EINPUT, "a broken sidecar is refused");
    write_file(sidecar, "{\"product_type\": \"coadd\", \"md5\": \"x\", \"provenance\": {}}");
    ok(sk_sidecar_read(product, NULL, NULL, 0, NULL, NULL) == SK_EINPUT, "a sidecar with a bad md5 is refused");
    remove(sidecar);
    ok(sk_sidecar_read(product, NULL, NULL, 0, NULL, NULL) == SK_ENOTFOUND && has(sk_errmsg(), sidecar),
       "a missing sidecar: SK_ENOTFOUND naming it");
    ok(sk_sidecar_write("/nonexistent/x.fits", "coadd", co, NULL, 0) == SK_EIO, "sidecar of a missing product: SK_EIO");
    /* SOURCE_DATE_EPOCH fixes the creation time: identical sidecars. */
    setenv("SOURCE_DATE_EPOCH", "123456", 1);
    write_file(product, "SIMPLE  =                    T / pretend FITS");
    ok(sk_sidecar_write(product, "coadd", co, NULL, 0) == SK_OK, "sidecar written with SOURCE_DATE_EPOCH");
    doc = NULL;
    sk_sidecar_read(product, NULL, NULL, 0, NULL, &doc);
    is_str(json_string_value(json_object_get(doc, "created")), "1970-01-02T10:17:36Z",
           "created is the time SOURCE_DATE_EPOCH gives");
    json_decref(doc);
    unsetenv("SOURCE_DATE_EPOCH");
    sk_input_file missing[] = {{NULL, "/nonexistent/in.fits", NULL, NULL}};
    ok(sk_sidecar_write(product, "coadd", co, missing, 1) == SK_EIO && has(sk_errmsg(), "/nonexistent/in.fits"),
       "an unreadable input without md5 is reported");
    sk_prov_free(pre);
    sk_prov_free(ex);
    sk_prov_free(co);
}

int main(void)
{
    tap_plan(119);
    setenv("SKYSTACK_SHARE", tap_src("share/skystack"), 0);
    setenv("HOME", tap_tmpdir(), 1);
    unsetenv("SKYSTACK_CONFIG");
    test_vectors();
    test_canonical();
    test_what_changes_the_id();
    test_sidecar();
    test_inputs_differ();
    return tap_done();
}
