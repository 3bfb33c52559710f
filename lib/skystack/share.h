/* share.h: where skystack's data files live (defaults.json, sql/, demo):
 * $SKYSTACK_SHARE, else next to the executable (installed or build tree),
 * else the configured $(datadir)/skystack. */
#ifndef SKYSTACK_SHARE_H
#define SKYSTACK_SHARE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The share/skystack directory in use (never NULL). */
const char *sk_share_dir(void);

/* Path of `rel` (e.g. "defaults.json", "sql") under the share directory;
 * also looks in the source-tree sibling (share/sql beside share/skystack).
 * SK_ENOTFOUND with a message naming the places tried when absent. */
int sk_share_path(const char *rel, char *out, size_t outsz);

/* Version string of the toolkit ("MAJOR.MINOR.PATCH"). */
const char *sk_version(void);

#ifdef __cplusplus
}
#endif
#endif
