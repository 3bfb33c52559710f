/* astrom_priv.h: what the astrometry files share: planar similarity
 * transforms, the pattern matcher, nearest-neighbour matching and the
 * TAN + SIP least-squares fit. */
#ifndef SK_ASTROM_PRIV_H
#define SK_ASTROM_PRIV_H

#include "skystack/header.h"
#include "skystack/wcs.h"

/* X = a x - b y + tx, Y = b x + a y + ty: scale hypot(a, b), rotation
 * atan2(b, a). */
typedef struct astrom_sim {
    double a, b, tx, ty;
} astrom_sim;

static inline void astrom_sim_apply(const astrom_sim *t, double x, double y, double *X, double *Y)
    __attribute__((unused));
static inline void astrom_sim_apply(const astrom_sim *t, double x, double y, double *X, double *Y)
{
    *X = t->a * x - t->b * y + t->tx;
    *Y = t->b * x + t->a * y + t->ty;
}

/* Least-squares similarity mapping (x, y) onto (X, Y) over the n pairs
 * with keep[k] (keep may be NULL); 0 on success, -1 when degenerate. */
int astrom_sim_fit(const double *x, const double *y, const double *X, const double *Y, long n,
                   const char *keep, astrom_sim *t);

/* Triangle pattern matching of points s (ns, brightest first) against
 * points r (nr, brightest first) in the same pixel frame up to a
 * similarity whose rotation is within max_rot_deg, scale within
 * max_scale of 1 and displacement of (cx, cy) within max_shift_px: the
 * transform s -> r that brings the most points of s within tol_px of a
 * point of r. *support receives that count. 0 on success, -1 when no
 * pair of triangles agrees. */
int astrom_pattern_match(const double *sx, const double *sy, long ns, const double *rx,
                         const double *ry, long nr, double cx, double cy, double max_rot_deg,
                         double max_scale, double max_shift_px, double tol_px, astrom_sim *t,
                         long *support);

/* One-to-one nearest neighbours: for each point of s the nearest point of
 * r within radius (each r used once, by its nearest claimant). Fills
 * src_idx/ref_idx (capacity ns) and returns the number of pairs, or -1
 * when out of memory. */
long astrom_nn_match(const double *sx, const double *sy, long ns, const double *rx,
                     const double *ry, long nr, double radius, long *src_idx, long *ref_idx);

typedef struct astrom_fit_out {
    sk_header *header;    /* TAN or TAN-SIP cards */
    sk_wcs *wcs;
    double rms_arcsec;    /* quadratic mean of the per-axis rms of the kept */
    double rms_px;
    double rms1_deg, rms2_deg; /* per axis, tangent plane */
    long nkept;
} astrom_fit_out;

/* Fit TAN + SIP of `order` (1 = TAN with CD only) mapping the 0-based
 * pixel positions (x, y) onto (ra, dec) for the n pairs with keep[k] set,
 * weighted by wt (NULL: equal weights),
 * CRPIX at the centre of a width x height image, starting from the
 * tangent point that `guess` gives there. With clip_sigma > 0 the pairs
 * further than clip_sigma robust sigmas are cleared from keep and the fit
 * redone until stable. SK_ENOTFOUND when fewer pairs than terms remain. */
int astrom_fit_tansip(const double *x, const double *y, const double *ra, const double *dec,
                      const double *wt, long n, char *keep, int order, long width, long height,
                      const sk_wcs *guess, double clip_sigma, astrom_fit_out *out);

#endif
