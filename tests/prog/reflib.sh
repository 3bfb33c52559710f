# reflib.sh: a private PostgreSQL cluster and data root for the reference
# tests (tests/prog/ref*.t), sourced after lib.sh. The cluster lives in a
# fresh world-traversable directory under SK_DB_TMP (tests/run-tests) or
# /tmp (PostgreSQL runs as an
# unprivileged user when the tests run as root, and its socket path must
# stay short) and is stopped and removed on exit.
REF_ROOT=$(mktemp -d "${SK_DB_TMP:-/tmp}/skref-XXXXXX")
chmod 755 "$REF_ROOT"
export SKYSTACK_DB_DIR="$REF_ROOT/db" SKYSTACK_DATA="$REF_ROOT/data"
unset SKYSTACK_DB
ref_cleanup() {
    skydb stop >/dev/null 2>&1
    stop_leftover_postmaster "$SKYSTACK_DB_DIR"
    rm -rf "$REF_ROOT" "$T_TMP"
}
trap ref_cleanup EXIT
trap 'exit 1' INT TERM HUP

# Start the cluster (created on first use, from the run's template when
# there is one: seed_test_cluster in lib.sh); bail out of the whole test
# file when PostgreSQL cannot run here.
ref_db_start() {
    seed_test_cluster "$SKYSTACK_DB_DIR"
    if ! skydb start >"$T_TMP/skydb.out" 2>"$T_TMP/skydb.err"; then
        echo "Bail out! skydb start failed: $(tr '\n' ' ' <"$T_TMP/skydb.err")"
        exit 1
    fi
}

# One SQL statement or a file through psql; unaligned, tuples only.
sql() { test_psql -qtAX -v ON_ERROR_STOP=1 -c "$1" 2>>"$T_TMP/sql.err"; }
sql_file() { test_psql -qtAX -v ON_ERROR_STOP=1 -f "$1" >/dev/null 2>>"$T_TMP/sql.err"; }
