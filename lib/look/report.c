/* report.c: the static HTML report page of a refset or of the coadds made since a date: a table of the products with their quick-looks, provenance chains and figures, and SVG plots of seeing, depth and sky coverage. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/parallel.h"
#include "core/path_priv.h"
#include "db/report_rows_priv.h"
#include "report_priv.h"
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "skystack/look.h"
#include "skystack/share.h"
#include "skystack/storage.h"

/* Everything the page shows, read once. */
typedef struct report {
    const sk_report_opts *o;
    sk_db_rows *prod, *inputs, *chains;
    char outdir[PATH_MAX];     /* absolute */
    char **thumb;              /* per product: the quick-look relative to outdir, or NULL */
} report;

static const char *txt(const sk_db_rows *r, int row, const char *col)
{
    return sk_db_rows_text(r, row, sk_db_rows_col(r, col));
}

static double num(const sk_db_rows *r, int row, const char *col)
{
    return sk_db_rows_double(r, row, sk_db_rows_col(r, col));
}

static void html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* `target` relative to the directory `dir` (both absolute, normalised). */
static int relative_to(const char *dir, const char *target, char *out, size_t outsz)
{
    size_t common = 0, i = 0;
    while (dir[i] && target[i] && dir[i] == target[i]) {
        if (dir[i] == '/')
            common = i;
        i++;
    }
    if (!dir[i] && target[i] == '/')
        common = i;
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = dir + common; *p; p++)
        if (*p == '/' && used + 4 < outsz) {
            memcpy(out + used, "../", 4);
            used += 3;
        }
    if ((size_t)snprintf(out + used, outsz - used, "%s", target + common + 1) >= outsz - used)
        return sk_error(SK_EINPUT, "%s: path too long", target);
    return SK_OK;
}

/* The quick-look of product k: made beside it when missing (and its
 * coadd is there), then its path relative to the page. */
static int thumb_one(long k, void *user)
{
    report *R = user;
    const char *rel = txt(R->prod, (int)k, "filepath");
    char path[PATH_MAX], png[PATH_MAX + 8], real[PATH_MAX], out[2 * PATH_MAX];
    if (!rel || sk_storage_resolve(R->o->data_root, rel, path, sizeof path) != SK_OK) {
        sk_error_clear();
        return SK_OK;
    }
    if (sk_look_png_name(path, png, sizeof png) != SK_OK)
        return SK_OK;
    if (!sk_path_is_file(png) && sk_path_is_file(path) && sk_look_product(path, NULL, NULL, 0) != SK_OK) {
        sk_warn("%s: no quick-look: %s", path, sk_errmsg());
        sk_error_clear();
    }
    if (!realpath(png, real) || relative_to(R->outdir, real, out, sizeof out) != SK_OK) {
        sk_error_clear();
        return SK_OK;
    }
    R->thumb[k] = strdup(out);
    return R->thumb[k] ? SK_OK : sk_error(SK_EIO, "out of memory");
}

static int read_rows(sk_db *db, report *R)
{
    const sk_report_opts *o = R->o;
    sk_report_sel sel = {o->refset, o->has_since ? o->since_mjd : NAN};
    int rc = SK_OK;
    if (o->refset) {
        int exists = 0;
        rc = sk_db_report_refset_exists(db, o->refset, &exists);
        if (!rc && !exists)
            return sk_error(SK_ENOTFOUND, "refset '%s' does not exist (see `refset list`)", o->refset);
    }
    rc = rc ? rc : sk_db_report_products(db, &sel, &R->prod);
    if (!rc && sk_db_rows_count(R->prod) == 0) {
        char iso[64] = "";
        if (!o->refset)
            sk_mjd_to_iso(o->since_mjd, iso, sizeof iso);
        return o->refset ? sk_error(SK_ENOTFOUND, "refset '%s' holds no reference", o->refset)
                         : sk_error(SK_ENOTFOUND, "no coadd was made since %s", iso);
    }
    rc = rc ? rc : sk_db_report_inputs(db, &sel, &R->inputs);
    rc = rc ? rc : sk_db_report_chains(db, &sel, &R->chains);
    return rc;
}

static void fmt_num(FILE *f, double v, const char *fmt)
{
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("&ndash;", f);
}

/* The provenance chain of product row k: its root and every upstream,
 * by process, at most 4 ids of a process listed. */
static void chain_html(FILE *f, const report *R, int k)
{
    const char *root = txt(R->prod, k, "ref_prov");
    root = root ? root : txt(R->prod, k, "coadd_prov");
    const sk_db_rows *c = R->chains;
    int n = sk_db_rows_count(c), shown = 0, more = 0;
    const char *last = "";
    for (int i = 0; root && i < n; i++) {
        if (strcmp(txt(c, i, "root"), root) != 0)
            continue;
        const char *proc = txt(c, i, "process");
        if (strcmp(proc, last) != 0) {
            if (more)
                fprintf(f, " +%d more", more);
            fprintf(f, "%s<b>%s</b> ", *last ? "<br>" : "", proc);
            last = proc;
            shown = more = 0;
        }
        if (shown < 4) {
            fprintf(f, "<code>%s</code> ", txt(c, i, "id"));
            shown++;
        } else {
            more++;
        }
    }
    if (more)
        fprintf(f, " +%d more", more);
}

static void product_place(FILE *f, const sk_db_rows *p, int k)
{
    /* a reference's place is a field (target, section) or a position */
    const char *place = txt(p, k, "place"), *t = txt(p, k, "target"), *s = txt(p, k, "section_id");
    if (t) {
        html_escape(f, t);
        fputs(s ? " / " : "", f);
        html_escape(f, s);
    } else if (place) {
        html_escape(f, place);
    } else {
        fmt_num(f, num(p, k, "ra"), "%.5f");
        fputs(", ", f);
        fmt_num(f, num(p, k, "dec"), "%+.5f");
    }
}

/* The stars of the zero point and what the calibration star selection
 * left out, when the row records them. */
static void zero_point_stars(FILE *f, const sk_db_rows *p, int k)
{
    const char *n = txt(p, k, "num_stars"), *m = txt(p, k, "num_candidates");
    if (!n || !m)
        return;
    const char *c = txt(p, k, "num_rejected_chi2"), *a = txt(p, k, "num_rejected_aperture");
    const char *b = txt(p, k, "num_rejected_neighbour");
    fprintf(f, "<br><small>%s of %s stars; left out: %s &chi;&sup2;, %s aperture, %s neighbour</small>", n, m,
            c ? c : "-", a ? a : "-", b ? b : "-");
}

static void product_row(FILE *f, const report *R, int k)
{
    const sk_db_rows *p = R->prod;
    double m0 = num(p, k, "mjd"), m1 = num(p, k, "end_mjd");
    char d0[40] = "", d1[40] = "";
    sk_mjd_to_iso(m0, d0, sizeof d0);
    sk_mjd_to_iso(m1, d1, sizeof d1);
    d0[10] = d1[10] = '\0';
    int bad = txt(p, k, "is_bad") && txt(p, k, "is_bad")[0] == 't';
    fprintf(f, "<tr%s><td>", bad ? " class=\"bad\"" : "");
    if (R->thumb[k]) {
        fputs("<a href=\"", f);
        html_escape(f, R->thumb[k]);
        fputs("\"><img loading=\"lazy\" width=\"160\" alt=\"quick-look\" src=\"", f);
        html_escape(f, R->thumb[k]);
        fputs("\"></a>", f);
    } else {
        fputs("no quick-look", f);
    }
    fputs("</td><td>", f);
    product_place(f, p, k);
    fputs("<br><small>", f);
    fmt_num(f, num(p, k, "ra"), "%.5f");
    fputs(" ", f);
    fmt_num(f, num(p, k, "dec"), "%+.5f");
    fputs("</small></td><td>", f);
    html_escape(f, txt(p, k, "filter"));
    fprintf(f, "</td><td>%s<br>%s<br><small>%.2f d</small></td><td>%s</td><td>", d0, d1, m1 - m0,
            txt(p, k, "n_inputs") ? txt(p, k, "n_inputs") : "0");
    fmt_num(f, num(p, k, "fwhm_arcsec"), "%.2f&Prime;");
    fputs("</td><td>", f);
    fmt_num(f, num(p, k, "lim_mag"), "%.2f");
    fputs("</td><td>", f);
    fmt_num(f, num(p, k, "zp"), "%.3f");
    zero_point_stars(f, p, k);
    fprintf(f, "</td><td><code>%s</code>", txt(p, k, "coadd_prov"));
    if (txt(p, k, "ref_id"))
        fprintf(f, "<br>reference %s", txt(p, k, "ref_id"));
    if (bad) {
        fputs("<br>bad: ", f);
        html_escape(f, txt(p, k, "bad_reason"));
    }
    fputs("<br><small>", f);
    html_escape(f, txt(p, k, "filepath"));
    fputs("</small></td><td class=\"chain\">", f);
    chain_html(f, R, k);
    fputs("</td></tr>\n", f);
}

static void page_head(FILE *f, const report *R, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    html_escape(f, title);
    fputs("</title>\n<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}"
          "th{background:#eee}tr.bad{background:#fdd}td.chain{max-width:28em}code{font-size:12px}"
          "img{display:block}.plots img{display:inline-block;margin:4px;border:1px solid #ccc}</style>\n"
          "</head><body>\n<h1>", f);
    html_escape(f, title);
    fprintf(f, "</h1>\n<p>%d product%s, %d input image%s. Made by skystack %s.</p>\n", sk_db_rows_count(R->prod),
            sk_db_rows_count(R->prod) == 1 ? "" : "s", sk_db_rows_count(R->inputs),
            sk_db_rows_count(R->inputs) == 1 ? "" : "s", sk_version());
    fputs("<div class=\"plots\"><img src=\"sky.svg\" alt=\"coverage and depth on the sky\">"
          "<img src=\"depth.svg\" alt=\"depth over time\"><img src=\"seeing.svg\" alt=\"seeing over time\"></div>\n",
          f);
}

static int write_page(const report *R, const char *path, const char *title)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sk_error(SK_EIO, "%s: out of memory", path);
    page_head(f, R, title);
    fputs("<table>\n<tr><th>quick-look</th><th>place</th><th>filter</th><th>time span (UTC)</th><th>inputs</th>"
          "<th>seeing<br>(PSF FWHM)</th><th>5&sigma; depth<br>(mag)</th><th>zero point<br>(mag)</th>"
          "<th>provenance</th><th>provenance chain</th></tr>\n", f);
    for (int k = 0; k < sk_db_rows_count(R->prod); k++)
        product_row(f, R, k);
    fputs("</table>\n</body></html>\n", f);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    int rc = sk_atomic_write_file(path, buf, len);
    free(buf);
    return rc;
}

/* The three plots beside the page. */
static int write_plots(const report *R, const char *dir)
{
    const sk_db_rows *in = R->inputs, *p = R->prod;
    long ni = sk_db_rows_count(in), np = sk_db_rows_count(p);
    sk_plot_point *pts = calloc((size_t)ni + 1, sizeof *pts);
    sk_plot_span *spans = calloc((size_t)np + 1, sizeof *spans);
    sk_sky_box *boxes = calloc((size_t)np + 1, sizeof *boxes);
    int rc = pts && spans && boxes ? SK_OK : sk_error(SK_EIO, "out of memory");
    char path[PATH_MAX + 32];
    static const char *const corner[4][2] = {{"ra_00", "dec_00"}, {"ra_10", "dec_10"}, {"ra_11", "dec_11"},
                                             {"ra_01", "dec_01"}};
    for (int pass = 0; !rc && pass < 2; pass++) {
        const char *col = pass == 0 ? "lim_mag" : "fwhm_arcsec";
        for (long i = 0; i < ni; i++)
            pts[i] = (sk_plot_point){num(in, (int)i, "mjd"), num(in, (int)i, col), txt(in, (int)i, "filter")};
        for (long k = 0; k < np; k++)
            spans[k] = (sk_plot_span){num(p, (int)k, "mjd"), num(p, (int)k, "end_mjd"), num(p, (int)k, col),
                                      txt(p, (int)k, "filter")};
        snprintf(path, sizeof path, "%s/%s", dir, pass == 0 ? "depth.svg" : "seeing.svg");
        rc = sk_plot_time_svg(path,
                              pass == 0 ? "5-sigma depth: inputs (dots), products over their time span (lines)"
                                        : "Seeing (PSF FWHM): inputs (dots), products (lines)",
                              pass == 0 ? "5-sigma limiting magnitude" : "FWHM (arcsec)", pts, ni, spans, np);
    }
    for (long k = 0; !rc && k < np; k++) {
        for (int c = 0; c < 4; c++) {
            boxes[k].ra_deg[c] = num(p, (int)k, corner[c][0]);
            boxes[k].dec_deg[c] = num(p, (int)k, corner[c][1]);
        }
        boxes[k].depth_mag = num(p, (int)k, "lim_mag");
        boxes[k].label = txt(p, (int)k, "filepath");
    }
    snprintf(path, sizeof path, "%s/sky.svg", dir);
    rc = rc ? rc : sk_plot_sky_svg(path, "Coverage on the sky, coloured by 5-sigma depth", boxes, np);
    free(pts);
    free(spans);
    free(boxes);
    return rc;
}

static void report_clear(report *R)
{
    for (int k = 0; R->thumb && R->prod && k < sk_db_rows_count(R->prod); k++)
        free(R->thumb[k]);
    free(R->thumb);
    sk_db_rows_free(R->prod);
    sk_db_rows_free(R->inputs);
    sk_db_rows_free(R->chains);
}

int sk_report_write(sk_db *db, const sk_report_opts *o, char *page, size_t pagesz)
{
    if (!o || !o->outdir || !*o->outdir || !o->data_root)
        return sk_error(SK_EINPUT, "report: no output folder given");
    if (!o->refset && !o->has_since)
        return sk_error(SK_EINPUT, "report: give a refset name or --since DATE");
    report R;
    memset(&R, 0, sizeof R);
    R.o = o;
    int rc = sk_mkdir_p(o->outdir);
    if (!rc && !realpath(o->outdir, R.outdir))
        rc = sk_error(SK_EIO, "%s: cannot resolve the folder", o->outdir);
    rc = rc ? rc : read_rows(db, &R);
    long np = rc ? 0 : sk_db_rows_count(R.prod);
    if (!rc && !(R.thumb = calloc((size_t)np, sizeof *R.thumb)))
        rc = sk_error(SK_EIO, "out of memory");
    rc = rc ? rc : sk_parallel_for_each(np, o->threads > 0 ? o->threads : 1, thumb_one, &R);
    rc = rc ? rc : write_plots(&R, R.outdir);
    char title[512], iso[64] = "";
    if (o->refset)
        snprintf(title, sizeof title, "Refset %s", o->refset);
    else {
        sk_mjd_to_iso(o->since_mjd, iso, sizeof iso);
        snprintf(title, sizeof title, "Coadds made since %s UTC", iso);
    }
    if (!rc && (size_t)snprintf(page, pagesz, "%s/index.html", R.outdir) >= pagesz)
        rc = sk_error(SK_EINPUT, "%s: path too long", R.outdir);
    rc = rc ? rc : write_page(&R, page, title);
    report_clear(&R);
    return rc;
}
