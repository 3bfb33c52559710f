/* test_config.c: configuration layering (defaults < file < --set), type
 * checks, unknown keys, the open instruments map, dump and critical keys. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "skystack/skystack.h"
#include "../tap.h"

static char *write_tmp(const char *name, const char *text)
{
    static char paths[16][4200];
    static int k;
    char *p = paths[k++ & 15];
    snprintf(p, 4200, "%s/%s", tap_tmpdir(), name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static int has(const char *msg, const char *part)
{
    int found = strstr(msg, part) != NULL;
    if (!found)
        tap_diag("message \"%s\" lacks \"%s\"", msg, part);
    return found;
}

/* Load with the given file and sets; expect failure; return the status. */
static int load_fails(const char *file, const char *set)
{
    char *sets[1] = {(char *)set};
    sk_config *c = NULL;
    int rc = sk_config_load(file, sets, set ? 1 : 0, &c);
    sk_config_free(c);
    return rc;
}

int main(void)
{
    tap_plan(87);
    setenv("SKYSTACK_SHARE", tap_src("share/skystack"), 0);
    char home[4200];
    snprintf(home, sizeof home, "%s/home", tap_tmpdir());
    sk_mkdir_p(home);
    setenv("HOME", home, 1);
    unsetenv("SKYSTACK_CONFIG");

    json_error_t jerr;
    json_t *defaults = json_load_file(tap_src("share/skystack/defaults.json"), 0, &jerr);
    ok(json_is_object(defaults), "defaults.json parses (%s)", defaults ? "" : jerr.text);

    /* Defaults alone. */
    sk_config *c = NULL;
    ok(sk_config_load(NULL, NULL, 0, &c) == SK_OK, "load with no user file");
    ok(c && json_equal(c->root, defaults), "without a user file the configuration is the defaults");
    ok(c && c->user_path == NULL, "and no user file is recorded");
    is_str(sk_config_string(c, "coaddition.method", NULL), "clipped", "string getter");
    is_near(sk_config_double(c, "coaddition.clip_sigma", -1), 3.0, 0, "double getter");
    is_int(sk_config_long(c, "extraction.background.mesh_px", -1), 64, "long getter");
    is_int(sk_config_bool(c, "coaddition.background_match", -1), 0, "bool getter");
    is_near(sk_config_double(c, "coaddition.width_px", -7), -7, 0, "null value gives the fallback");
    is_near(sk_config_double(c, "coaddition.nosuch", -8), -8, 0, "absent key gives the fallback");
    is_str(sk_config_string(c, "referencing.criteria.0.order", NULL), "quality",
           "dotted path indexes arrays");

    /* Dump: valid JSON equal to the effective configuration, short reals. */
    char *dump = sk_config_dump(c);
    json_t *back = dump ? json_loads(dump, 0, &jerr) : NULL;
    ok(back && json_equal(back, c->root), "dump is JSON equal to the configuration");
    ok(dump && strstr(dump, "\"deblend_contrast\": 0.005,") != NULL, "dump writes 0.005 in shortest form");
    ok(dump && strstr(dump, "\"clip_sigma\": 3.0") != NULL, "dump keeps reals as reals (3.0)");
    json_decref(back);
    /* The dump is itself a valid user file giving the same configuration. */
    char *dumped = dump ? write_tmp("dump.json", dump) : NULL;
    sk_config *again = NULL;
    ok(dumped && sk_config_load(dumped, NULL, 0, &again) == SK_OK && json_equal(again->root, c->root),
       "the dump loads back as a user file to the same configuration");
    sk_config_free(again);
    free(dump);

    /* Critical parameters. */
    json_t *crit = sk_config_critical(c, "coaddition");
    ok(crit && json_object_get(crit, "method") && !json_object_get(crit, "threads"),
       "critical coaddition parameters keep method, drop threads");
    ok(crit && json_object_size(crit) + 1 == json_object_size(json_object_get(c->root, "coaddition")),
       "and drop nothing else");
    json_decref(crit);
    crit = sk_config_critical(c, "referencing");
    ok(crit && !json_object_get(crit, "description") && json_object_get(crit, "criteria"),
       "referencing drops description, keeps criteria");
    json_decref(crit);
    crit = sk_config_critical(c, "extraction");
    ok(crit && !json_object_get(crit, "threads") && json_object_get(crit, "psf"),
       "extraction drops threads, keeps psf");
    json_decref(crit);
    crit = sk_config_critical(c, "storage");
    ok(json_is_object(crit) && json_object_size(crit) == 0, "storage is wholly non-critical");
    json_decref(crit);
    ok(sk_config_critical(c, "nosuch") == NULL && sk_errstatus() == SK_EINPUT,
       "critical parameters of an unknown section: SK_EINPUT");
    ok(sk_config_is_noncritical("coaddition.threads"), "coaddition.threads is non-critical");
    ok(sk_config_is_noncritical("referencing.description"), "referencing.description is non-critical");
    ok(sk_config_is_noncritical("db.conninfo"), "db.conninfo is non-critical");
    ok(!sk_config_is_noncritical("coaddition.method"), "coaddition.method is critical");
    ok(!sk_config_is_noncritical("extraction.psf.degree"), "extraction.psf.degree is critical");
    ok(!sk_config_is_noncritical("extraction.psf.name"), "a nested key named like a non-critical one stays critical");
    ok(!sk_config_is_noncritical("coaddition"), "a process section as a whole is critical");

    /* Failed overrides leave the configuration as it was. */
    json_t *before = json_deep_copy(c->root);
    ok(sk_config_set(c, "coaddition.metod=zogy") == SK_EINPUT, "--set of an unknown key is rejected");
    ok(has(sk_errmsg(), "coaddition.metod") && has(sk_errmsg(), "--set"),
       "the message names the key and --set");
    ok(has(sk_errmsg(), "method"), "and lists the keys that exist");
    ok(sk_config_set(c, "coadition.method=zogy") == SK_EINPUT && has(sk_errmsg(), "coadition.method"),
       "unknown section rejected with its name");
    ok(sk_config_set(c, "extraction.background.mesh_px=1.5") == SK_EINPUT, "real for an integer rejected");
    ok(has(sk_errmsg(), "extraction.background.mesh_px") && has(sk_errmsg(), "an integer"),
       "the message names the key and the expected type");
    ok(sk_config_set(c, "coaddition.background_match=yes") == SK_EINPUT, "string for a boolean rejected");
    ok(sk_config_set(c, "coaddition.width_px=true") == SK_EINPUT, "boolean for a null default rejected");
    ok(sk_config_set(c, "coaddition.clip_sigma=null") == SK_EINPUT, "null for a number rejected");
    ok(sk_config_set(c, "coaddition=3") == SK_EINPUT && has(sk_errmsg(), "an object"),
       "a scalar for a section rejected");
    ok(sk_config_set(c, "coaddition.method") == SK_EINPUT, "--set without = rejected");
    ok(sk_config_set(c, "coaddition..method=x") == SK_EINPUT, "--set with an empty key part rejected");
    ok(sk_config_set(c, "referencing.criteria=[{\"min_imgs\":3}]") == SK_EINPUT &&
           has(sk_errmsg(), "referencing.criteria[0].min_imgs"),
       "unknown key inside an array element named with its index");
    ok(sk_config_set(c, "extraction.photometry.aperture_fwhm=[1,\"a\"]") == SK_EINPUT &&
           has(sk_errmsg(), "aperture_fwhm[1]"),
       "wrong element type in an array rejected");
    ok(sk_config_set(c, "preprocessing.instruments.lsst.gian=X") == SK_EINPUT &&
           has(sk_errmsg(), "preprocessing.instruments.lsst.gian"),
       "a new instrument's keys are checked against generic");
    ok(json_equal(before, c->root), "rejected overrides changed nothing");
    json_decref(before);

    /* Accepted overrides and their types. */
    ok(sk_config_set(c, "coaddition.clip_sigma=2") == SK_OK, "integer for a real accepted");
    ok(json_is_real(sk_config_get(c, "coaddition.clip_sigma")), "and stored as a real");
    is_near(sk_config_double(c, "coaddition.clip_sigma", -1), 2.0, 0, "with its value");
    ok(sk_config_set(c, "coaddition.method=3") == SK_OK &&
           json_is_string(sk_config_get(c, "coaddition.method")),
       "text for a string key stays a string even when it looks like a number");
    ok(sk_config_set(c, "coaddition.width_px=2048") == SK_OK &&
           json_is_integer(sk_config_get(c, "coaddition.width_px")),
       "a null default accepts an integer");
    ok(sk_config_set(c, "extraction.astrometry.refcat=/data/gaia.fits") == SK_OK,
       "a null default accepts a string");
    is_str(sk_config_string(c, "extraction.astrometry.refcat", NULL), "/data/gaia.fits", "string kept");
    ok(sk_config_set(c, "coaddition.background_match=true") == SK_OK &&
           sk_config_bool(c, "coaddition.background_match", 0) == 1,
       "boolean override");
    ok(sk_config_set(c, "referencing.criteria=[{\"min_images\":3,\"instruments\":[\"decam\"]},{}]") == SK_OK,
       "array of objects accepted");
    is_int(sk_config_long(c, "referencing.criteria.0.min_images", -1), 3, "element key set");
    is_str(sk_config_string(c, "referencing.criteria.0.order", NULL), "quality",
           "element filled from the default's first element");
    is_str(sk_config_string(c, "referencing.criteria.0.instruments.0", NULL), "decam", "nested array kept");
    is_int(sk_config_long(c, "referencing.criteria.1.min_images", -1), 1, "empty element gets defaults");
    ok(sk_config_set(c, "extraction.photometry.aperture_fwhm=[1,2.5]") == SK_OK &&
           json_is_real(sk_config_get(c, "extraction.photometry.aperture_fwhm.0")),
       "array of reals accepts integers as reals");
    ok(sk_config_set(c, "preprocessing.instruments.lsst.gain=GAINA") == SK_OK, "new instrument by --set");
    is_str(sk_config_string(c, "preprocessing.instruments.lsst.gain", NULL), "GAINA", "its key set");
    is_str(sk_config_string(c, "preprocessing.instruments.lsst.filter", NULL), "FILTER",
           "its other keys come from generic");
    ok(sk_config_set(c, "coaddition={\"kernel\":\"bilinear\"}") == SK_OK &&
           strcmp(sk_config_string(c, "coaddition.kernel", ""), "bilinear") == 0 &&
           sk_config_long(c, "coaddition.width_px", 0) == 2048,
       "an object value merges into the section");
    sk_config_free(c);

    /* Precedence: defaults < file < --set. */
    char *fileA = write_tmp("a.json", "{\"coaddition\": {\"method\": \"median\", \"clip_sigma\": 2.5},\n"
                                      " \"preprocessing\": {\"instruments\": {\"ztf\": {\"filter\": \"FILTERID\"}}}}\n");
    char *sets[] = {"coaddition.method=zogy", "extraction.psf.degree=3", "extraction.psf.degree=1"};
    ok(sk_config_load(fileA, sets, 3, &c) == SK_OK, "load with a file and --set");
    is_str(sk_config_string(c, "coaddition.method", NULL), "zogy", "--set beats the file");
    is_near(sk_config_double(c, "coaddition.clip_sigma", 0), 2.5, 0, "the file beats the defaults");
    is_str(sk_config_string(c, "coaddition.kernel", NULL), "lanczos3", "untouched keys keep defaults");
    is_int(sk_config_long(c, "extraction.psf.degree", -1), 1, "later --set beats earlier --set");
    is_str(sk_config_string(c, "preprocessing.instruments.ztf.filter", NULL), "FILTERID",
           "a file may add an instrument");
    is_str(sk_config_string(c, "preprocessing.instruments.ztf.mjd", NULL), "MJD-OBS",
           "filled from generic");
    is_str(c ? c->user_path : NULL, fileA, "user_path records the file");
    sk_config_free(c);

    /* $SKYSTACK_CONFIG and --config. */
    char *fileB = write_tmp("b.json", "{\"coaddition\": {\"kernel\": \"bilinear\"}}");
    setenv("SKYSTACK_CONFIG", fileB, 1);
    ok(sk_config_load(NULL, NULL, 0, &c) == SK_OK, "load with $SKYSTACK_CONFIG");
    is_str(sk_config_string(c, "coaddition.kernel", NULL), "bilinear", "$SKYSTACK_CONFIG is applied");
    sk_config_free(c);
    ok(sk_config_load(fileA, NULL, 0, &c) == SK_OK, "load with --config and $SKYSTACK_CONFIG");
    is_str(sk_config_string(c, "coaddition.kernel", NULL), "lanczos3", "--config replaces $SKYSTACK_CONFIG");
    is_str(sk_config_string(c, "coaddition.method", NULL), "median", "--config file applied");
    sk_config_free(c);

    /* ~/.config/skystack/config.json when nothing else is named. */
    char xdg[4400];
    snprintf(xdg, sizeof xdg, "%s/.config/skystack", home);
    sk_mkdir_p(xdg);
    strcat(xdg, "/config.json");
    FILE *f = fopen(xdg, "w");
    fputs("{\"coaddition\": {\"kernel\": \"nearest\"}}", f);
    fclose(f);
    ok(sk_config_load(NULL, NULL, 0, &c) == SK_OK &&
           strcmp(sk_config_string(c, "coaddition.kernel", ""), "bilinear") == 0,
       "$SKYSTACK_CONFIG beats ~/.config/skystack/config.json");
    sk_config_free(c);
    setenv("SKYSTACK_CONFIG", "", 1);
    ok(sk_config_load(NULL, NULL, 0, &c) == SK_OK &&
           strcmp(sk_config_string(c, "coaddition.kernel", ""), "nearest") == 0,
       "~/.config/skystack/config.json used when nothing else is named");
    sk_config_free(c);
    remove(xdg);

    /* Rejections while loading. */
    char *missing = "/nonexistent/skystack.json";
    ok(load_fails(missing, NULL) == SK_ENOTFOUND && has(sk_errmsg(), missing),
       "missing --config file: SK_ENOTFOUND naming it");
    char *bad_key = write_tmp("badkey.json", "{\"coaddition\": {\"metod\": \"median\"}}");
    ok(load_fails(bad_key, NULL) == SK_EINPUT, "unknown key in the file rejected");
    ok(has(sk_errmsg(), "coaddition.metod") && has(sk_errmsg(), bad_key), "naming the key and the file");
    char *bad_sec = write_tmp("badsec.json", "{\"coadition\": {}}");
    ok(load_fails(bad_sec, NULL) == SK_EINPUT && has(sk_errmsg(), "coadition"),
       "unknown section in the file rejected");
    char *bad_type = write_tmp("badtype.json", "{\"extraction\": {\"background\": {\"mesh_px\": \"big\"}}}");
    ok(load_fails(bad_type, NULL) == SK_EINPUT, "wrong type in the file rejected");
    ok(has(sk_errmsg(), "extraction.background.mesh_px") && has(sk_errmsg(), "an integer") &&
           has(sk_errmsg(), "a string") && has(sk_errmsg(), bad_type),
       "naming the key, the file, what was expected and what was found");
    char *bad_json = write_tmp("badjson.json", "{\"coaddition\": {\"method\": }");
    ok(load_fails(bad_json, NULL) == SK_EINPUT && has(sk_errmsg(), bad_json), "invalid JSON rejected");
    char *dup = write_tmp("dup.json", "{\"coaddition\": {\"method\": \"a\", \"method\": \"b\"}}");
    ok(load_fails(dup, NULL) == SK_EINPUT, "duplicate keys rejected");
    char *not_obj = write_tmp("array.json", "[1, 2]");
    ok(load_fails(not_obj, NULL) == SK_EINPUT && has(sk_errmsg(), "object"), "a non-object file rejected");
    ok(load_fails(NULL, "extraction.threads=many") == SK_EINPUT &&
           has(sk_errmsg(), "extraction.threads"),
       "wrong type in --set during load rejected");

    json_decref(defaults);
    return tap_done();
}
