#!/bin/sh
# db_skydb.t: skydb and the schema: what a tool says when no database is
# running, the private cluster's life cycle, idempotent and concurrent
# migrations, every table of the data model, the constraints that carry its
# uniqueness invariants, and connection errors that never show passwords.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 65

# Before any cluster exists: status and a query fail with exit 3 and say
# which database was tried and how to start one.
DB_WORK=$(mktemp -d "${SK_DB_TMP:-/tmp}/skdbtest-XXXXXX")
chmod 755 "$DB_WORK"
trap stop_test_db EXIT
export SKYSTACK_DB_DIR="$DB_WORK/db" SKYSTACK_DATA="$DB_WORK/data"
unset SKYSTACK_DB
exit_is 3 "skydb status without a cluster exits 3" skydb status
like "$(cat "$T_TMP/out")" "state: absent" "status says the cluster is absent"
exit_is 3 "imquery without a database exits 3" imquery --filter r
like "$(cat "$T_TMP/err")" "$DB_WORK/db" "the message names the database tried"
like "$(cat "$T_TMP/err")" "skydb start" "the message names the command that starts one"
rm -rf "$DB_WORK"

start_test_db fresh
ok 0 "skydb start creates and starts the private cluster"
run_ok "skydb status on the running cluster" skydb status
like "$(cat "$T_TMP/out")" "state: running" "status says running"
# the schema version is the highest migration's number (numbers may skip)
nmig=$(ls "$SK_SRCDIR"/share/sql/[0-9]*.sql | sed 's|.*/||' | sort | tail -1 | cut -c1-4 | sed 's/^0*//')
like "$(cat "$T_TMP/out")" "schema: $nmig \(shipped: $nmig\)" "status reports the schema version"
is "$(stat -c %a "$SKYSTACK_DB_DIR")" "700" "the cluster folder is private (0700)"
ls "$SKYSTACK_DB_DIR"/.s.PGSQL.* >/dev/null 2>&1
ok $? "the server's Unix socket is in the cluster folder"
is "$(sql "SHOW listen_addresses")" "" "no TCP listening (listen_addresses is empty)"
run_ok "skydb start again is a no-op" skydb start

# Every table of the data model.
tables=$(sql "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'")
is "$tables" "backgrounds bad_marks claims coadd_components code_versions images provenance_upstreams provenances psfs refcats refs refset_provenances refsets schema_migrations source_lists world_coordinates zero_points" "every table of the data model exists"
is "$(sql "SELECT count(*) FROM pg_extension WHERE extname = 'q3c'")" "1" "the q3c extension is installed"
is "$(sql "SELECT count(*) FROM pg_indexes WHERE indexname = 'images_q3c'")" "1" "images has a q3c index"

# Idempotent migrations.
run_ok "skydb migrate on a current schema" skydb migrate
is "$(sql "SELECT count(*) FROM schema_migrations")" "$(ls "$SK_SRCDIR"/share/sql/[0-9]*.sql | wc -l | tr -d " ")" "each migration is recorded once"

# Concurrent migrations of a fresh database (through SKYSTACK_DB).
sql "CREATE DATABASE other" >/dev/null
OTHER="host=$SKYSTACK_DB_DIR dbname=other user=skystack"
pids=
for k in 1 2 3 4; do
    SKYSTACK_DB="$OTHER" skydb -q migrate >"$T_TMP/m$k.out" 2>"$T_TMP/m$k.err" &
    pids="$pids $!"
done
fails=0
for p in $pids; do wait "$p" || fails=$((fails + 1)); done
is "$fails" "0" "four concurrent skydb migrate all succeed"
cat "$T_TMP"/m*.err | sed 's/^/#   /' | head -10
is "$(SKYSTACK_DB="$OTHER" skydb psql -- -X -At -c 'SELECT count(*) FROM schema_migrations')" "$(ls "$SK_SRCDIR"/share/sql/[0-9]*.sql | wc -l | tr -d ' ')" \
    "and the migration was applied exactly once"
is "$(SKYSTACK_DB="$OTHER" skydb psql -- -X -At -c "SELECT count(*) FROM information_schema.tables WHERE table_name = 'images'")" "1" \
    "SKYSTACK_DB points every tool at that database"

# Constraints carry the invariants.
sql "INSERT INTO code_versions VALUES ('preprocessing', '1.0'), ('extraction', '1.0'), ('coaddition', '1.0'), ('referencing', '1.0');
INSERT INTO provenances (id, process, code_version) VALUES
  ('PREAAAAAAAAAAAAAAAAA', 'preprocessing', '1.0'), ('EXTAAAAAAAAAAAAAAAAA', 'extraction', '1.0'),
  ('COAAAAAAAAAAAAAAAAAA', 'coaddition', '1.0'), ('REFAAAAAAAAAAAAAAAAA', 'referencing', '1.0');" >/dev/null
cols="filepath, md5, provenance_id, type, original_md5, original_hdu, input_set_hash, instrument, filter, mjd, end_mjd, width, height, ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg"
geo="10, 10, 1, 0, 9.9, -0.1, 10.1, -0.1, 10.1, 0.1, 9.9, 0.1, 9.9, 10.1, -0.1, 0.1, 0.15"
img() { # img ID PATH TYPE ORIGMD5 INPUTHASH PROV
    sql "INSERT INTO images (id, $cols) VALUES ($1, '$2', repeat('0', 32), '$6', '$3', $4, '0', $5, 'cam', 'r', 60000, 60000.01, $geo)"
}
img 1 a/one.fits science "repeat('1', 32)" NULL PREAAAAAAAAAAAAAAAAA >/dev/null
run_ok "a science image row is accepted" true
img 2 a/two.fits science "repeat('1', 32)" NULL PREAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "the same original and HDU twice under one provenance is refused"
img 3 a/one.fits science "repeat('2', 32)" NULL PREAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "two images with one file path are refused"
img 4 ../escape.fits science "repeat('3', 32)" NULL PREAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "a file path leaving the data root is refused"
img 5 /abs.fits science "repeat('4', 32)" NULL PREAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "an absolute file path is refused"
img 6 c/coadd1.fits coadd NULL "repeat('a', 64)" COAAAAAAAAAAAAAAAAAA >/dev/null
ok $? "a coadd row is accepted"
img 7 c/coadd2.fits coadd NULL "repeat('a', 64)" COAAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "a second coadd of the same provenance and input set is refused"
img 8 c/coadd3.fits coadd NULL "repeat('b', 64)" COAAAAAAAAAAAAAAAAAA >/dev/null
ok $? "a coadd of another input set is accepted"
img 9 c/coadd4.fits coadd NULL NULL COAAAAAAAAAAAAAAAAAA >/dev/null 2>&1
ok $(( $? == 0 )) "a coadd without an input set hash is refused"

prod() { # prod TABLE ID IMAGE
    case $1 in
    source_lists|psfs|backgrounds) sql "INSERT INTO $1 (id, image_id, provenance_id, filepath, md5) VALUES ($2, $3, 'EXTAAAAAAAAAAAAAAAAA', 'p/$1$2', repeat('0', 32))" ;;
    world_coordinates) sql "INSERT INTO $1 (id, image_id, provenance_id, header) VALUES ($2, $3, 'EXTAAAAAAAAAAAAAAAAA', 'CTYPE1')" ;;
    zero_points) sql "INSERT INTO $1 (id, image_id, provenance_id, zp, dzp) VALUES ($2, $3, 'EXTAAAAAAAAAAAAAAAAA', 25, 0.01)" ;;
    esac
}
for t in source_lists psfs backgrounds world_coordinates zero_points; do
    prod $t 1 6 >/dev/null
    prod $t 2 6 >/dev/null 2>&1
    ok $(( $? == 0 )) "$t: a second row for the same image and provenance is refused"
done
sql "INSERT INTO refsets (id, name) VALUES (1, 'weekly')" >/dev/null
sql "INSERT INTO refsets (id, name) VALUES (2, 'weekly')" >/dev/null 2>&1
ok $(( $? == 0 )) "refset names are unique"
ref="INSERT INTO refs (image_id, provenance_id, source_list_id, psf_id, background_id, world_coordinates_id, zero_point_id, place, filter, ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec) VALUES (6, 'REFAAAAAAAAAAAAAAAAA', 1, 1, 1, 1, 1, 'T:F1/S1', 'r', 10, 0, 9.9, -0.1, 10.1, -0.1, 10.1, 0.1, 9.9, 0.1, 9.9, 10.1, -0.1, 0.1)"
sql "$ref" >/dev/null
ok $? "a reference is accepted"
sql "$ref" >/dev/null 2>&1
ok $(( $? == 0 )) "a second reference for the same place, filter and provenance is refused"
sql "UPDATE refs SET is_bad = true, bad_reason = 'test' WHERE place = 'T:F1/S1'" >/dev/null
sql "$ref" >/dev/null
ok $? "once the reference is marked bad, a new one may be made"
sql "INSERT INTO coadd_components VALUES (6, 1, 1, 1, 1, 1, 1)" >/dev/null
ok $? "coadd components link a coadd to an input's products"
sql "INSERT INTO coadd_components VALUES (6, 1, 1, 1, 1, 1, 1)" >/dev/null 2>&1
ok $(( $? == 0 )) "an input appears once per coadd"
sql "INSERT INTO source_lists (image_id, provenance_id, filepath, md5) VALUES (999, 'EXTAAAAAAAAAAAAAAAAA', 'p/x', repeat('0', 32))" >/dev/null 2>&1
ok $(( $? == 0 )) "products need an existing image (foreign key)"
is "$(sql "SELECT round(skystack_box_overlap(9.9, -0.1, 10.1, -0.1, 10.1, 0.1, 9.9, 0.1, 10.0, 10.4, -0.1, 0.1)::numeric, 6)")" "0.250000" \
    "box overlap: a quarter of the box is covered"
is "$(sql "SELECT round(skystack_box_overlap(359.9, -0.1, 0.1, -0.1, 0.1, 0.1, 359.9, 0.1, 359.95, 0.05, -0.1, 0.1)::numeric, 6)")" "1.000000" \
    "box overlap across RA = 0"

# An existing database upgrades: one migrated up to 0006, with a zero
# point in it, gains the star selection's columns (0007); the old row has
# them NULL, new rows are checked.
sql "CREATE DATABASE old" >/dev/null
OLD="host=$SKYSTACK_DB_DIR dbname=old user=skystack"
mkdir -p "$T_TMP/old/skystack" "$T_TMP/old/sql"
cp "$SK_SRCDIR/share/skystack/defaults.json" "$T_TMP/old/skystack/"
cp "$SK_SRCDIR"/share/sql/000[1-6]_*.sql "$T_TMP/old/sql/"
oldsql() { SKYSTACK_DB="$OLD" skydb psql -- -X -At -c "$1"; }
SKYSTACK_SHARE="$T_TMP/old/skystack" SKYSTACK_DB="$OLD" skydb -q migrate >/dev/null 2>"$T_TMP/old.err" &&
    oldsql "INSERT INTO code_versions VALUES ('preprocessing', '1.0'), ('extraction', '1.0');
        INSERT INTO provenances (id, process, code_version) VALUES ('PREAAAAAAAAAAAAAAAAA', 'preprocessing', '1.0'),
          ('EXTAAAAAAAAAAAAAAAAA', 'extraction', '1.0');
        INSERT INTO images (id, $cols) VALUES (1, 'a/one.fits', repeat('0', 32), 'PREAAAAAAAAAAAAAAAAA', 'science',
          repeat('1', 32), '0', NULL, 'cam', 'r', 60000, 60000.01, $geo);
        INSERT INTO zero_points (image_id, provenance_id, zp, dzp, num_stars, scatter)
          VALUES (1, 'EXTAAAAAAAAAAAAAAAAA', 25, 0.01, 30, 0.02)" >/dev/null 2>>"$T_TMP/old.err"
is "$? $(oldsql 'SELECT max(version) FROM schema_migrations')" "0 6" "a database migrated up to 0006 holds a zero point"
SKYSTACK_DB="$OLD" skydb -q migrate >/dev/null 2>>"$T_TMP/old.err"
is "$? $(oldsql 'SELECT max(version) FROM schema_migrations')" "0 7" "skydb migrate upgrades it to 0007"
is "$(oldsql "SELECT zp || ' ' || num_stars || ' ' || scatter || ' ' || (num_candidates IS NULL AND num_rejected_chi2 IS NULL
        AND num_rejected_aperture IS NULL AND num_rejected_neighbour IS NULL AND noise IS NULL) FROM zero_points")" "25 30 0.02 true" \
    "the old row keeps its values, the star selection's columns NULL"
oldsql "UPDATE zero_points SET num_candidates = 36, num_rejected_chi2 = 3, num_rejected_aperture = 2,
        num_rejected_neighbour = 1, noise = 0.019" >/dev/null 2>>"$T_TMP/old.err"
ok $? "the new columns take the selection's counts"
oldsql "UPDATE zero_points SET num_candidates = 29" >/dev/null 2>&1
ok $(( $? == 0 )) "fewer candidates than stars are refused"
oldsql "UPDATE zero_points SET num_rejected_aperture = 37" >/dev/null 2>&1
ok $(( $? == 0 )) "more rejections than candidates are refused"
sed 's/^/#   /' "$T_TMP/old.err" | head -5

# Stopping; a stopped cluster is reported, with the command to start it.
run_ok "skydb stop" skydb stop
exit_is 3 "skydb status on a stopped cluster exits 3" skydb status
like "$(cat "$T_TMP/out")" "state: stopped" "status says stopped"
exit_is 3 "imquery against a stopped cluster exits 3" imquery --ids
like "$(cat "$T_TMP/err")" "skydb start" "and says how to start it"
run_ok "skydb stop on a stopped cluster is a no-op" skydb stop

# Three skydb start at once on a new folder: one cluster, all succeed.
second="$DB_WORK/second"
pids=
for k in 1 2 3; do
    SKYSTACK_DB_DIR="$second" skydb -q start 2>"$T_TMP/s$k.err" &
    pids="$pids $!"
done
fails=0
for p in $pids; do wait "$p" || fails=$((fails + 1)); done
is "$fails" "0" "three concurrent skydb start on a new folder all succeed"
cat "$T_TMP"/s*.err | sed 's/^/#   /' | head -10
SKYSTACK_DB_DIR="$second" skydb status >"$T_TMP/out" 2>&1
ok $? "and the cluster they made is running with its schema"
SKYSTACK_DB_DIR="$second" skydb -q stop

# SKYSTACK_DB that cannot be reached: exit 3, named, password masked.
SKYSTACK_DB="host=/nonexistent-skystack dbname=survey user=me password=sekrit-pw" \
    imquery --ids >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" "3" "an unreachable SKYSTACK_DB gives exit 3"
like "$(cat "$T_TMP/err")" "nonexistent-skystack.*SKYSTACK_DB" "the message names the server and where it came from"
grep -q sekrit-pw "$T_TMP/err"
ok $(( $? == 0 )) "the password is not shown"
SKYSTACK_DB="not a conninfo" skydb status >/dev/null 2>"$T_TMP/err"
is "$?" "1" "a malformed SKYSTACK_DB is bad input (exit 1)"

# As root, a cluster folder the service user cannot reach is refused clearly.
if [ "$(id -u)" = 0 ]; then
    hidden=$(mktemp -d /tmp/skdbhidden-XXXXXX)
    chmod 700 "$hidden"
    SKYSTACK_DB_DIR="$hidden/db" skydb start >/dev/null 2>"$T_TMP/err"
    is "$?" "1" "as root: a cluster below a private folder is refused (exit 1)"
    like "$(cat "$T_TMP/err")" "$hidden.*not traversable" "and the message names the folder in the way"
    rm -rf "$hidden"
fi
exit_is 1 "an unknown skydb command is bad usage" skydb frobnicate
done_testing
