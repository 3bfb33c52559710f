/* db_internal.h: the library's own part of skystack/db.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_DB_INTERNAL_H
#define SK_DB_INTERNAL_H

#include "skystack/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The input-set hash that makes coadds unique per (provenance, inputs):
 * sha256 hex of the sorted, de-duplicated ids, written in decimal and
 * joined by ','. `ids` is not modified. */
int sk_db_input_set_hash(const long long *ids, int n, char out[65]);

/* Insert a provenance, its upstreams (recursively) and their code
 * versions when absent; existing rows are left alone. Call inside or
 * outside a transaction. */
int sk_db_save_prov(sk_db *db, const sk_prov *p);

/* initdb (trust authentication on the socket only, superuser "skystack"),
 * postgresql.conf with listen_addresses = '' and the socket in `dir`,
 * database "skystack". As root the cluster belongs to the service user
 * (db.service_user, default "postgres"), whose programs run with dropped
 * privileges; every directory above `dir` must then be traversable for
 * that user, else SK_EINPUT naming the directory and the remedy. Nothing
 * happens when the cluster exists. */
int sk_cluster_init(const sk_config *cfg, const char *dir);

/* The fault-test hook, for tests/prog/db_faults.t and bench/stress-kill
 * only: when the environment variable SKYSTACK_TEST_HOOK is
 * "POINT=kill", the process kills itself with SIGKILL on reaching the
 * named point; "POINT=sleep:SECONDS" makes it sleep there (so that a test
 * can terminate its database backend meanwhile). Points: coadd-files
 * (coadd files written, no row yet), coadd-tx (inside the registration
 * transaction), coadd-pending (registered pending, extraction not run),
 * coadd-extracted (extraction registered, coadd still pending), ref-tx
 * (inside the reference's transaction), refmake-claimed (the place
 * claimed), extract-claimed (an extraction claimed, its computation about
 * to start), extract-files (its products written, no row yet), extract-tx
 * (inside its registration transaction). Unset, it does nothing. */
void sk_db_test_point(const char *point);

#ifdef __cplusplus
}
#endif
#endif
