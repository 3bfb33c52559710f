/* lifecycle.h: the life of data after it is made (skybad(1), skydb(1)):
 * images, coadds, extractions and references marked bad and unmarked,
 * with a reason, by whom and when; what used an image; the claims of the
 * workers making products; and the consistency check of the database
 * against the data root (skydb fsck).
 *
 * Marking one thing bad marks nothing else: a coadd made from a bad image
 * stays good, but its references are no longer loaded (refset(1)) and the
 * next refmake(1) for their place replaces them. */
#ifndef SKYSTACK_LIFECYCLE_H
#define SKYSTACK_LIFECYCLE_H

#include <jansson.h>
#include "db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What can be marked bad. */
enum sk_bad_kind { SK_BAD_IMAGE, SK_BAD_COADD, SK_BAD_EXTRACTION, SK_BAD_REFERENCE };

/* "image", "coadd", "extraction" or "reference" (also "ref") as enum
 * sk_bad_kind: SK_EINPUT naming `option` otherwise. */
int sk_bad_kind_from_name(const char *option, const char *name, int *kind);
const char *sk_bad_kind_name(int kind);

/* Who marks: `given` (--by) when set, else $SKYSTACK_USER, else the login
 * name, else $USER, else "unknown". */
const char *sk_bad_marker(const char *given);

/* Mark (mark 1, with a reason) or unmark (mark 0; reason optional) object
 * `id` of `kind` (an image: a science image; a coadd: a coadd image; an
 * extraction: its source list id; a reference: a refs id), by `who`, now;
 * the change is kept in the history. SK_ENOTFOUND when there is no such
 * object, SK_EINPUT for a missing reason or an image of the other type.
 * *changed = 0 when it was already in that state (nothing written). */
int sk_bad_mark(sk_db *db, int kind, long long id, int mark, const char *reason, const char *who,
                int *changed);

/* What is marked bad now (kind < 0: every kind): an array of
 * {kind, id, reason, by, at}, by kind and id. */
int sk_bad_list(sk_db *db, int kind, json_t **out);

/* The marks and unmarks of one object, oldest first: an array of
 * {action, reason, by, at}. */
int sk_bad_history(sk_db *db, int kind, long long id, json_t **out);

/* What used image `image_id` (a science image or a coadd): the coadds
 * made from it ({coadd_id, filepath, is_bad, pending}) and the references
 * of those coadds ({ref_id, coadd_id, place, filter, loadable, trouble}),
 * as {"coadds": [...], "references": [...]}. */
int sk_bad_users(sk_db *db, long long image_id, json_t **out);

/* ---- claims ----------------------------------------------------------- */

/* A worker's claim on a product: a session advisory lock on its name, held
 * on `db` (outside any transaction) until released or the connection ends,
 * and a claims row naming the worker and the files it may leave (relative
 * to the data root). Nothing else is held while the product is computed. */
typedef struct sk_claim sk_claim;

/* Wait for and take the claim `name`; a claims row left by a dead worker
 * is taken over. Must be called outside a transaction. */
int sk_claim_take(sk_db *db, const char *name, const char *const *relpaths, int npaths,
                  sk_claim **out);
/* Delete the claims row and release the lock; frees c (NULL: no-op). */
int sk_claim_release(sk_db *db, sk_claim *c);

/* ---- the consistency check ------------------------------------------ */

typedef struct sk_fsck_opts {
    const char *data_root;
    int repair;           /* fix what is safe (see skydb(1)) */
    int checksums;        /* also compare every file's md5 with its row */
    int threads;          /* md5 threads (>= 1) */
    /* called for each finding and repair: kind is one of orphan-file,
     * temporary-file, missing-file, checksum, dead-claim, pending-coadd,
     * and `repaired` says whether it was fixed */
    void (*report)(void *ctx, const char *kind, const char *what, int repaired);
    void *ctx;
} sk_fsck_opts;

typedef struct sk_fsck_counts {
    long long rows, files;            /* rows with a file, files under the root */
    long long orphan_files, temporary_files, missing_files, checksum_mismatches;
    long long dead_claims, pending_coadds;
    long long repaired;
} sk_fsck_counts;

/* Compare the rows with a filepath (images, source_lists, psfs,
 * backgrounds, world_coordinates) and the files under the data root
 * (products and their sidecars); the claims of dead workers; coadds left
 * pending without a live claim. Files a live claim names are left alone. */
int sk_fsck(sk_db *db, const sk_fsck_opts *o, sk_fsck_counts *out);

#ifdef __cplusplus
}
#endif
#endif
