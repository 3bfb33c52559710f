/* background_io.c: the background product as FITS: the filtered cell mesh of level and rms with its interpolation rule (and optionally the full maps), and reading it back. */
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/header.h"
#include "extract_internal.h"

int sk_background_write(const char *path, const sk_background *bg, int full, double fwhm_px)
{
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "%s: out of memory", path);
    int rc = sk_header_set_long(h, "MESHPX", bg->mesh_px, "[pixel] background cell size");
    rc = rc ? rc : sk_header_set_long(h, "IMWIDTH", bg->width, "[pixel] image width");
    rc = rc ? rc : sk_header_set_long(h, "IMHEIGHT", bg->height, "[pixel] image height");
    rc = rc ? rc : sk_header_set_double(h, "BKGMED", bg->median_level, "[adu] median background level");
    rc = rc ? rc : sk_header_set_double(h, "RMSMED", bg->median_rms, "[adu] median background rms");
    rc = rc ? rc : sk_header_set_double(h, "LVLERR", bg->level_err, "[adu] typical error of the level");
    rc = rc ? rc : sk_header_set_double(h, "FWHM", fwhm_px, "[pixel] image FWHM");
    rc = rc ? rc : sk_header_set_str(h, "BKGINTRP", "SPLINE3", "natural bicubic spline through cell centres");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
                                         "Cell (i,j) covers pixels [i*MESHPX, min((i+1)*MESHPX, IMWIDTH))");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
                                         "along x (likewise y); its centre is the knot, 0-based; splines");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
                                         "along y then x, linear beyond the outer centres (extract(1)).");
    sk_fits_writer *w = NULL;
    rc = rc ? rc : sk_fits_writer_open(path, 0, &w);
    rc = rc ? rc : sk_fits_writer_add_image(w, "BKGMESH", -32, bg->nx, bg->ny, bg->mesh_level, h);
    rc = rc ? rc : sk_fits_writer_add_image(w, "RMSMESH", -32, bg->nx, bg->ny, bg->mesh_rms, h);
    if (full) {
        rc = rc ? rc : sk_fits_writer_add_image(w, "BACKGROUND", -32, bg->width, bg->height, bg->level, h);
        rc = rc ? rc : sk_fits_writer_add_image(w, "RMS", -32, bg->width, bg->height, bg->rms, h);
    }
    sk_header_free(h);
    if (rc) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

int sk_background_read(const char *path, int threads, sk_background **out)
{
    *out = NULL;
    sk_background *bg = calloc(1, sizeof *bg);
    if (!bg)
        return sk_error(SK_EIO, "%s: out of memory", path);
    sk_header *h = NULL, *h2 = NULL;
    long nx = 0, ny = 0, nx2 = 0, ny2 = 0, mesh = 0;
    int rc = sk_fits_read_plane(path, "BKGMESH", &bg->mesh_level, &nx, &ny, &h);
    rc = rc ? rc : sk_fits_read_plane(path, "RMSMESH", &bg->mesh_rms, &nx2, &ny2, &h2);
    if (!rc && (nx != nx2 || ny != ny2))
        rc = sk_error(SK_EINPUT, "%s: BKGMESH and RMSMESH differ in size", path);
    if (!rc && (sk_header_get_long(h, "MESHPX", &mesh) != 1 || mesh < 1 ||
                sk_header_get_long(h, "IMWIDTH", &bg->width) != 1 ||
                sk_header_get_long(h, "IMHEIGHT", &bg->height) != 1 ||
                (bg->width + mesh - 1) / mesh != nx || (bg->height + mesh - 1) / mesh != ny))
        rc = sk_error(SK_EINPUT, "%s: MESHPX, IMWIDTH, IMHEIGHT missing or inconsistent with the mesh", path);
    if (!rc) {
        bg->mesh_px = (int)mesh;
        bg->nx = nx;
        bg->ny = ny;
        sk_header_get_double(h, "BKGMED", &bg->median_level);
        sk_header_get_double(h, "RMSMED", &bg->median_rms);
        sk_header_get_double(h, "LVLERR", &bg->level_err);
        rc = sk_background_interpolate(bg, threads);
    }
    sk_header_free(h);
    sk_header_free(h2);
    if (rc) {
        sk_background_free(bg);
        return rc;
    }
    *out = bg;
    return SK_OK;
}
