/* claim_rows.c: a worker's claim on a product: a session advisory lock on the product's name plus a claims row naming the worker and the files it may leave behind (see skystack/lifecycle.h), and the fault-test hook at the steps of a claimed product. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/lifecycle.h"
#include "db_internal.h"
#include "db_priv.h"
#include "lifecycle_priv.h"

struct sk_claim {
    char name[600];
    char key[32];
};

void sk_db_lock_key(const char *name, char key[32])
{
    unsigned char digest[32];
    sk_sha256(name, strlen(name), digest);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | digest[i];
    snprintf(key, 32, "%lld", (long long)(int64_t)u);
}

/* The paths as a SQL text array literal: {"a","b"} with quotes escaped. */
static char *paths_literal(const char *const *relpaths, int n)
{
    size_t cap = 3;
    for (int i = 0; i < n; i++)
        cap += 2 * strlen(relpaths[i]) + 3;
    char *s = malloc(cap), *o = s;
    if (!s)
        return NULL;
    *o++ = '{';
    for (int i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        *o++ = '"';
        for (const char *c = relpaths[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *o++ = '\\';
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return s;
}

int sk_claim_take(sk_db *db, const char *name, const char *const *relpaths, int npaths,
                  sk_claim **out)
{
    *out = NULL;
    if (db->in_transaction)
        return sk_error(SK_EIO, "claim '%s': taken inside a transaction", name);
    sk_claim *c = calloc(1, sizeof *c);
    char *paths = paths_literal(relpaths, npaths);
    if (!c || !paths) {
        free(c);
        free(paths);
        return sk_error(SK_EIO, "out of memory");
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    sk_db_lock_key(name, c->key);
    char host[256] = "", pid[32];
    gethostname(host, sizeof host - 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    const char *pl[1] = {c->key};
    int st = sk_db_exec(db, "waiting for the claim", "SELECT pg_advisory_lock($1::bigint)", 1, pl, NULL);
    /* holding the lock, a row left under this name is a dead worker's */
    const char *p[5] = {c->name, c->key, host, pid, paths};
    st = st ? st
            : sk_db_exec(db, "recording the claim",
                         "INSERT INTO claims (name, lock_key, host, pid, backend_pid, paths) "
                         "VALUES ($1, $2::bigint, $3, $4::integer, pg_backend_pid(), $5::text[]) "
                         "ON CONFLICT (name) DO UPDATE SET lock_key = EXCLUDED.lock_key, "
                         "host = EXCLUDED.host, pid = EXCLUDED.pid, backend_pid = "
                         "EXCLUDED.backend_pid, paths = EXCLUDED.paths, started_at = now()",
                         5, p, NULL);
    free(paths);
    if (st) {
        sk_claim_release(db, c);
        return sk_error_context("claim '%s'", name);
    }
    *out = c;
    return SK_OK;
}

int sk_claim_release(sk_db *db, sk_claim *c)
{
    if (!c)
        return SK_OK;
    const char *p[1] = {c->name}, *pl[1] = {c->key};
    int st = SK_OK;
    if (sk_db_is_connected(db)) {
        st = sk_db_exec(db, "ending the claim", "DELETE FROM claims WHERE name = $1", 1, p, NULL);
        PGresult *r = PQexecParams(db->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, pl,
                                   NULL, NULL, 0);
        PQclear(r);
    }
    free(c);
    return st;
}

void sk_db_test_point(const char *point)
{
    const char *hook = getenv("SKYSTACK_TEST_HOOK");
    size_t n = strlen(point);
    if (!hook || strncmp(hook, point, n) || hook[n] != '=')
        return;
    const char *action = hook + n + 1;
    if (!strcmp(action, "kill"))
        raise(SIGKILL);
    else if (!strncmp(action, "sleep:", 6))
        sleep((unsigned)atoi(action + 6));
}
