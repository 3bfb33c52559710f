/* The extraction of one image as a library call (sk_extract_image) in the
 * file-only mode: on an imsim exposure it makes the products the extract
 * program makes (same names, same provenance id, the same bytes), a second
 * call reuses them, and refusals (an id without a database, a missing
 * file, --update-header without a reference catalog). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "../tap.h"

static int same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The lines extract prints for `image` with --outdir `dir`. */
static int run_program(const char *image, const char *dir, char lines[5][4200], int *n)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "extract -q --no-db --threads 2 --outdir '%s' '%s'", dir, image);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    *n = 0;
    while (*n < 5 && fgets(lines[*n], 4200, p)) {
        lines[*n][strcspn(lines[*n], "\n")] = '\0';
        (*n)++;
    }
    return pclose(p);
}

int main(void)
{
    tap_plan(19);
    char simdir[4200], image[4300], libdir[4300], progdir[4300], cmd[9000];
    snprintf(simdir, sizeof simdir, "%s/sim", tap_tmpdir());
    snprintf(image, sizeof image, "%s/exp_000.fits", simdir);
    snprintf(libdir, sizeof libdir, "%s/lib", tap_tmpdir());
    snprintf(progdir, sizeof progdir, "%s/prog", tap_tmpdir());
    snprintf(cmd, sizeof cmd, "imsim -q --nexp 1 --size 200x200 --nstars 120 --seed 5 --outdir '%s' >/dev/null",
             simdir);
    int rc = system(cmd);
    ok(rc == 0, "imsim exposure");

    sk_config *cfg = NULL;
    rc = sk_config_load(NULL, NULL, 0, &cfg);
    ok(rc == SK_OK, "default configuration");
    sk_extract_request rq;
    memset(&rq, 0, sizeof rq);
    rq.config = cfg;
    rq.image = image;
    rq.outdir = libdir;
    rq.weight_kind = SK_NOISE_WEIGHT;
    rq.threads = 1;
    sk_extract_outcome out;
    rc = sk_extract_image(&rq, &out);
    ok(rc == SK_OK, "sk_extract_image in the file-only mode (%s)", rc ? sk_errmsg() : "ok");
    ok(!out.reused && out.image_id == 0, "made, not reused; no image id without a database");
    ok(out.source_list[0] && out.background[0] && out.psf[0], "source list, background and PSF");
    ok(out.regions[0] == '\0' && out.head[0] == '\0', "no regions asked, no WCS without a catalog");
    ok(strncmp(base(out.source_list), "exp_000.", 8) == 0 &&
           strncmp(base(out.source_list) + 8, out.prov_id, SK_STORAGE_PROV_PREFIX) == 0,
       "named after the image and the provenance id (%s)", base(out.source_list));

    char lines[5][4200];
    int n = 0;
    rc = run_program(image, progdir, lines, &n);
    ok(rc == 0 && n == 3, "the extract program on the same image (%d products)", n);
    const char *made[3] = {out.source_list, out.background, out.psf};
    for (int k = 0; k < 3 && k < n; k++) {
        is_str(base(lines[k]), base(made[k]), "the same name (so the same provenance id): %s", base(made[k]));
        ok(same_bytes(lines[k], made[k]), "the same bytes: %s", base(made[k]));
    }
    sk_prov *prov = NULL;
    rc = sk_sidecar_read(lines[0], &prov, NULL, 0, NULL, NULL);
    ok(rc == SK_OK && strcmp(prov->id, out.prov_id) == 0, "the program's sidecar names the same provenance");
    sk_prov_free(prov);

    sk_extract_outcome again;
    rc = sk_extract_image(&rq, &again);
    ok(rc == SK_OK && again.reused && strcmp(again.source_list, out.source_list) == 0,
       "a second call reuses the products");

    rq.image = "12";
    rc = sk_extract_image(&rq, &again);
    ok(rc == SK_EINPUT && strstr(sk_errmsg(), "need the database"), "an id needs the database");
    sk_error_clear();
    rq.image = "no-such-image.fits";
    rc = sk_extract_image(&rq, &again);
    ok(rc == SK_ENOTFOUND && strstr(sk_errmsg(), "no such file"), "a missing file: not found");
    sk_error_clear();
    rq.image = image;
    rq.update_header = 1;
    rc = sk_extract_image(&rq, &again);
    ok(rc == SK_EINPUT && strstr(sk_errmsg(), "reference catalogue"),
       "--update-header needs a reference catalog");
    sk_error_clear();
    sk_config_free(cfg);
    return tap_done();
}
