/* coadd_pipeline_priv.h: the state the coadd pipeline (coadd_pipeline.c)
 * shares with the resolution of its inputs (coadd_inputs.c); internal. */
#ifndef SK_COADD_PIPELINE_PRIV_H
#define SK_COADD_PIPELINE_PRIV_H

#include <jansson.h>
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/extract.h"
#include "skystack/provenance.h"
#include "skystack/wcs.h"

/* One input image with everything the coadd needs from it. */
typedef struct item {
    char arg[4096];          /* as given */
    char path[4096];         /* the image file */
    char key[4096];          /* identity for duplicates: id or real path */
    long long id;            /* database id (0 without a database) */
    sk_coadd_input in;
    sk_wcs *wcs;
    sk_prov *pre, *ext;      /* preprocessing and extraction provenances */
    char bkg[4096], psf[4096], weight[4096], mask[4096];
    long long src_id, psf_id, bkg_id, wcs_id, zp_id;
    double mjd, end_mjd, exptime, zp, gain;
    char filter[72], instrument[72], telescope[72], section[72], target[72], project[72];
    char md5[33];
    /* without a database, the other files that shape the coadd: the
     * solved WCS and the source list whose MAGZERO is the zero point
     * (extract's products beside the image, "" when not used), and the
     * md5 of each; a zero point of --zero-points as text */
    char head[4096], srclist[4096];
    char weight_md5[33], mask_md5[33], bkg_md5[33], psf_md5[33], head_md5[33], srclist_md5[33];
    char zp_text[32], zp_md5[33];
    int given;               /* COADD_GIVEN_* bits: the files named on the command line */
} item;

enum {
    COADD_GIVEN_WEIGHT = 1,
    COADD_GIVEN_MASK = 2,
    COADD_GIVEN_BACKGROUND = 4,
    COADD_GIVEN_PSF = 8,
    COADD_GIVEN_ZERO_POINT = 16
};

/* The coadd pipeline's configuration, read once at its start. */
typedef struct settings {
    sk_coadd_params p;
    char method_name[64];     /* coaddition.method as configured */
    char grid[16];
    char alignment[32];
    double center_ra, center_dec, scale;
    long width, height;
    sk_coaddx_params x;       /* zogy, psfmatch, background matching, artifact
                                 masks (coaddx.h) */
    double target_fwhm_arcsec;
    int rescale_weights;      /* coaddition.rescale_weights: weights to the
                                 inputs' measured noise (weight_rescale.c) */
    json_t *coaddition_critical; /* the coaddition provenance's parameters */
    json_t *extraction_critical; /* those of the inputs' extraction provenance */
    char data_root[4096];     /* with a database */
    int extraction;           /* 1: extract the coadd */
    int compress;             /* storage.compress: a tile-compressed coadd (.fits.fz) */
    int quicklook;            /* storage.quicklook: its quick-look PNG beside it */
    sk_extract_settings extract; /* its settings (when extraction is 1) */
} settings;

/* Resolve input k of the request: its file, metadata, WCS, provenances
 * and extraction products, from the files beside it (no database) or from
 * the database. SK_ENOTFOUND with it->ext set: an input without the
 * products that a selection may leave out. */
int coadd_resolve_file(const sk_coadd_request *rq, const settings *S, int k, item *it);
int coadd_resolve_db(const sk_coadd_request *rq, const settings *S, int k, item *it);
void coadd_item_free(item *it);

/* The md5 of every input file that has none yet (without a database also
 * of its weight, mask, background, PSF, solved WCS and source list), on up
 * to `threads` threads. */
int coadd_md5_inputs(item *it, int n, int threads);

/* The identity of the input set without a database: the sha256 of the
 * sorted input identities, each the image's md5 followed by those of the
 * files and zero points given on the command line (none given: the md5
 * alone), comma-separated; hex into set_hash. */
int coadd_file_set_hash(const item *it, int n, char set_hash[65]);

/* Every file that shapes the coadd, as its sidecars list them: per input
 * the image (role image, with its database id), and without a database
 * its weight, mask, background, PSF, solved WCS (role wcs), the source
 * list of its zero point (role zero_point) or the zero point given (role
 * zero_point, the value as id, the md5 of that text). `idtext` holds n
 * ids. *files is malloc'd. */
int coadd_input_files(const item *it, int n, char (*idtext)[32], sk_input_file **files, int *nfiles);

#endif
