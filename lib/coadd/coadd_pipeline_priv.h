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
} item;

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
    json_t *coaddition_critical; /* the coaddition provenance's parameters */
    json_t *extraction_critical; /* those of the inputs' extraction provenance */
    char data_root[4096];     /* with a database */
    int extraction;           /* 1: extract the coadd */
    sk_extract_settings extract; /* its settings (when extraction is 1) */
} settings;

/* Resolve input k of the request: its file, metadata, WCS, provenances
 * and extraction products, from the files beside it (no database) or from
 * the database. SK_ENOTFOUND with it->ext set: an input without the
 * products that a selection may leave out. */
int coadd_resolve_file(const sk_coadd_request *rq, const settings *S, int k, item *it);
int coadd_resolve_db(const sk_coadd_request *rq, const settings *S, int k, item *it);
void coadd_item_free(item *it);

/* The md5 of every input file that has none yet, on up to `threads` threads. */
int coadd_md5_inputs(item *it, int n, int threads);

#endif
