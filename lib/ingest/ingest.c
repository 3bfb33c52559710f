/* ingest.c: registering FITS images: header metadata through the instrument keyword maps, WCS footprint, storage in the data root and the images row (see skystack/ingest.h). */
#include <ctype.h>
#include <errno.h>
#include <fitsio.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/ingest.h"
#include "skystack/log.h"
#include "skystack/storage.h"
#include "skystack/wcs.h"
#include "db/image_rows_priv.h"
#include "db/db_internal.h"
#include "ingest_internal.h"

#define KEYMAP_TEMPLATE "generic"

/* ---- the keyword map ---------------------------------------------------- */

/* The resolved map of an instrument: its entries over those of "generic"
 * (a new instrument in a user file need only give what differs). */
static int resolve_map(const sk_config *cfg, const char *instrument, json_t **out)
{
    json_t *all = sk_config_get(cfg, "preprocessing.instruments");
    json_t *generic = all ? json_object_get(all, KEYMAP_TEMPLATE) : NULL;
    json_t *own = all ? json_object_get(all, instrument) : NULL;
    if (!own) {
        char known[512] = "";
        const char *key;
        json_t *val;
        size_t n = 0;
        json_object_foreach(all, key, val) {
            n += (size_t)snprintf(known + n, n < sizeof known ? sizeof known - n : 0, "%s%s",
                                  n ? ", " : "", key);
            (void)val;
        }
        return sk_error(SK_EINPUT,
                        "--instrument %s: no keyword map preprocessing.instruments.%s (known: %s)",
                        instrument, instrument, known);
    }
    json_t *map = generic ? json_deep_copy(generic) : json_object();
    if (!map || json_object_update(map, own) != 0) {
        json_decref(map);
        return sk_error(SK_EIO, "out of memory");
    }
    *out = map;
    return SK_OK;
}

static const char *map_str(const json_t *map, const char *key)
{
    const char *s = json_string_value(json_object_get(map, key));
    return s && *s ? s : NULL;
}

static int map_bool(const json_t *map, const char *key)
{
    return json_is_true(json_object_get(map, key));
}

static const char *instrument_name(const sk_config *cfg, const char *instrument)
{
    if (instrument && *instrument)
        return instrument;
    return sk_config_string(cfg, "preprocessing.instrument", KEYMAP_TEMPLATE);
}

int sk_ingest_provenance(const sk_config *cfg, const char *instrument, sk_prov **out)
{
    const char *name = instrument_name(cfg, instrument);
    json_t *map = NULL;
    int st = resolve_map(cfg, name, &map);
    if (st)
        return st;
    json_t *params = json_pack("{s:s, s:o}", "instrument", name, "keywords", map);
    if (!params)
        return sk_error(SK_EIO, "out of memory");
    st = sk_prov_new("preprocessing", sk_code_version("preprocessing"), params, out);
    json_decref(params);
    return st;
}

/* ---- header values ------------------------------------------------------ */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t k = 0;
    while (s[k] && isspace((unsigned char)s[k]))
        k++;
    if (k)
        memmove(s, s + k, n - k + 1);
}

/* The first of the comma-separated keywords present as non-empty text. */
static int header_text(const sk_header *h, const char *keys, char *out, size_t outsz)
{
    if (!keys)
        return 0;
    char list[256];
    snprintf(list, sizeof list, "%s", keys);
    char *save = NULL;
    for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        trim(k);
        if (*k && sk_header_get_str(h, k, out, outsz) == 1) {
            trim(out);
            if (*out)
                return 1;
        }
    }
    return 0;
}

/* The mean of the comma-separated keywords present as finite numbers
 * ("GAINA,GAINB" averages the two amplifiers). */
static int header_number(const sk_header *h, const char *keys, double *out)
{
    if (!keys)
        return 0;
    char list[256];
    snprintf(list, sizeof list, "%s", keys);
    char *save = NULL;
    double sum = 0;
    int n = 0;
    for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        trim(k);
        double v;
        if (*k && sk_header_get_double(h, k, &v) == 1 && isfinite(v)) {
            sum += v;
            n++;
        }
    }
    if (!n)
        return 0;
    *out = sum / n;
    return 1;
}

/* ---- files ---------------------------------------------------------------- */

/* basename with the FITS suffixes (.fits, .fit, .fts, .fz, .gz) removed. */
static void file_stem(const char *path, char *out, size_t outsz)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, outsz, "%s", slash ? slash + 1 : path);
    static const char *suffixes[] = {".gz", ".fz", ".fits", ".fit", ".fts", ".FITS", ".FIT"};
    for (int again = 1; again;) {
        again = 0;
        size_t n = strlen(out);
        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            size_t m = strlen(suffixes[i]);
            if (n > m && strcmp(out + n - m, suffixes[i]) == 0) {
                out[n - m] = '\0';
                again = 1;
                break;
            }
        }
    }
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Apply a "FROM=TO" rename rule to the basename of `path` (last occurrence
 * of FROM). `reverse` applies TO=FROM. 0 when the rule does not apply. */
static int apply_rename(const char *rule, const char *path, int reverse, char *out, size_t outsz)
{
    if (!rule)
        return 0;
    const char *eq = strchr(rule, '=');
    if (!eq || eq == rule || !eq[1])
        return 0;
    char from[128], to[128];
    snprintf(from, sizeof from, "%.*s", (int)(eq - rule), rule);
    snprintf(to, sizeof to, "%s", eq + 1);
    if (reverse) {
        char t[128];
        memcpy(t, from, sizeof t);
        memcpy(from, to, sizeof from);
        memcpy(to, t, sizeof to);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *hit = NULL;
    for (const char *p = strstr(base, from); p; p = strstr(p + 1, from))
        hit = p;
    if (!hit)
        return 0;
    size_t n = (size_t)snprintf(out, outsz, "%.*s%s%s", (int)(hit - path), path, to, hit + strlen(from));
    return n < outsz;
}

int sk_ingest_is_companion(const sk_config *cfg, const char *instrument, const char *path)
{
    json_t *map = NULL;
    if (resolve_map(cfg, instrument_name(cfg, instrument), &map) != SK_OK) {
        sk_error_clear();
        return 0;
    }
    const char *rules[2] = {map_str(map, "weight_rename"), map_str(map, "mask_rename")};
    int is = 0;
    for (int i = 0; i < 2 && !is; i++) {
        char science[PATH_MAX];
        if (apply_rename(rules[i], path, 1, science, sizeof science) && strcmp(science, path) != 0 &&
            file_exists(science))
            is = 1;
    }
    json_decref(map);
    return is;
}

/* One science HDU to ingest. */
typedef struct hdu_info {
    char spec[80];       /* for sk_read_opts.hdu: EXTNAME or 0-based number */
    char name[80];       /* EXTNAME ("" when none) */
} hdu_info;

/* The 2-D image HDUs of a file (only SCI when present). */
static int list_image_hdus(const char *path, hdu_info **out, int *nout)
{
    *out = NULL;
    *nout = 0;
    fitsfile *f = NULL;
    int status = 0;
    if (fits_open_file(&f, path, READONLY, &status)) {
        char msg[FLEN_STATUS];
        fits_get_errstatus(status, msg);
        fits_clear_errmsg();
        return sk_error(SK_EINPUT, "%s: not a readable FITS file (%s)", path, msg);
    }
    int nhdu = 0;
    fits_get_num_hdus(f, &nhdu, &status);
    hdu_info *list = calloc((size_t)(nhdu > 0 ? nhdu : 1), sizeof *list);
    if (!list) {
        fits_close_file(f, &status);
        return sk_error(SK_EIO, "out of memory");
    }
    int n = 0, sci = -1;
    for (int k = 1; k <= nhdu && status == 0; k++) {
        int type = 0;
        if (fits_movabs_hdu(f, k, &type, &status))
            break;
        if (type != IMAGE_HDU)
            continue;
        int naxis = 0;
        long naxes[2] = {0, 0};
        if (fits_get_img_dim(f, &naxis, &status) || naxis != 2 ||
            fits_get_img_size(f, 2, naxes, &status) || naxes[0] < 1 || naxes[1] < 1) {
            status = 0;
            continue;
        }
        char extname[FLEN_VALUE] = "";
        int ks = 0;
        if (fits_read_key_str(f, "EXTNAME", extname, NULL, &ks))
            extname[0] = '\0';
        trim(extname);
        snprintf(list[n].name, sizeof list[n].name, "%s", extname);
        if (extname[0])
            snprintf(list[n].spec, sizeof list[n].spec, "%s", extname);
        else
            snprintf(list[n].spec, sizeof list[n].spec, "%d", k - 1);
        if (strcasecmp(extname, "SCI") == 0)
            sci = n;
        n++;
    }
    int close_status = 0;
    fits_close_file(f, &close_status);
    if (status) {
        char msg[FLEN_STATUS];
        fits_get_errstatus(status, msg);
        fits_clear_errmsg();
        free(list);
        return sk_error(SK_EINPUT, "%s: unreadable FITS structure (%s)", path, msg);
    }
    fits_clear_errmsg();
    if (sci >= 0) {
        list[0] = list[sci];
        n = 1;
    }
    if (n == 0) {
        free(list);
        return sk_error(SK_EINPUT, "%s: no 2-D image HDU", path);
    }
    *out = list;
    *nout = n;
    return SK_OK;
}

/* ---- one image ------------------------------------------------------------- */

typedef struct meta {
    hdu_info hdu;
    char filter[96], target[96], section[96], project[96], instrument[96], telescope[96];
    double mjd, end_mjd, exptime, airmass, gain, saturation, read_noise;
    int has_exptime, has_airmass, has_gain, has_saturation, has_read_noise;
    long width, height;
    sk_footprint fp;
    double radius_deg;
    char relpath[PATH_MAX];
    char abspath[PATH_MAX];
} meta;

static double sep_deg(double ra1, double dec1, double ra2, double dec2)
{
    const double d2r = M_PI / 180.0;
    double sdd = sin((dec2 - dec1) * d2r / 2), sdr = sin((ra2 - ra1) * d2r / 2);
    double a = sdd * sdd + cos(dec1 * d2r) * cos(dec2 * d2r) * sdr * sdr;
    return 2 * asin(fmin(1.0, sqrt(a))) / d2r;
}

/* RA in [0, 360). */
static double wrap_ra(double ra)
{
    double r = fmod(fmod(ra, 360.0) + 360.0, 360.0);
    return r >= 360.0 ? 0.0 : r;
}

/* Everything but the pixels, with the refusals of imingest(1). */
static int read_meta(const char *path, const hdu_info *hdu, int multi, const json_t *map,
                     const char *map_name, const sk_ingest_opts *o, meta *m)
{
    memset(m, 0, sizeof *m);
    m->hdu = *hdu;
    char where[PATH_MAX + 100];
    if (multi || hdu->name[0])
        snprintf(where, sizeof where, "%s[%s]", path, hdu->spec);
    else
        snprintf(where, sizeof where, "%s", path);
    sk_header *h = NULL;
    int st = sk_fits_read_header(path, hdu->spec, &h);
    if (st)
        return st;
    long w = 0, hh = 0;
    if (sk_header_get_long(h, "ZNAXIS1", &w) != 1 || sk_header_get_long(h, "ZNAXIS2", &hh) != 1) {
        if (sk_header_get_long(h, "NAXIS1", &w) != 1 || sk_header_get_long(h, "NAXIS2", &hh) != 1) {
            sk_header_free(h);
            return sk_error(SK_EINPUT, "%s: no NAXIS1/NAXIS2", where);
        }
    }
    m->width = w;
    m->height = hh;

    sk_wcs *wcs = NULL;
    st = sk_wcs_from_header(h, &wcs);
    if (st == SK_OK)
        st = sk_wcs_footprint(wcs, w, hh, &m->fp);
    sk_wcs_free(wcs);
    if (st) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sk_errmsg());
        sk_header_free(h);
        return sk_error(SK_EINPUT, "%s: refused: no usable WCS (%s)", where, why);
    }
    for (int k = 0; k < 4; k++)
        if (!isfinite(m->fp.corner_ra_deg[k]) || !isfinite(m->fp.corner_dec_deg[k])) {
            sk_header_free(h);
            return sk_error(SK_EINPUT, "%s: refused: no usable WCS (a corner is outside the projection)",
                            where);
        }
    m->fp.ra_deg = wrap_ra(m->fp.ra_deg);
    for (int k = 0; k < 4; k++)
        m->fp.corner_ra_deg[k] = wrap_ra(m->fp.corner_ra_deg[k]);
    if (!m->fp.contains_pole) {
        m->fp.minra_deg = wrap_ra(m->fp.minra_deg);
        m->fp.maxra_deg = wrap_ra(m->fp.maxra_deg);
    }
    for (int k = 0; k < 4; k++)
        m->radius_deg = fmax(m->radius_deg, sep_deg(m->fp.ra_deg, m->fp.dec_deg, m->fp.corner_ra_deg[k],
                                                     m->fp.corner_dec_deg[k]));

    /* time */
    const char *mjd_key = map_str(map, "mjd"), *date_key = map_str(map, "date_obs");
    char text[256];
    if (header_number(h, mjd_key, &m->mjd)) {
        /* MJD-OBS */
    } else if (header_text(h, date_key, text, sizeof text) && sk_iso_to_mjd(text, &m->mjd) == SK_OK) {
        /* DATE-OBS */
    } else {
        sk_header_free(h);
        return sk_error(SK_EINPUT, "%s: refused: no observation time (%s or %s)", where,
                        mjd_key ? mjd_key : "no MJD keyword", date_key ? date_key : "no date keyword");
    }
    /* filter */
    if (o->filter && *o->filter) {
        snprintf(m->filter, sizeof m->filter, "%s", o->filter);
    } else if (header_text(h, map_str(map, "filter"), m->filter, sizeof m->filter)) {
        if (map_bool(map, "filter_split")) {
            char *sp = m->filter;
            while (*sp && !isspace((unsigned char)*sp))
                sp++;
            *sp = '\0';
        }
    }
    if (!m->filter[0]) {
        sk_header_free(h);
        return sk_error(SK_EINPUT, "%s: refused: no filter (keyword %s; give --filter)", where,
                        map_str(map, "filter") ? map_str(map, "filter") : "none configured");
    }
    m->has_exptime = header_number(h, map_str(map, "exptime"), &m->exptime) && m->exptime >= 0;
    double end = 0;
    if (header_number(h, map_str(map, "mjd_end"), &end) && end >= m->mjd)
        m->end_mjd = end;
    else
        m->end_mjd = m->mjd + (m->has_exptime ? m->exptime / 86400.0 : 0);
    m->has_airmass = header_number(h, map_str(map, "airmass"), &m->airmass);
    m->has_gain = header_number(h, map_str(map, "gain"), &m->gain);
    m->has_saturation = header_number(h, map_str(map, "saturate"), &m->saturation);
    m->has_read_noise = header_number(h, map_str(map, "rdnoise"), &m->read_noise);

    if (o->target && *o->target)
        snprintf(m->target, sizeof m->target, "%s", o->target);
    else
        header_text(h, map_str(map, "target"), m->target, sizeof m->target);
    if (o->project && *o->project)
        snprintf(m->project, sizeof m->project, "%s", o->project);
    else
        header_text(h, map_str(map, "project"), m->project, sizeof m->project);
    if (o->section && *o->section)
        snprintf(m->section, sizeof m->section, "%s", o->section);
    else if (!header_text(h, map_str(map, "section"), m->section, sizeof m->section) && hdu->name[0] &&
             strcasecmp(hdu->name, "SCI") != 0)
        snprintf(m->section, sizeof m->section, "%s", hdu->name);
    header_text(h, map_str(map, "telescope"), m->telescope, sizeof m->telescope);
    if (strcmp(map_name, KEYMAP_TEMPLATE) != 0)
        snprintf(m->instrument, sizeof m->instrument, "%s", map_name);
    else if (!header_text(h, map_str(map, "instrument"), m->instrument, sizeof m->instrument))
        snprintf(m->instrument, sizeof m->instrument, "unknown");
    sk_header_free(h);
    return SK_OK;
}

static int noise_kind_of(const char *name, int *kind)
{
    if (!name || !strcmp(name, "weight"))
        *kind = SK_NOISE_WEIGHT;
    else if (!strcmp(name, "variance"))
        *kind = SK_NOISE_VARIANCE;
    else if (!strcmp(name, "rms"))
        *kind = SK_NOISE_RMS;
    else
        return sk_error(SK_EINPUT, "preprocessing.instruments.*.noise_kind: '%s' is not weight, "
                                   "variance or rms", name);
    return SK_OK;
}

/* An optional text: NULL when empty. */
static const char *text_or_null(const char *v)
{
    return v && *v ? v : NULL;
}

/* Register the stored image in the images table; *id receives its id. */
static int insert_row(sk_db *db, const meta *m, const char *prov_id, const char *md5,
                      const char *orig_path, const char *orig_md5, long long *id)
{
    sk_image_row row = {
        .filepath = m->relpath,
        .md5 = md5,
        .provenance_id = prov_id,
        .original_path = orig_path,
        .original_md5 = orig_md5,
        .original_hdu = m->hdu.spec,
        .instrument = m->instrument,
        .telescope = text_or_null(m->telescope),
        .filter = m->filter,
        .section = text_or_null(m->section),
        .target = text_or_null(m->target),
        .project = text_or_null(m->project),
        .mjd = m->mjd,
        .end_mjd = m->end_mjd,
        .exptime_s = m->has_exptime ? m->exptime : NAN,
        .airmass = m->has_airmass ? m->airmass : NAN,
        .gain = m->has_gain ? m->gain : NAN,
        .saturation = m->has_saturation ? m->saturation : NAN,
        .read_noise = m->has_read_noise ? m->read_noise : NAN,
        .width = m->width,
        .height = m->height,
        .footprint = m->fp,
        .radius_deg = m->radius_deg,
    };
    return sk_image_row_insert(db, &row, id);
}

static int is_skystack_layout(const char *path)
{
    return sk_fits_has_hdu(path, "SCI") && sk_fits_has_hdu(path, "WGT") && sk_fits_has_hdu(path, "FLG");
}

void sk_ingested_free(sk_ingested *list, int n)
{
    for (int i = 0; list && i < n; i++) {
        free(list[i].relpath);
        free(list[i].path);
    }
    free(list);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return d;
}

/* Files written so far for this input: removed if anything fails. */
typedef struct written {
    char **paths;
    int n;
} written;

static void remember(written *w, const char *path)
{
    char **p = realloc(w->paths, ((size_t)w->n + 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    w->paths = p;
    w->paths[w->n++] = xstrdup(path);
}

static void forget(written *w, int remove_files)
{
    for (int i = 0; i < w->n; i++) {
        if (remove_files)
            unlink(w->paths[i]);
        free(w->paths[i]);
    }
    free(w->paths);
    w->paths = NULL;
    w->n = 0;
}

/* The image's file in the data root at `abspath` (a copy of the pixels,
 * or a symbolic link to the original) and its provenance sidecar; *md5
 * the file's. */
static int write_stored(const sk_config *cfg, const char *path, const char *abs_original,
                        const char *orig_md5, const meta *m, const json_t *map,
                        const sk_ingest_opts *o, const char *weight,
                        const char *mask, int link, const sk_prov *prov, const char *abspath,
                        written *w, char *md5)
{
    int st;
    if (link) {
        if (symlink(abs_original, abspath) != 0)
            return sk_error(SK_EIO, "%s: cannot link %s: %s", path, abspath, strerror(errno));
        remember(w, abspath);
        snprintf(md5, 33, "%s", orig_md5);
    } else {
        sk_read_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.hdu = m->hdu.spec;
        ro.noise_path = weight;
        ro.mask_path = mask;
        ro.noise_hdu = o->weight_hdu;
        ro.mask_hdu = o->mask_hdu;
        if ((st = noise_kind_of(map_str(map, "noise_kind"), &ro.noise_kind)))
            return st;
        ro.mask_is_flags = map_bool(map, "mask_is_flags");
        ro.saturate_key = map_str(map, "saturate");
        if (ro.saturate_key && strchr(ro.saturate_key, ','))
            ro.saturate_key = NULL; /* an average of several: SATURATE */
        sk_image *img = NULL;
        if ((st = sk_fits_read_image(path, &ro, &img)))
            return st;
        sk_write_opts wo;
        memset(&wo, 0, sizeof wo);
        wo.compress = sk_config_bool(cfg, "storage.compress", 0);
        st = sk_fits_write_image(abspath, img, &wo);
        sk_image_free(img);
        if (st)
            return st;
        remember(w, abspath);
        if ((st = sk_md5_file(abspath, md5)))
            return st;
    }
    sk_input_file inputs[3];
    int ninputs = 0;
    inputs[ninputs++] = (sk_input_file){NULL, abs_original, orig_md5, "original"};
    if (weight)
        inputs[ninputs++] = (sk_input_file){NULL, weight, NULL, "weight"};
    if (mask)
        inputs[ninputs++] = (sk_input_file){NULL, mask, NULL, "mask"};
    char sidecar[PATH_MAX + 8];
    snprintf(sidecar, sizeof sidecar, "%s.json", abspath);
    remember(w, sidecar);
    return sk_sidecar_write(abspath, "image", prov, inputs, ninputs);
}

/* A registered image whose file (or its sidecar) is missing from the data
 * root, or no longer has its row's md5: written again from the original
 * under the same id, when that gives the registered file. */
static int restore_registered(const sk_config *cfg, const char *path, const char *abs_original,
                              const char *orig_md5, const meta *m, const json_t *map,
                              const sk_ingest_opts *o, const char *weight,
                              const char *mask, int link, const sk_prov *prov, written *w,
                              const char *row_md5, sk_ingested *res)
{
    char sidecar[PATH_MAX + 8], have[33] = "";
    snprintf(sidecar, sizeof sidecar, "%s.json", res->path);
    struct stat sb;
    int there = lstat(res->path, &sb) == 0; /* also a dangling link */
    if (there && file_exists(sidecar) && sk_md5_file(res->path, have) == SK_OK && !strcmp(have, row_md5))
        return SK_OK;
    sk_error_clear();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", res->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int st = sk_mkdir_p(dir);
    if (!st && there && unlink(res->path) != 0)
        st = sk_error(SK_EIO, "%s: cannot remove the damaged %s: %s", path, res->path, strerror(errno));
    char md5[33];
    st = st ? st : write_stored(cfg, path, abs_original, orig_md5, m, map, o, weight, mask, link, prov,
                                res->path, w, md5);
    if (!st && strcmp(md5, row_md5) != 0)
        st = sk_error(SK_EINPUT, "%s: image %lld's file %s was %s, and the copy made now has md5 %s, "
                                 "not the %s of its row (another storage configuration?); nothing was "
                                 "restored: see `skydb fsck`",
                      path, res->image_id, res->path, there ? "damaged" : "missing", md5, row_md5);
    if (st)
        return st;
    sk_warn("%s: image %lld: its file %s was %s in the data root: restored under the same id", path,
            res->image_id, res->path, there ? "damaged" : "missing");
    res->restored = 1;
    return SK_OK;
}

/* Store one image (the pixels are read only now) and register it. */
static int store_one(sk_db *db, const sk_config *cfg, const char *path, const char *abs_original,
                     const char *orig_md5, meta *m, const json_t *map, const sk_ingest_opts *o,
                     const char *weight, const char *mask, int link, const sk_prov *prov,
                     written *w, sk_ingested *res)
{
    /* Registered already (same content and HDU under this provenance)? */
    long long found_id = 0;
    char *found_path = NULL, row_md5[33];
    int st = sk_image_find_original(db, prov->id, orig_md5, m->hdu.spec, &found_id, &found_path, row_md5);
    if (st)
        return st;
    if (found_id) {
        res->image_id = found_id;
        res->existed = 1;
        res->relpath = found_path;
        char abs[PATH_MAX];
        char root[PATH_MAX];
        st = sk_storage_root(cfg, root, sizeof root);
        if (st == SK_OK)
            st = sk_storage_resolve(root, res->relpath, abs, sizeof abs);
        if (st)
            return st;
        res->path = xstrdup(abs);
        return restore_registered(cfg, path, abs_original, orig_md5, m, map, o, weight, mask, link, prov, w,
                                  row_md5, res);
    }
    char *other_original = NULL;
    if ((st = sk_image_find_filepath(db, m->relpath, &found_id, &other_original)))
        return st;
    if (found_id) {
        st = sk_error(SK_EINPUT,
                      "%s: its place in the data root, %s, already holds image %lld ingested from "
                      "another file (%s) with the same name",
                      path, m->relpath, found_id, other_original ? other_original : "unknown");
        free(other_original);
        return st;
    }

    /* the file in the data root */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", m->abspath);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if ((st = sk_mkdir_p(dir)))
        return sk_error_context("%s: creating %s", path, dir);
    if (file_exists(m->abspath) || access(m->abspath, F_OK) == 0)
        return sk_error(SK_EINPUT, "%s: %s exists in the data root but is not registered; move it "
                                   "away (it may be left over from an interrupted run)",
                        path, m->abspath);
    char md5[33];
    st = write_stored(cfg, path, abs_original, orig_md5, m, map, o, weight, mask, link, prov, m->abspath, w,
                      md5);
    long long id = 0;
    if (st || (st = insert_row(db, m, prov->id, md5, abs_original, orig_md5, &id)))
        return st;
    res->image_id = id;
    res->existed = 0;
    res->relpath = xstrdup(m->relpath);
    res->path = xstrdup(m->abspath);
    return SK_OK;
}

int sk_ingest_file(sk_db *db, const sk_config *cfg, const char *path, const sk_ingest_opts *o,
                   sk_ingested **out, int *nout)
{
    *out = NULL;
    *nout = 0;
    sk_ingest_opts none;
    if (!o) {
        memset(&none, 0, sizeof none);
        none.link = -1;
        o = &none;
    }
    const char *map_name = instrument_name(cfg, o->instrument);
    json_t *map = NULL;
    int st = resolve_map(cfg, map_name, &map);
    if (st)
        return st;
    char abs_original[PATH_MAX];
    if (!realpath(path, abs_original)) {
        json_decref(map);
        return sk_error(errno == ENOENT ? SK_EINPUT : SK_EIO, "%s: %s", path, strerror(errno));
    }
    hdu_info *hdus = NULL;
    int nhdus = 0;
    const char *spec = o->hdu && *o->hdu ? o->hdu : map_str(map, "science_hdu");
    if (spec) {
        hdus = calloc(1, sizeof *hdus);
        if (!hdus)
            abort();
        snprintf(hdus[0].spec, sizeof hdus[0].spec, "%s", spec);
        if (!isdigit((unsigned char)spec[0]))
            snprintf(hdus[0].name, sizeof hdus[0].name, "%s", spec);
        nhdus = 1;
    } else if ((st = list_image_hdus(path, &hdus, &nhdus))) {
        json_decref(map);
        return st;
    }

    /* companions */
    char weight_buf[PATH_MAX], mask_buf[PATH_MAX];
    const char *weight = o->weight_path, *mask = o->mask_path;
    if (!weight && apply_rename(map_str(map, "weight_rename"), abs_original, 0, weight_buf, sizeof weight_buf) &&
        file_exists(weight_buf))
        weight = weight_buf;
    if (!mask && apply_rename(map_str(map, "mask_rename"), abs_original, 0, mask_buf, sizeof mask_buf) &&
        file_exists(mask_buf))
        mask = mask_buf;
    int link = o->link >= 0 ? o->link : sk_config_bool(cfg, "preprocessing.link", 0);
    if (link && (o->weight_hdu || o->mask_hdu)) {
        free(hdus);
        json_decref(map);
        return sk_error(SK_EINPUT, "%s: --weight-hdu/--mask-hdu: not with --link (a linked file keeps its "
                                   "own WGT and FLG)", path);
    }
    if (link && (weight || mask || !is_skystack_layout(path))) {
        free(hdus);
        json_decref(map);
        return sk_error(SK_EINPUT,
                        "%s: --link keeps the file as it is, so it must already be in the skystack "
                        "layout (SCI, WGT, FLG extensions, no separate weight or mask); ingest it by "
                        "copy instead",
                        path);
    }

    sk_prov *prov = NULL;
    char orig_md5[33];
    char root[PATH_MAX];
    meta *metas = calloc((size_t)nhdus, sizeof *metas);
    if (!metas)
        abort();
    st = sk_ingest_provenance(cfg, map_name, &prov);
    if (st == SK_OK)
        st = sk_storage_root(cfg, root, sizeof root);
    /* Phase 1: every HDU's metadata; any refusal refuses the file. */
    char stem[256];
    file_stem(path, stem, sizeof stem);
    for (int k = 0; st == SK_OK && k < nhdus; k++) {
        meta *m = &metas[k];
        st = read_meta(path, &hdus[k], nhdus > 1, map, map_name, o, m);
        if (st)
            break;
        char dir[PATH_MAX];
        st = sk_storage_dir(m->instrument, m->mjd, m->section[0] ? m->section : NULL, m->filter,
                            "science", prov->id, dir, sizeof dir);
        if (st)
            break;
        char name[400], hdupart[100] = "";
        if (nhdus > 1) {
            char comp[80];
            sk_storage_component(hdus[k].spec, comp, sizeof comp);
            snprintf(hdupart, sizeof hdupart, "_%s", comp);
        }
        char safe_stem[256];
        sk_storage_component(stem, safe_stem, sizeof safe_stem);
        snprintf(name, sizeof name, "%s%s.fits%s", safe_stem, hdupart,
                 link || !sk_config_bool(cfg, "storage.compress", 0) ? "" : ".fz");
        if ((size_t)snprintf(m->relpath, sizeof m->relpath, "%s/%s", dir, name) >= sizeof m->relpath)
            st = sk_error(SK_EINPUT, "%s: stored path too long", path);
        else
            st = sk_storage_resolve(root, m->relpath, m->abspath, sizeof m->abspath);
    }
    if (st == SK_OK)
        st = sk_md5_file(path, orig_md5);

    /* Phase 2: one transaction for the whole file. */
    sk_ingested *res = NULL;
    written w = {0};
    if (st == SK_OK) {
        res = calloc((size_t)nhdus, sizeof *res);
        if (!res)
            abort();
        st = sk_db_begin(db);
        if (st == SK_OK) {
            char lock[64];
            snprintf(lock, sizeof lock, "ingest:%s", orig_md5);
            st = sk_db_lock(db, lock);
        }
        if (st == SK_OK)
            st = sk_db_save_prov(db, prov);
        for (int k = 0; st == SK_OK && k < nhdus; k++)
            st = store_one(db, cfg, path, abs_original, orig_md5, &metas[k], map, o, weight, mask, link,
                           prov, &w, &res[k]);
        if (st == SK_OK)
            st = sk_db_commit(db);
        if (st) {
            sk_db_rollback(db);
            forget(&w, 1);
            sk_ingested_free(res, nhdus);
            res = NULL;
        } else {
            forget(&w, 0);
        }
    }
    sk_prov_free(prov);
    free(metas);
    free(hdus);
    json_decref(map);
    if (st)
        return st;
    *out = res;
    *nout = nhdus;
    return SK_OK;
}
