/* storage.h: the data root (skystack(7), FILES) and the layout of the files in it:
 * where it is, how a product's relative path is made (instrument, date,
 * section, filter, type and a provenance prefix), and turning a relative
 * path from the database into a path that cannot escape the root. */
#ifndef SKYSTACK_STORAGE_H
#define SKYSTACK_STORAGE_H

#include <stddef.h>
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of provenance-id characters in a product's directory. */
#define SK_STORAGE_PROV_PREFIX 8

/* The data root: $SKYSTACK_DATA when set and not empty, else storage.root,
 * else ~/.local/share/skystack/data. Relative settings are made absolute. */
int sk_storage_root(const sk_config *cfg, char *out, size_t outsz);

/* root + "/" + relpath, refusing (SK_EIO, naming the path) a relpath that
 * is empty, absolute, or has an empty, "." or ".." component. */
int sk_storage_resolve(const char *root, const char *relpath, char *out, size_t outsz);

/* A safe path component: characters outside [A-Za-z0-9._+-] become '_',
 * and "", "." or ".." become "_"; NULL gives "none". */
void sk_storage_component(const char *in, char *out, size_t outsz);

/* The relative directory of a product:
 * instrument/YYYY-MM-DD/section/filter/type/PROVPREFIX, the date being
 * the UTC calendar date of `mjd`, each part made safe. */
int sk_storage_dir(const char *instrument, double mjd, const char *section, const char *filter,
                   const char *type, const char *prov_id, char *out, size_t outsz);

/* UTC calendar date and time of an MJD ("2018-09-08T00:04:26.093") and
 * the MJD of an ISO date "YYYY-MM-DD[THH:MM[:SS[.fff]]]" (also with ' '
 * between date and time and an optional trailing 'Z'). SK_EINPUT when the
 * text is not such a date. */
int sk_mjd_to_iso(double mjd, char *out, size_t outsz);
int sk_iso_to_mjd(const char *iso, double *mjd);

#ifdef __cplusplus
}
#endif
#endif
