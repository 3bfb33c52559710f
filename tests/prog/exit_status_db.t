#!/bin/sh
# The EXIT STATUS sections of the manuals (man/man1/*.1) for the codes that
# need a database, provoked on a private cluster by the situation each
# manual names: skydb, imingest, imquery, refset and refmake 0, 1, 2 and 3,
# and extract and coadd with the database (their 3 when the server is
# down). Each refusal's message is checked to name what it is about. The
# codes that need no database are in exit_status.t.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 78
start_test_db
cd "$T_TMP" || exit 1
ERR="$T_TMP/err"

imsim -q -n 2 --size 256x256 --nstars 200 --set simulation.dither_arcsec=5 -o sim >/dev/null 2>"$ERR"
ok $? "imsim: two exposures to work on"
PLACE="--target SIMFIELD --section S1 --filter r"

# skydb: 0, 1 (a non-empty folder that is not a cluster), 2 (stop without
# a cluster), 3 (pg_ctl failed; and once the server is stopped, below)
exit_is 0 "skydb: status of the running cluster: exit 0" skydb status
like "$(cat "$T_TMP/out")" "state: running" "it says the cluster is running"
mkdir "$DB_WORK/junk" && echo x >"$DB_WORK/junk/notes.txt"
exit_is 1 "skydb: start in a non-empty folder that is not a cluster: exit 1" \
    env SKYSTACK_DB_DIR="$DB_WORK/junk" skydb start
like "$(cat "$ERR")" "$DB_WORK/junk: .*not empty" "the message names the folder"
[ ! -e "$DB_WORK/junk/PG_VERSION" ]
ok $? "and no cluster was made there"
exit_is 2 "skydb: stop where there is no cluster: exit 2" env SKYSTACK_DB_DIR="$DB_WORK/none" skydb stop
like "$(cat "$ERR")" "no private cluster in $DB_WORK/none" "the message names the folder"
mkdir "$DB_WORK/broken" && echo 15 >"$DB_WORK/broken/PG_VERSION"
exit_is 3 "skydb: pg_ctl fails to start a folder that only looks like a cluster: exit 3" \
    env SKYSTACK_DB_DIR="$DB_WORK/broken" skydb start
like "$(cat "$ERR")" "starting the private cluster in $DB_WORK/broken" "the message names the cluster"

# imingest: 0, 1 (a file refused, an unknown keyword map), 2 (only weight
# and mask files), 3 (a data root that cannot be written)
exit_is 0 "imingest: exit 0" imingest sim/exp_000.fits
ID=$(cat "$T_TMP/out")
like "$ID" "^[0-9]+$" "it prints the image id"
exit_is 1 "imingest: a file that does not exist is refused: exit 1" imingest nope.fits
like "$(cat "$ERR")" "nope\.fits" "the message names the file"
exit_is 1 "imingest: an unknown keyword map: exit 1" imingest --instrument nosuchcam sim/exp_001.fits
like "$(cat "$ERR")" "nosuchcam" "the message names the map"
DECAM=$REAL/decam-legacysurvey/testcase3
exit_is 2 "imingest: only weight and mask files: exit 2" \
    imingest --instrument decam "$DECAM"/*_oow_*.fits "$DECAM"/*_ood_*.fits
like "$(cat "$ERR")" "nothing to ingest" "the message says there is nothing to ingest"
echo x >afile
exit_is 3 "imingest: a data root that cannot be created: exit 3" \
    env SKYSTACK_DATA="$T_TMP/afile/data" imingest sim/exp_001.fits
like "$(cat "$ERR")" "$T_TMP/afile" "the message names the path"
is "$(sql "SELECT count(*) FROM images")" 1 "and the refused files left no row"

# imquery: 0, 1 (a malformed date), 2 (no image matches)
exit_is 0 "imquery: exit 0" imquery --ids
is "$(cat "$T_TMP/out")" "$ID" "it prints the image"
exit_is 1 "imquery: a malformed date: exit 1" imquery --since 2026-02-30
like "$(cat "$ERR")" "--since" "the message names the option"
exit_is 2 "imquery: no image matches: exit 2" imquery --filter g
like "$(cat "$ERR")" "no image matches" "the message says so"

# extract with the database: 0, 1 (--outdir without --no-db), 2 (an id
# that does not exist, a file that is not registered)
exit_is 0 "extract: by id: exit 0" extract -q "$ID"
like "$(head -1 "$T_TMP/out")" "^$SKYSTACK_DATA/" "it prints its products in the data root"
exit_is 1 "extract: --outdir with the database: exit 1" extract --outdir o "$ID"
like "$(cat "$ERR")" "--outdir" "the message names the option"
exit_is 2 "extract: an id that does not exist: exit 2" extract 999999
like "$(cat "$ERR")" "999999" "the message names the id"
exit_is 2 "extract: a file that is not registered: exit 2" extract sim/exp_001.fits
like "$(cat "$ERR")" "exp_001\.fits" "the message names the file"

# coadd with the database: 1 (an input without its products: no WCS or
# zero point without a reference catalogue), 2 (no image selected)
exit_is 1 "coadd: an input without its products: exit 1" coadd "$ID"
like "$(cat "$ERR")" "image $ID" "the message names the image"
exit_is 2 "coadd: no image selected at the place: exit 2" coadd --target NOSUCH --filter r
like "$(cat "$ERR")" "NOSUCH" "the message names the place"

# refset: 0, 1 (create of a name that exists), 2 (a refset that does not
# exist, refs finding no reference, a reference that does not exist)
exit_is 0 "refset: create: exit 0" refset create A
is "$(cat "$T_TMP/out")" "A" "it prints the name"
exit_is 1 "refset: create of a name that exists: exit 1" refset create A
like "$(cat "$ERR")" "'A' exists already" "the message names the refset"
exit_is 2 "refset: show of a refset that does not exist: exit 2" refset show nosuch
like "$(cat "$ERR")" "'nosuch' does not exist" "the message names the refset"
exit_is 2 "refset: refs finds no reference: exit 2" refset refs A
like "$(cat "$ERR")" "'A' holds no reference" "the message names the refset"
exit_is 2 "refset: mark-bad of a reference that does not exist: exit 2" refset mark-bad 999 --reason test
like "$(cat "$ERR")" "reference 999 does not exist" "the message names the reference"

# refmake: 0 (the dry-run report), 2 (no criteria set selects enough
# images: the image lacks its WCS and zero point), 1 (a refset made with
# another upstream_hash, criteria that may not be appended), 3 (a failed
# coadd; and with the server stopped, below)
exit_is 0 "refmake: a dry run: exit 0" refmake --refset P $PLACE --dry-run
like "$(cat "$T_TMP/out")" "^refset P: would be created" "the report was printed"
exit_is 2 "refmake: no criteria set selects enough images: exit 2" refmake --refset P $PLACE
like "$(cat "$ERR")" "1 science image at the place in filter r, 0 with extraction products" \
    "the message says what was found at the place"
exit_is 1 "refmake: a refset made with another upstream_hash: exit 1" \
    refmake --refset P $PLACE --set coaddition.method=mean
like "$(cat "$ERR")" "coaddition provenance differs" "the message names the provenance that differs"
exit_is 1 "refmake: criteria that may not be appended: exit 1" \
    refmake --refset P $PLACE --max-seeing 1.5 --no-append
like "$(cat "$ERR")" "--no-append" "the message names --no-append"
# refmake's 3 with the server running: a failed coadd. The second
# exposure, extracted with its reference catalogue, has every product; the
# folder its coadd goes to cannot be made (a regular file stands there).
REFCAT="--set extraction.astrometry.refcat=$T_TMP/sim/refcat.fits"
ID1=$(imingest -q sim/exp_001.fits) && extract -q $REFCAT "$ID1" >/dev/null 2>"$ERR"
ok $? "the second exposure registered and extracted with its reference catalogue"
SCI=$(sql "SELECT filepath FROM images WHERE id = $ID1")
BLOCK=$SKYSTACK_DATA/$(dirname "$(dirname "$(dirname "$SCI")")")/coadd
echo x >"$BLOCK"
exit_is 3 "refmake: the coadd fails: exit 3" refmake --refset Q $PLACE $REFCAT
like "$(cat "$ERR")" "$BLOCK" "the message names the folder it could not make"
is "$(sql "SELECT count(*) FROM images WHERE type = 'coadd'")|$(sql "SELECT count(*) FROM refs")" "0|0" \
    "no coadd and no reference registered"

# Every program's 3 with the server stopped: the message names the
# cluster and the command that starts it.
run_ok "skydb stop" skydb stop
down() { # down PROGRAM ARGS...: exit 3, naming the cluster and `skydb start`
    exit_is 3 "$* with the server stopped: exit 3" "$@"
    like "$(cat "$ERR")" "$SKYSTACK_DB_DIR.*skydb start" "$*: the message names the cluster and \`skydb start\`"
}
down skydb status
down skydb migrate
down imingest sim/exp_001.fits
down imquery --ids
down extract "$ID"
down coadd --target SIMFIELD --filter r
down refset list
down refmake --refset P $PLACE

# nothing may be left running in the folders skydb could not start
for d in junk broken; do stop_leftover_postmaster "$DB_WORK/$d"; done
done_testing
