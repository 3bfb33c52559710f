#!/bin/sh
# Faults: extract, coadd and refmake killed (kill -9) at several points
# (files written but no row, inside the registration transaction, as the
# extraction's computation starts, a coadd registered pending before and
# after its extraction, inside the reference's transaction), racing
# extractions of one image, their database backend terminated or the server stopped
# mid-step (then restarted), a full file
# system and a read-only data root. Each leaves no half product (nothing a
# query returns), a clear message and the documented exit code; skydb fsck
# finds what was left and the rerun completes with the same ids.
# The kill points are reached through the test hook SKYSTACK_TEST_HOOK
# (see lib/db/db_internal.h); the full and read-only file systems are
# tmpfs and bind mounts when the test runs as root, else a file-size limit
# and file modes.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 77
ref_db_start

count() { sql "SELECT count(*) FROM $1"; }
coadds() { count "images WHERE type = 'coadd'"; }
visible() { imquery --type coadd --ids --include-bad 2>/dev/null | wc -l | tr -d ' '; }
# fsck's summary numbers: orphan temporary missing checksum dead-claims pending
findings() {
    skydb fsck "$@" 2>/dev/null | tail -1 |
        sed 's/.*: \([0-9]*\) orphan files, \([0-9]*\) temporary files, \([0-9]*\) missing files, \([0-9]*\) checksum mismatches, \([0-9]*\) dead claims, \([0-9]*\) pending coadds.*/\1 \2 \3 \4 \5 \6/'
}

imsim -q -n 4 --size 256x256 --nstars 200 --set simulation.dither_arcsec=5 -o "$T_TMP/sim" >/dev/null
printf '{"extraction": {"astrometry": {"refcat": "%s"}}, "coaddition": {"method": "mean"}}\n' "$T_TMP/sim/refcat.fits" >"$T_TMP/config.json"
export SKYSTACK_CONFIG="$T_TMP/config.json"
imingest -q "$T_TMP"/sim/exp_00?.fits >/dev/null && extract -q $(imquery --ids) >/dev/null 2>"$T_TMP/extract.err"
ok $? "four exposures registered and extracted"
set -- $(imquery --ids --order earliest)
I1=$1 I2=$2 I3=$3 I4=$4
is "$(findings)" "0 0 0 0 0 0" "fsck: a clean database and data root"

# ---- the extraction: kill -9, its backend terminated, racing workers ----
# (each under a provenance of its own, --threshold, beside the configured one)
lists() { count "source_lists WHERE image_id = $1"; }
xkilled() {
    p=$1
    shift
    SKYSTACK_TEST_HOOK="$p" extract -q --threads 1 "$@" >"$T_TMP/out" 2>"$T_TMP/err"
}
xkilled extract-files=kill --threshold 8 "$I1"
is "$?|$(lists "$I1")" "137|1" "extraction killed with its files written: no row"
is "$(findings)" "8 0 0 0 1 0" "fsck: its four products and their sidecars are orphans; a dead claim"
S=$(skydb fsck 2>/dev/null | sed -n 's/^orphan-file: \(.*\.sources\.fits\)$/\1/p')
exit_is 0 "rerun" extract -q --threads 1 --threshold 8 "$I1"
is "$(head -1 "$T_TMP/out")|$(lists "$I1")|$(findings)" "$S|2|0 0 0 0 0 0" \
    "the rerun completes: the same source list, one row, nothing left over"

xkilled extract-tx=kill --threshold 9 "$I1"
is "$?|$(lists "$I1")" "137|2" "extraction killed inside its registration transaction: no row"
exit_is 0 "rerun" extract -q --threads 1 --threshold 9 "$I1"
is "$(lists "$I1")|$(findings)" "3|0 0 0 0 0 0" "the rerun completes, nothing left over"

xkilled extract-claimed=kill --threshold 10 "$I2"
is "$?|$(lists "$I2")|$(findings)" "137|1|0 0 0 0 1 0" \
    "extraction killed as its computation starts: no row, no file, a dead claim"
# a temporary file a kill in the middle of a write would have left
XD=$(find "$SKYSTACK_DATA" -type d -empty | head -1)
STEM=$(basename "$(sql "SELECT filepath FROM images WHERE id = $I2")" .fits)
: >"$XD/$STEM.sources.fits.tmp-AB12CD"
is "$(findings)" "0 1 0 0 1 0" "fsck: and a temporary file"
exit_is 0 "rerun" extract -q --threads 1 --threshold 10 "$I2"
is "$(test -e "$XD/$STEM.sources.fits.tmp-AB12CD" || echo gone)|$(lists "$I2")|$(findings)" \
    "gone|2|0 0 0 0 0 0" "the rerun removed the temporary file and completes, nothing left over"

SKYSTACK_TEST_HOOK="extract-claimed=sleep:4" extract -q --threads 1 --threshold 12 "$I3" \
    >"$T_TMP/out" 2>"$T_TMP/err" &
W=$!
k=0
while [ "$(count "claims WHERE name LIKE 'extraction|%'")" != 1 ] && [ $k -lt 100 ]; do
    sleep 0.2
    k=$((k + 1))
done
is "$(sql "SELECT a.state || '|' || coalesce(a.xact_start::text, 'none') FROM pg_stat_activity a
    JOIN claims c ON c.backend_pid = a.pid WHERE c.name LIKE 'extraction|%'")" "idle|none" \
    "an extraction that computes holds its claim with no transaction open"
is "$(sql "SELECT count(pg_terminate_backend(backend_pid)) FROM claims")" 1 \
    "the extracting worker's backend terminated"
wait $W
is "$?" 3 "extract exits 3"
like "$(cat "$T_TMP/err")" "lost the connection to|server closed the connection|terminating connection" \
    "and says it lost the database connection"
is "$(lists "$I3")|$(findings)" "1|0 0 0 0 1 0" "no row, no file; fsck: its claim dead"
exit_is 0 "rerun" extract -q --threads 1 --threshold 12 "$I3"
is "$(lists "$I3")|$(findings)" "2|0 0 0 0 0 0" "the rerun completes, nothing left over"

for k in 1 2 3 4; do
    extract -q --threads 1 --threshold 13 "$I4" >"$T_TMP/race$k" 2>"$T_TMP/race$k.err" &
    eval "R$k=\$!"
done
RCS=""
for k in 1 2 3 4; do
    eval "wait \$R$k"
    RCS="$RCS$?"
done
is "$RCS|$(cat "$T_TMP"/race? | sort | uniq -c | awk '{ print $1 }' | sort -u)" "0000|4" \
    "4 workers extracting one image at once: all exit 0 and print the same products"
is "$(lists "$I4")|$(count "source_lists s WHERE s.image_id = $I4 AND s.filepath = '$(sed -n 1p "$T_TMP/race1" | sed "s|^$SKYSTACK_DATA/||")'")|$(findings)" \
    "2|1|0 0 0 0 0 0" "exactly one extraction (one row, one set of files), nothing left over"

# ---- kill -9 in the coadd ----
# killed(POINT, INPUTS...): coadd of the inputs killed at POINT
killed() {
    p=$1
    shift
    SKYSTACK_TEST_HOOK="$p=kill" coadd -q --threads 1 "$@" >"$T_TMP/out" 2>"$T_TMP/err"
}
killed coadd-files "$I1" "$I2"
is "$?|$(coadds)|$(visible)" "137|0|0" "killed with the coadd files written: no row"
is "$(findings)" "4 0 0 0 1 0" "fsck: the coadd, its PSF and their sidecars are orphans; a dead claim"
O=$(skydb fsck 2>/dev/null | sed -n 's/^orphan-file: \(.*coadd-[0-9a-f]*\.fits\)$/\1/p')
exit_is 0 "rerun" coadd -q --threads 1 "$I1" "$I2"
is "$(cat "$T_TMP/out")|$(coadds)" "$O|1" "the rerun completes: the same coadd file, one row"
is "$(findings)|$(test -f "${O%.fits}.png" && echo png)" "0 0 0 0 0 0|png" \
    "fsck: nothing left over (the coadd's quick-look PNG belongs to it)"

killed coadd-tx "$I1" "$I3"
is "$?|$(coadds)|$(visible)" "137|1|1" "killed inside the registration transaction: no row"
exit_is 0 "rerun" coadd -q --threads 1 "$I1" "$I3"
is "$(coadds)|$(findings)" "2|0 0 0 0 0 0" "the rerun completes, nothing left over"

killed coadd-pending "$I1" "$I4"
is "$?|$(visible)" "137|2" "killed before the coadd's extraction: no query sees it"
P=$(sql "SELECT id FROM images WHERE pending")
is "$(findings)" "0 0 0 0 1 1" "fsck: a pending coadd and a dead claim"
# a temporary file its extraction would have left had the kill come while
# it wrote: beside the extraction products of the coadd of the same night
XDIR=$(dirname "$SKYSTACK_DATA/$(sql "SELECT s.filepath FROM source_lists s JOIN images i ON i.id = s.image_id
    WHERE i.type = 'coadd' AND NOT i.pending ORDER BY i.id LIMIT 1")")
STEM=$(basename "$(sql "SELECT filepath FROM images WHERE id = $P")" .fits)
: >"$XDIR/$STEM.bkg.fits.tmp-AB12CD"
exit_is 0 "rerun" coadd -q --threads 1 "$I1" "$I4"
is "$(test -e "$XDIR/$STEM.bkg.fits.tmp-AB12CD" || echo gone)" "gone" \
    "the rerun's extraction removed the temporary file the stopped worker left"
is "$(count "images WHERE id = $P AND NOT pending")|$(visible)|$(count "images WHERE pending")" "1|3|0" \
    "the rerun completes the pending coadd: the same id"
is "$(count "source_lists WHERE image_id = $P")|$(findings)" "1|0 0 0 0 0 0" "with its extraction, nothing left over"

killed coadd-extracted "$I2" "$I3"
RC=$?
P=$(sql "SELECT id FROM images WHERE pending")
is "$RC|$(visible)|$(count "source_lists WHERE image_id = $P")" "137|3|1" \
    "killed after the coadd's extraction: still pending, no query sees it"
exit_is 0 "rerun" coadd -q --threads 1 "$I2" "$I3"
is "$(count "images WHERE id = $P AND NOT pending")|$(visible)|$(findings)" "1|4|0 0 0 0 0 0" "the rerun completes it: the same id"

# ---- kill -9 in refmake ----
PLACE="--refset faults --target SIMFIELD --section S1 --filter r"
SKYSTACK_TEST_HOOK="ref-tx=kill" refmake -q --threads 1 $PLACE --id >"$T_TMP/out" 2>"$T_TMP/err"
is "$?|$(count refs)" "137|0" "refmake killed inside the reference's transaction: no reference"
C=$(sql "SELECT id FROM images WHERE type = 'coadd' AND NOT pending ORDER BY id DESC LIMIT 1")
is "$(findings)" "0 0 0 0 1 0" "fsck: its dead claim on the place"
exit_is 0 "rerun" refmake -q --threads 1 $PLACE --id
R=$(cat "$T_TMP/out")
is "$(count refs)|$(sql "SELECT image_id FROM refs WHERE id = $R")|$(coadds)" "1|$C|5" \
    "the rerun makes the reference over the coadd made before the kill"
SKYSTACK_TEST_HOOK="refmake-claimed=kill" refmake -q --threads 1 --refset faults2 --target SIMFIELD \
    --section S1 --filter r --max-images 2 --id >/dev/null 2>&1
is "$?|$(count refs)" "137|1" "refmake killed holding the place: nothing made"
is "$(findings --repair)" "0 0 0 0 1 0" "fsck --repair finds the dead claim and removes it"
is "$(findings)|$(count claims)" "0 0 0 0 0 0|0" "and then finds nothing"
exit_is 0 "rerun" refmake -q --threads 1 --refset faults2 --target SIMFIELD --section S1 --filter r \
    --max-images 2 --id
is "$(count refs)" 2 "the reference is made"

# ---- the database backend terminated mid-step ----
SKYSTACK_TEST_HOOK="coadd-pending=sleep:4" coadd -q --threads 1 "$I3" "$I4" >"$T_TMP/out" 2>"$T_TMP/err" &
W=$!
k=0
while [ "$(count "images WHERE pending")" != 1 ] && [ $k -lt 100 ]; do sleep 0.2; k=$((k + 1)); done
is "$(sql "SELECT count(pg_terminate_backend(backend_pid)) FROM claims")" 1 "the worker's backend terminated"
wait $W
is "$?" 3 "coadd exits 3"
like "$(cat "$T_TMP/err")" "lost the connection to|server closed the connection|terminating connection" \
    "and says it lost the database connection"
P=$(sql "SELECT id FROM images WHERE pending")
is "$(visible)|$(findings)" "5|0 0 0 0 1 1" "no query sees the coadd; fsck: pending, its claim dead"
exit_is 0 "rerun" coadd -q --threads 1 "$I3" "$I4"
is "$(count "images WHERE id = $P AND NOT pending")|$(visible)|$(findings)" "1|6|0 0 0 0 0 0" "the rerun completes it: the same id"

# ---- a full file system, a read-only data root ----
D2=$(sql "SELECT filepath FROM images WHERE id = $I2")
CDIR="$SKYSTACK_DATA/$(echo "$D2" | sed 's|/science/.*||')/coadd"
mkdir -p "$CDIR"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs "$CDIR" 2>/dev/null; then
    MOUNTED=1
    dd if=/dev/zero of="$CDIR/filler" bs=4k 2>/dev/null
    rm -f "$CDIR/filler.keep"
    FULL="coadd -q --threads 1 $I2 $I4"
else
    MOUNTED=0
    FULL="sh -c 'trap \"\" XFSZ; ulimit -f 64; exec coadd -q --threads 1 $I2 $I4'"
fi
eval "$FULL" >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" 3 "a full file system: coadd exits 3"
like "$(cat "$T_TMP/err")" "No space left on device|File too large|[Ww]rit" "and says the write failed"
if [ "$MOUNTED" = 1 ]; then rm -f "$CDIR/filler"; fi
is "$(visible)|$(count "images WHERE pending")" "6|0" "no coadd row"
is "$(find "$CDIR" -name 'coadd-*' | wc -l | tr -d ' ')" 0 "no coadd file"
if [ "$MOUNTED" = 1 ]; then umount "$CDIR"; fi
exit_is 0 "rerun with space" coadd -q --threads 1 "$I2" "$I4"
is "$(visible)|$(findings)" "7|0 0 0 0 0 0" "the rerun completes, nothing left over"

if [ "$(id -u)" = 0 ] && mount --bind "$SKYSTACK_DATA" "$SKYSTACK_DATA" 2>/dev/null &&
    mount -o remount,ro,bind "$SKYSTACK_DATA" 2>/dev/null; then
    RO=mount
else
    RO=chmod
    chmod -R a-w "$SKYSTACK_DATA"
fi
exit_is 3 "a read-only data root: coadd exits 3" coadd -q --threads 1 "$I1" "$I2" "$I3"
like "$(cat "$T_TMP/err")" "Read-only file system|Permission denied" "and says why"
is "$(visible)|$(count "images WHERE pending")|$(count claims)" "7|0|0" "no row, no claim left"
if [ "$RO" = mount ]; then umount "$SKYSTACK_DATA"; else chmod -R u+w "$SKYSTACK_DATA"; fi
exit_is 0 "rerun writable" coadd -q --threads 1 "$I1" "$I2" "$I3"
is "$(visible)|$(findings)" "8|0 0 0 0 0 0" "the rerun completes, nothing left over"

# ---- the database server stopped mid-step, then restarted ----
SKYSTACK_TEST_HOOK="coadd-pending=sleep:4" coadd -q --threads 1 "$I1" "$I2" "$I4" >"$T_TMP/out" 2>"$T_TMP/err" &
W=$!
k=0
while [ "$(count "images WHERE pending")" != 1 ] && [ $k -lt 100 ]; do sleep 0.2; k=$((k + 1)); done
P=$(sql "SELECT id FROM images WHERE pending")
skydb -q stop >/dev/null 2>&1
wait $W
is "$?" 3 "the server stopped mid-step: coadd exits 3"
like "$(cat "$T_TMP/err")" "lost the connection to|server closed the connection|terminating connection|shutting down" \
    "and says it lost the database connection"
ref_db_start
is "$(visible)|$(findings)" "8|0 0 0 0 1 1" "restarted: no query sees the coadd; fsck: pending, its claim dead"
exit_is 0 "rerun" coadd -q --threads 1 "$I1" "$I2" "$I4"
is "$(count "images WHERE id = $P AND NOT pending")|$(visible)|$(findings)" "1|9|0 0 0 0 0 0" \
    "the rerun completes it: the same id"

# ---- the exit codes of skydb fsck ----
touch "$SKYSTACK_DATA/stray.fits"
exit_is 3 "fsck with a finding exits 3" skydb fsck
like "$(cat "$T_TMP/out")" "^orphan-file: $SKYSTACK_DATA/stray.fits$" "and names the file"
exit_is 0 "fsck --repair exits 0 when all is repaired" skydb fsck --repair
like "$(cat "$T_TMP/out")" "orphan-file: $SKYSTACK_DATA/stray.fits \(removed\)" "and says what it did"
ok "$([ ! -e "$SKYSTACK_DATA/stray.fits" ] && echo 0 || echo 1)" "the orphan is gone"
SL=$(sql "SELECT min(id) FROM source_lists WHERE image_id = $I1")
F=$(sql "SELECT filepath FROM source_lists WHERE id = $SL")
printf 'x' >>"$SKYSTACK_DATA/$F"
is "$(findings --checksums)" "0 0 0 1 0 0" "fsck --checksums finds a changed file"
skydb fsck --checksums --repair >/dev/null 2>&1
is "$(sql "SELECT is_bad, bad_by FROM source_lists WHERE id = $SL")" "t|skydb fsck" \
    "--repair marks its extraction bad"
done_testing
