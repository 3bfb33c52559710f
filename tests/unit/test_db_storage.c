/* test_db_storage.c: the data-root helpers (safe resolution of stored
 * paths, path components, product directories), ISO dates <-> MJD, the
 * coadd input-set hash and the database target resolution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "../tap.h"
#include "db/db_internal.h"

int main(void)
{
    tap_plan(40);
    double mjd = 0;
    ok(sk_iso_to_mjd("1858-11-17", &mjd) == SK_OK && mjd == 0.0, "MJD 0 is 1858-11-17");
    ok(sk_iso_to_mjd("2000-01-01T12:00:00", &mjd) == SK_OK, "ISO date with time");
    is_near(mjd, 51544.5, 1e-9, "J2000.0 noon is MJD 51544.5");
    ok(sk_iso_to_mjd("1990-12-22T13:49:00", &mjd) == SK_OK, "DSS plate date");
    is_near(mjd, 48247.0 + (13 * 3600 + 49 * 60) / 86400.0, 1e-9, "1990-12-22T13:49:00");
    ok(sk_iso_to_mjd("2018-09-08T00:04:26.092612Z", &mjd) == SK_OK, "fractional seconds and Z");
    is_near(mjd, 58369.00307978, 1e-8, "DECam DATE-OBS matches its MJD-OBS");
    ok(sk_iso_to_mjd("2023-02-29", &mjd) == SK_EINPUT, "29 February of a common year is refused");
    ok(sk_iso_to_mjd("2024-02-29", &mjd) == SK_OK, "29 February of a leap year is a date");
    ok(sk_iso_to_mjd("2023-13-01", &mjd) == SK_EINPUT, "month 13 is refused");
    ok(sk_iso_to_mjd("yesterday", &mjd) == SK_EINPUT, "words are refused");
    ok(sk_iso_to_mjd("2023-01-01T25:00", &mjd) == SK_EINPUT, "hour 25 is refused");
    char iso[40];
    ok(sk_mjd_to_iso(58369.00307978, iso, sizeof iso) == SK_OK, "MJD to ISO");
    is_str(iso, "2018-09-08T00:04:26.093", "MJD 58369.00307978");

    char out[4096];
    ok(sk_storage_resolve("/data", "decam/2018-09-08/N10/g/science/ABCDEFGH/x.fits", out, sizeof out) == SK_OK,
       "a relative stored path resolves");
    is_str(out, "/data/decam/2018-09-08/N10/g/science/ABCDEFGH/x.fits", "under the data root");
    const char *escaping[] = {"../etc/passwd", "a/../../b", "/etc/passwd", "", "a//b", "./a", "a/.", "a/"};
    for (size_t i = 0; i < sizeof escaping / sizeof escaping[0]; i++)
        ok(sk_storage_resolve("/data", escaping[i], out, sizeof out) == SK_EIO,
           "stored path '%s' is refused", escaping[i]);
    ok(sk_storage_resolve("/data", "a/..b/c..", out, sizeof out) == SK_OK, "dots inside names are fine");

    char comp[64];
    sk_storage_component("r'); DROP TABLE images; --", comp, sizeof comp);
    is_str(comp, "r____DROP_TABLE_images__--", "unsafe characters become _");
    sk_storage_component("..", comp, sizeof comp);
    is_str(comp, "_", "'..' is not a component");
    sk_storage_component(NULL, comp, sizeof comp);
    is_str(comp, "none", "no value gives 'none'");
    ok(sk_storage_dir("decam", 58369.00307978, "N10", "g", "science", "T7RSNPZDW5OOLPIKZGM2", out, sizeof out) == SK_OK,
       "product directory");
    is_str(out, "decam/2018-09-08/N10/g/science/T7RSNPZD", "instrument/date/section/filter/type/provenance prefix");

    char h1[65], h2[65], h3[65];
    long long a[] = {3, 1, 2}, b[] = {1, 2, 3, 3}, c[] = {1, 2, 4};
    ok(sk_db_input_set_hash(a, 3, h1) == SK_OK && sk_db_input_set_hash(b, 4, h2) == SK_OK &&
       sk_db_input_set_hash(c, 3, h3) == SK_OK, "input set hashes");
    is_str(h1, h2, "the input-set hash ignores order and duplicates");
    char want[65];
    sk_sha256_hex("1,2,3", 5, want);
    is_str(h1, want, "it is sha256 of the sorted ids joined by ','");
    ok(strcmp(h1, h3) != 0, "another input set has another hash");
    ok(sk_db_input_set_hash(a, 0, h1) == SK_EINPUT, "an empty input set is refused");

    /* Which database: SKYSTACK_DB wins, then the private cluster. */
    sk_db_target t;
    setenv("SKYSTACK_DB", "host=/somewhere dbname=survey password=hush", 1);
    ok(sk_db_target_resolve(NULL, &t) == SK_OK && !t.is_private, "SKYSTACK_DB names a server");
    ok(t.description && strstr(t.description, "survey") && !strstr(t.description, "hush"),
       "its description masks the password: %s", t.description ? t.description : "(null)");
    sk_db_target_clear(&t);
    setenv("SKYSTACK_DB", "", 1);
    setenv("SKYSTACK_DB_DIR", "/tmp/it's here", 1);
    ok(sk_db_target_resolve(NULL, &t) == SK_OK && t.is_private, "empty SKYSTACK_DB: the private cluster");
    is_str(t.private_dir, "/tmp/it's here", "SKYSTACK_DB_DIR chooses its folder");
    ok(t.conninfo && strstr(t.conninfo, "host='/tmp/it\\'s here'") != NULL, "the folder is quoted in the conninfo: %s",
       t.conninfo ? t.conninfo : "(null)");
    sk_db_target_clear(&t);
    return tap_done();
}
