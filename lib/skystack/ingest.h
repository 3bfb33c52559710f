/* ingest.h: registering images (imingest): reading instrument, filter,
 * time, exposure, gain, saturation and section from FITS headers through
 * the per-instrument keyword maps of preprocessing.instruments, the
 * footprint from the full WCS, storing the image in the data root in the
 * skystack layout (SCI/WGT/FLG) and recording it under a preprocessing
 * provenance. */
#ifndef SKYSTACK_INGEST_H
#define SKYSTACK_INGEST_H

#include "config.h"
#include "db.h"
#include "provenance.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_ingest_opts {
    const char *instrument;  /* keyword map name; NULL: preprocessing.instrument */
    const char *weight_path; /* separate weight/variance/rms file; NULL: the
                                instrument's weight_rename rule, else in-file */
    const char *mask_path;   /* separate data-quality mask; NULL: mask_rename rule */
    const char *weight_hdu;  /* HDU of the noise plane (in weight_path, else in
                                the file; NULL: found by name) */
    const char *mask_hdu;    /* HDU of the mask, likewise */
    const char *hdu;         /* only this HDU (name or 0-based number); NULL:
                                the map's science_hdu, else every 2-D image HDU
                                (only SCI when the file has one) */
    const char *filter;      /* overrides of header values (NULL: from header) */
    const char *target;
    const char *section;
    const char *project;
    int link;                /* -1: preprocessing.link; 1: symbolic link (only
                                for files already in the skystack layout) */
} sk_ingest_opts;

/* One registered image. */
typedef struct sk_ingested {
    long long image_id;
    int existed;             /* 1: already registered (no row written now) */
    int restored;            /* 1: registered, but its file in the data root was
                                missing or damaged: written again */
    char *relpath;           /* path relative to the data root (owned) */
    char *path;              /* absolute path in the data root (owned) */
} sk_ingested;

/* Ingest every science HDU of `path` (all or nothing: a refusal or a
 * failure leaves no rows and no files). *out receives *nout results to
 * free with sk_ingested_free. Refusals name the file (and HDU) and what is
 * missing: no usable WCS, no time (MJD / DATE-OBS), no filter. */
int sk_ingest_file(sk_db *db, const sk_config *cfg, const char *path, const sk_ingest_opts *opts,
                   sk_ingested **out, int *nout);
void sk_ingested_free(sk_ingested *list, int n);

/* 1 when `path` is the weight or mask companion of a science file that
 * exists, by the instrument's weight_rename / mask_rename rules (so that
 * imingest given a whole folder of DECam files skips the oow/ood ones). */
int sk_ingest_is_companion(const sk_config *cfg, const char *instrument, const char *path);

#ifdef __cplusplus
}
#endif
#endif
