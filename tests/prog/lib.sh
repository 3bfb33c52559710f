# lib.sh: helpers for the program tests (tests/prog/*.t), sourced by each.
# Emits TAP. Every file declares up front how many tests it runs
# (`plan N`, printed at once as the TAP plan), so that a file which stops
# early fails (prove: "Bad plan"); `done_testing` at the end checks the
# count too and sets the exit status. A test that cannot run here is a
# real TAP skip (`skip N REASON`), never a comment; with CI=true a skip is
# a failure (tests/exec-test).
set -u
T_N=0
T_FAILED=0
T_PLAN=
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/skprog-XXXXXX")
SRC=${SK_SRCDIR:-$(pwd)}
REAL=$SRC/tests/data/real

ok() { # ok STATUS DESCRIPTION
    T_N=$((T_N + 1))
    if [ "$1" -eq 0 ]; then echo "ok $T_N - $2"
    else echo "not ok $T_N - $2"; T_FAILED=$((T_FAILED + 1)); fi
}
run_ok() { # run_ok DESCRIPTION CMD... : passes when CMD exits 0
    d=$1; shift
    if "$@" >"$T_TMP/out" 2>"$T_TMP/err"; then ok 0 "$d"
    else ok 1 "$d"; sed 's/^/#   /' "$T_TMP/err" | head -20; fi
}
exit_is() { # exit_is CODE DESCRIPTION CMD...
    want=$1; d=$2; shift 2
    "$@" >"$T_TMP/out" 2>"$T_TMP/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok 0 "$d"
    else ok 1 "$d"; echo "#   exit $got, want $want"; sed 's/^/#   /' "$T_TMP/err" | head -20; fi
}
is() { # is GOT WANT DESCRIPTION
    if [ "$1" = "$2" ]; then ok 0 "$3"
    else ok 1 "$3"; echo "#   got '$1', want '$2'"; fi
}
like() { # like TEXT REGEX DESCRIPTION
    if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"
    else ok 1 "$3"; echo "#   '$1' does not match /$2/"; fi
}
stop_leftover_postmaster() { # stop_leftover_postmaster PGDATA
    # A server that `skydb stop` left running (its pid is the first line of
    # PGDATA/postmaster.pid) is shut down at once (SIGQUIT), so that removing
    # the folder leaves no server behind.
    [ -f "$1/postmaster.pid" ] || return 0
    pid=$(head -1 "$1/postmaster.pid")
    case $pid in '' | *[!0-9]*) return 0 ;; esac
    kill -QUIT "$pid" 2>/dev/null || return 0
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
}

seed_test_cluster() { # seed_test_cluster DIR: DIR (absent) a ready private cluster
    # When tests/run-tests names a template folder (SK_DB_TEMPLATE), the
    # first test file to need a cluster makes one there with `skydb start`
    # and stops it; every test file then starts from a copy of it (what
    # `skydb start` would have made: initialised, database created, schema
    # migrated) instead of running initdb anew. The copy's socket is in its
    # own folder, and as a throwaway test cluster it skips fsync. Without a
    # template, or when it cannot be made, DIR is left absent for `skydb
    # start` to create.
    [ -n "${SK_DB_TEMPLATE:-}" ] && [ -d "$SK_DB_TEMPLATE" ] && [ ! -e "$1" ] || return 0
    (
        flock 9 || exit 1
        [ -f "$SK_DB_TEMPLATE/ready" ] && exit 0
        rm -rf "$SK_DB_TEMPLATE/db"
        export SKYSTACK_DB_DIR="$SK_DB_TEMPLATE/db" SKYSTACK_DATA="$SK_DB_TEMPLATE/data"
        SKYSTACK_CONFIG= skydb -q start >/dev/null 2>&1 &&
            SKYSTACK_CONFIG= skydb -q stop >/dev/null 2>&1 &&
            rm -f "$SKYSTACK_DB_DIR/server.log" && : >"$SK_DB_TEMPLATE/ready"
    ) 9>"$SK_DB_TEMPLATE/lock"
    [ -f "$SK_DB_TEMPLATE/ready" ] && cp -a "$SK_DB_TEMPLATE/db" "$1" || return 0
    # later settings win over the template's
    printf "\n# test copy\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" \
        "$1" >>"$1/postgresql.conf"
}

test_psql() { # test_psql PSQL-ARGS...: psql on the test's private cluster
    # (what `skydb psql -- PSQL-ARGS` runs, without a program of the build,
    # sanitised in check-sanitize, started before it for every query)
    PGHOST=$SKYSTACK_DB_DIR PGUSER=skystack PGDATABASE=skystack \
        "${SK_PG_BINDIR:-/usr/lib/postgresql/15/bin}/psql" "$@"
}

plan() { # plan N: the number of tests this file runs, before the first
    T_PLAN=$1
    echo "1..$T_PLAN"
}
skip() { # skip N REASON: N tests that cannot run here, as TAP skips
    k=0
    while [ "$k" -lt "$1" ]; do
        T_N=$((T_N + 1))
        echo "ok $T_N # SKIP $2"
        k=$((k + 1))
    done
}

done_testing() {
    rm -rf "$T_TMP"
    if [ -z "$T_PLAN" ]; then # a file that could stop early unnoticed
        echo "1..$T_N"
        echo "# no plan declared: declare it first with \`plan $T_N\`"
        return 1
    fi
    if [ "$T_N" -ne "$T_PLAN" ]; then
        echo "# planned $T_PLAN tests, ran $T_N"
        return 1
    fi
    [ "$T_FAILED" -eq 0 ]
}
