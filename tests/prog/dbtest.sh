# dbtest.sh: a private PostgreSQL cluster for one program test file, sourced
# after lib.sh. start_test_db creates and starts it (skydb start, from a
# copy of the run's template cluster: seed_test_cluster in lib.sh; as
# `start_test_db fresh`, made by skydb start itself) in a fresh
# world-traversable folder under SK_DB_TMP (tests/run-tests) or /tmp (as root the cluster runs as the
# postgres user, which must reach it even when the checkout is under a
# private home), points SKYSTACK_DB_DIR and SKYSTACK_DATA there, and stops
# and removes it when the test exits, whether it passes or not.
DB_WORK=
stop_test_db() {
    if [ -n "$DB_WORK" ] && [ -d "$DB_WORK" ]; then
        skydb -q stop >/dev/null 2>&1
        stop_leftover_postmaster "$DB_WORK/db"
        rm -rf "$DB_WORK"
    fi
    DB_WORK=
}
start_test_db() {
    if ! command -v "${SK_PG_BINDIR:-/usr/lib/postgresql/15/bin}/initdb" >/dev/null 2>&1 &&
        ! command -v initdb >/dev/null 2>&1; then
        # a real TAP skip of the whole file; under CI=true a failure
        # (and tests/exec-test turns any skip into one there too)
        if [ "${CI:-}" = true ]; then
            echo "Bail out! PostgreSQL server programs (initdb) not found, and CI=true does not skip"
            exit 1
        fi
        if [ -n "${T_PLAN:-}" ]; then # planned already: the rest skipped
            skip $((T_PLAN - T_N)) "PostgreSQL server programs (initdb) not found"
            done_testing
            exit $?
        fi
        echo "1..0 # SKIP PostgreSQL server programs (initdb) not found"
        exit 0
    fi
    DB_WORK=$(mktemp -d "${SK_DB_TMP:-/tmp}/skdbtest-XXXXXX")
    chmod 755 "$DB_WORK"
    trap stop_test_db EXIT
    trap 'exit 1' INT TERM HUP
    unset SKYSTACK_DB
    export SKYSTACK_DB_DIR="$DB_WORK/db" SKYSTACK_DATA="$DB_WORK/data"
    [ "${1:-}" = fresh ] || seed_test_cluster "$SKYSTACK_DB_DIR"
    if ! skydb -q start 2>"$DB_WORK/start.err"; then
        echo "Bail out! skydb start failed: $(cat "$DB_WORK/start.err")"
        exit 1
    fi
}
# sql "STATEMENT": run it on the test database, unaligned output, no headers.
sql() {
    test_psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}
