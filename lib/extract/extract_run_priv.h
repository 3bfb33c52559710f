/* extract_run_priv.h: the steps of the extraction of one image shared by
 * its file-only mode (extract_run.c) and its database mode
 * (extract_db_mode.c); internal. */
#ifndef SK_EXTRACT_RUN_PRIV_H
#define SK_EXTRACT_RUN_PRIV_H

#include "skystack/calib.h"
#include "skystack/extract.h"
#include "skystack/provenance.h"
#include "calib/calib_internal.h"

/* Paths of the products of one image under one provenance. */
typedef struct extract_products {
    char src[4200], bkg[4200], reg[4200];
    char psf[4200], head[4200];
    char tpv[4200];               /* with request.tpv_head: the solved WCS as
                                     TPV ("" otherwise) */
} extract_products;

/* One image being extracted: the request, its settings, the provenance
 * and the product paths. */
typedef struct extract_job {
    const sk_extract_request *rq;
    const sk_extract_settings *S;
    sk_prov *prov;                /* the extraction provenance */
    extract_products P;
} extract_job;

/* What the extraction of the pixels gives; free with extract_made_clear. */
typedef struct extract_made {
    sk_image *img;
    sk_image *det_img;            /* dual-image mode: the detection image */
    sk_extract_result *res;
    sk_calib *cal;
} extract_made;

/* Every file that shapes the products of one image: the image, the
 * weight (role weight, variance or rms), the mask, the reference
 * catalogues; each md5 computed once. */
typedef struct extract_inputs {
    sk_input_file *in;
    char (*md5)[33];
    int n;                        /* all of them: the source list and WCS */
    int npixels;                  /* the first npixels: image, weight, mask
                                     (the background and PSF) */
    struct sk_task *md5_task;     /* the md5s still being computed (see
                                     extract_inputs_md5) */
    int md5_status;               /* and its status once joined */
} extract_inputs;

/* The inputs of an image, each md5 computed. With `defer` (and more than
 * one thread) the md5s of the image, weight and mask files are computed
 * on a thread beside the extraction: read X->in[i].md5 only after
 * extract_inputs_md5. */
int extract_inputs_of(const extract_job *J, const char *image_path, const char *image_id,
                      int defer, extract_inputs *X);
/* Wait for the md5s of X; the status of computing them. */
int extract_inputs_md5(extract_inputs *X);
void extract_inputs_clear(extract_inputs *X);

/* The extraction provenance of an image of provenance `up` (NULL: none). */
int extract_make_prov(const sk_extract_settings *S, const sk_prov *up, sk_prov **out);
/* A region file for an existing source list when the request asks for one. */
int extract_ensure_regions(const extract_job *J);
/* The solved WCS of the .head product also as TPV, with its sidecar naming
 * the inputs in[0..nin-1], when the request asks for it and it is not
 * there yet. */
int extract_ensure_tpv_head(const extract_job *J, const sk_input_file *in, int nin);
/* What the request adds to the provenance: the HDUs named for the noise and
 * the mask (parameters weight_hdu, mask_hdu); in dual-image mode the
 * detection image, by its content (parameter detection.md5, from the
 * input of role detection in X) and by its own provenance (an upstream)
 * when it has a sidecar. */
int extract_add_request_prov(const extract_job *J, const extract_inputs *X, sk_prov **prov);
/* Read the image (X->in[0]), extract, calibrate and write every product
 * with its sidecar naming the inputs X; `gain_fallback` (> 0) is used
 * when neither the settings nor the header give a gain. Products written
 * on a failure are removed. */
int extract_make_products(const extract_job *J, extract_inputs *X, double gain_fallback,
                          extract_made *M);
void extract_made_clear(extract_made *M);
/* Remove every product of P and its sidecar. */
void extract_remove_products(const extract_products *P);
/* The outcome of the job: its provenance and the products that exist. */
void extract_fill_outcome(const extract_job *J, int reused, sk_extract_outcome *out);

/* The database mode (extract_db_mode.c). */
int extract_in_database(extract_job *J, sk_extract_outcome *out);

#endif
