/* lifecycle_priv.h: the advisory lock key of a name, shared by the
 * transaction locks and the claims of lib/db (not installed). */
#ifndef SK_LIFECYCLE_PRIV_H
#define SK_LIFECYCLE_PRIV_H

/* The 64-bit advisory lock key of `name` (the first 8 bytes of its
 * SHA-256), as decimal text. */
void sk_db_lock_key(const char *name, char key[32]);

#endif
