/* wcs.h: world coordinates through wcslib: any projection wcslib reads,
 * TPV and SIP distortions included; pixel<->sky for arrays, footprint,
 * pixel scale and area, and writing back to a header.
 *
 * Pixel convention: inside the library pixel coordinates are 0-based, the
 * centre of the first pixel is (0, 0) and it spans [-0.5, 0.5). FITS
 * (and wcslib) are 1-based; the conversion happens only in this module and
 * at file boundaries (region files, tables meant for other tools): the
 * library's (x, y) is wcslib's (x + 1, y + 1). Sky coordinates are
 * ICRS/FK5 degrees as the header gives them, RA in [0, 360).
 *
 * Headers are read as wcslib's wcspih() reads them with every informal
 * extension allowed (TPV, SIP with its AP/BP, DSS plate solutions, IRAF
 * TNX/ZPX, CROTA, AIPS NCP/GLS after wcsfix), which is also how astropy
 * 5.2 reads them; IRAF LTV/LTM are ignored by both. The first description
 * with a longitude/latitude pair is used (primary, then alternates A-Z).
 *
 * Threads: transformations, footprint and pixel scale may be called
 * concurrently on one sk_wcs (each call borrows a private copy of the
 * wcsprm, because wcslib writes scratch memory while transforming). The
 * struct from sk_wcs_wcsprm() is not for concurrent transformations. */
#ifndef SKYSTACK_WCS_H
#define SKYSTACK_WCS_H

#include "header.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_wcs sk_wcs;

/* Parse the celestial WCS of a header. SK_EINPUT with a message saying what
 * is missing or inconsistent (no CTYPE, not celestial, singular matrix...).
 * A parsed sk_wcs may be used from several threads for transformations. */
int sk_wcs_from_header(const sk_header *h, sk_wcs **out);
sk_wcs *sk_wcs_copy(const sk_wcs *w);
void sk_wcs_free(sk_wcs *w);

/* Transform n points. Points that fail (outside the projection's domain)
 * get NaN and the call returns SK_EINPUT after transforming the others. */
int sk_wcs_pix2sky(const sk_wcs *w, long n, const double *x, const double *y,
                   double *ra_deg, double *dec_deg);
int sk_wcs_sky2pix(const sk_wcs *w, long n, const double *ra_deg,
                   const double *dec_deg, double *x, double *y);

typedef struct sk_footprint {
    double ra_deg, dec_deg;          /* image centre */
    double corner_ra_deg[4];         /* outer pixel-edge corners in order */
    double corner_dec_deg[4];        /* (-.5,-.5) (w-.5,-.5) (w-.5,h-.5) (-.5,h-.5) */
    double minra_deg, maxra_deg;     /* bounding box; maxra < minra when the */
    double mindec_deg, maxdec_deg;   /* image straddles RA = 0 */
    int contains_pole;               /* +1/-1 when a celestial pole is inside
                                        (then RA spans 0..360) */
} sk_footprint;

/* Centre, corners and bounding box of a width x height image. The box
 * follows the edges (not only corners), so a distorted edge bulging past
 * its corners is included. SK_EINPUT when part of the outer edge has no
 * sky position (an image larger than its projection's domain). */
int sk_wcs_footprint(const sk_wcs *w, long width, long height, sk_footprint *fp);

/* Local pixel scale (sqrt of the area, arcsec) and area (arcsec^2) at (x, y)
 * from the Jacobian of pixel -> unit vector on the sphere (central
 * differences over one pixel), distortions included. NaN where undefined. */
double sk_wcs_pixel_scale_arcsec(const sk_wcs *w, double x, double y);
double sk_wcs_pixel_area_arcsec2(const sk_wcs *w, double x, double y);

/* How far apart (arcsec) two WCSs put the sky over a width x height grid:
 * the largest great-circle distance between the positions they give at
 * the four corner pixels and the centre. Images on "one grid" have the
 * same size and a distance of (nearly) 0. NaN where a WCS is undefined. */
double sk_wcs_grid_offset_arcsec(const sk_wcs *a, const sk_wcs *b, long width, long height);

/* Replace the WCS cards of `h` with this WCS (distortions included) as its
 * primary description: every celestial WCS card of any convention and any
 * alternate (CTYPE.., CD/PC, PV, SIP A_/B_/AP_/BP_, DSS PLT.. and AMD.., IRAF
 * WAT.., CPDIS/DP...) is removed, then wcshdo()'s cards are appended with
 * 17 significant digits. TPV and SIP are written as TPV and SIP; other
 * distortions as wcslib's TPD. Other cards (DATE-OBS, LTV...) stay. */
int sk_wcs_to_header(const sk_wcs *w, sk_header *h);

/* The TPV description (wcs_tpv.c) of the WCS cards of `h`, for SWarp and
 * SCAMP, which read TPV but ignore SIP: a TAN-SIP WCS (SIP order <= 7; CD
 * or PC with CDELT) becomes RA---TPV/DEC--TPV with the same CRPIX, CRVAL
 * and CD and PV1_k/PV2_k polynomials in the intermediate coordinates
 * giving the same sky positions (SIP's forward A, B; its inverse AP, BP is
 * not needed), a TAN one the identity TPV; a TPV one is copied. A new
 * header of the WCS cards (with RADESYS, EQUINOX, MJD-OBS, DATE-OBS when
 * present). SK_EINPUT for other projections. */
int sk_wcs_header_to_tpv(const sk_header *h, sk_header **out);

/* The underlying struct wcsprm (for code that needs wcslib directly). */
const void *sk_wcs_wcsprm(const sk_wcs *w);

#ifdef __cplusplus
}
#endif
#endif
