#!/bin/sh
# Like make: a product whose row exists but whose file is missing or no
# longer has its row's md5 is not done. Rerunning its step makes it again
# under the same id: extract (source list deleted, background damaged),
# imingest (the image's file in the data root deleted or damaged), coadd
# (coadd file deleted) and refmake (the reference's coadd and its source
# list deleted). Where the step cannot rebuild (extract of an image whose
# file is gone or changed) it fails naming the file and pointing to skydb
# fsck. skydb fsck --checksums is clean after each rerun.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 30
ref_db_start

count() { sql "SELECT count(*) FROM $1"; }
clean() { skydb fsck --checksums 2>/dev/null | tail -1 | sed 's/^rows [0-9]*, files [0-9]*: //'; }
CLEAN="0 orphan files, 0 temporary files, 0 missing files, 0 checksum mismatches, 0 dead claims, 0 pending coadds; 0 repaired"
# intact(TABLE, ID): the file of that row is there with the row's md5
intact() {
    f=$(sql "SELECT filepath || ' ' || md5 FROM $1 WHERE id = $2")
    [ -f "$SKYSTACK_DATA/${f% *}" ] && [ "$(md5sum "$SKYSTACK_DATA/${f% *}" | cut -d' ' -f1)" = "${f#* }" ] &&
        echo intact
}

imsim -q -n 3 --size 256x256 --nstars 200 --set simulation.dither_arcsec=5 -o "$T_TMP/sim" >/dev/null
printf '{"extraction": {"astrometry": {"refcat": "%s"}}, "coaddition": {"method": "mean"}}\n' "$T_TMP/sim/refcat.fits" >"$T_TMP/config.json"
export SKYSTACK_CONFIG="$T_TMP/config.json"
imingest -q "$T_TMP"/sim/exp_00?.fits >/dev/null && extract -q $(imquery --ids) >/dev/null 2>"$T_TMP/extract.err"
ok $? "three exposures registered and extracted"
set -- $(imquery --ids --order earliest)
I1=$1 I2=$2 I3=$3
is "$(clean)" "$CLEAN" "fsck: clean"

# ---- extract: a product deleted, a product damaged ----
S1=$(sql "SELECT id FROM source_lists WHERE image_id = $I1")
rm "$SKYSTACK_DATA/$(sql "SELECT filepath FROM source_lists WHERE id = $S1")"
is "$(skydb fsck 2>/dev/null | grep -c '^missing-file: source_lists')" 1 "fsck: the deleted source list is missing"
exit_is 0 "extract of the image again" extract -q "$I1"
like "$(cat "$T_TMP/err")" "sources.fits is missing: made anew under the same rows" "says what it remade"
is "$(sql "SELECT id FROM source_lists WHERE image_id = $I1")|$(intact source_lists "$S1")|$(clean)" \
    "$S1|intact|$CLEAN" "the source list is made again under the same id; fsck clean"
B2=$(sql "SELECT id FROM backgrounds WHERE image_id = $I2")
printf 'x' >>"$SKYSTACK_DATA/$(sql "SELECT filepath FROM backgrounds WHERE id = $B2")"
exit_is 0 "extract of the image with a damaged background" extract -q "$I2"
like "$(cat "$T_TMP/err")" "bkg.fits does not match its row's checksum: made anew" "says why"
is "$(sql "SELECT id FROM backgrounds WHERE image_id = $I2")|$(intact backgrounds "$B2")|$(clean)" \
    "$B2|intact|$CLEAN" "the background is made again under the same id; fsck clean"

# ---- an image's file: extract cannot rebuild it, imingest restores it ----
F3=$(sql "SELECT filepath FROM images WHERE id = $I3")
rm "$SKYSTACK_DATA/$F3"
exit_is 2 "extract of an image whose file is gone exits 2" extract -q "$I3"
like "$(cat "$T_TMP/err")" "image $I3: its file $SKYSTACK_DATA/$F3 is missing from the data root.*imingest.*skydb fsck" \
    "and names the file, how to restore it and skydb fsck"
exit_is 0 "imingest of the original again" imingest -q "$T_TMP/sim/exp_002.fits"
is "$(cat "$T_TMP/out")|$(intact images "$I3")|$(count images)" "$I3|intact|3" \
    "restores the file under the same id (no new row)"
exit_is 0 "extract then reuses the extraction" extract -q "$I3"
is "$(clean)" "$CLEAN" "fsck: clean"
printf 'x' >>"$SKYSTACK_DATA/$(sql "SELECT filepath FROM images WHERE id = $I1")"
exit_is 1 "extract of an image whose file changed exits 1" extract -q "$I1"
like "$(cat "$T_TMP/err")" "does not match its row's checksum.*skydb fsck" "and says so"
imingest -q "$T_TMP/sim/exp_000.fits" >/dev/null 2>&1
is "$(intact images "$I1")|$(clean)" "intact|$CLEAN" "imingest restores the damaged file"

# ---- an image's file gone for good: fsck --repair marks the image bad ----
rm "$SKYSTACK_DATA/$F3"
exit_is 3 "fsck exits 3 while an image's file is missing" skydb fsck
exit_is 0 "fsck --repair marks that image bad and exits 0" skydb fsck --repair
is "$(sql "SELECT CASE WHEN is_bad THEN 'bad' ELSE 'good' END || ', ' || bad_comment || ', ' || bad_by FROM images WHERE id = $I3")|$(sql "SELECT count(*) FROM bad_marks WHERE kind = 'image' AND object_id = $I3")" \
    "bad, file missing (skydb fsck), skydb fsck|1" "the image is marked bad by skydb fsck, with the reason, in the marks' history"
exit_is 0 "plain fsck then counts the missing file as handled" skydb fsck
imingest -q "$T_TMP/sim/exp_002.fits" >/dev/null 2>&1
exit_is 0 "once restored, skybad unmark makes it good again" skybad unmark image "$I3" --reason restored
is "$(intact images "$I3")|$(sql "SELECT is_bad FROM images WHERE id = $I3")|$(clean)" "intact|f|$CLEAN" \
    "restored, good, fsck clean"

# ---- coadd and refmake ----
coadd -q --threads 1 "$I1" "$I2" >"$T_TMP/coadd1"
C=$(sql "SELECT id FROM images WHERE type = 'coadd'")
rm "$(cat "$T_TMP/coadd1")"
exit_is 3 "fsck --repair leaves a coadd whose file is missing to its step (exit 3)" skydb fsck --repair
exit_is 0 "coadd again after its file was deleted" coadd -q --threads 1 "$I1" "$I2"
is "$(cat "$T_TMP/out")|$(sql "SELECT id FROM images WHERE type = 'coadd'")|$(intact images "$C")|$(clean)" \
    "$(cat "$T_TMP/coadd1")|$C|intact|$CLEAN" "the coadd is made again under the same id; fsck clean"

PLACE="--refset rebuild --target SIMFIELD --section S1 --filter r"
refmake -q --threads 1 $PLACE --id >"$T_TMP/ref1" 2>/dev/null
RC=$(sql "SELECT image_id FROM refs WHERE id = $(cat "$T_TMP/ref1")")
RS=$(sql "SELECT id FROM source_lists WHERE image_id = $RC")
rm "$SKYSTACK_DATA/$(sql "SELECT filepath FROM images WHERE id = $RC")" \
    "$SKYSTACK_DATA/$(sql "SELECT filepath FROM source_lists WHERE id = $RS")"
exit_is 0 "refmake again after its coadd and that coadd's source list were deleted" \
    refmake -q --threads 1 $PLACE --id
is "$(cat "$T_TMP/out")|$(count refs)|$(intact images "$RC")|$(intact source_lists "$RS")" \
    "$(cat "$T_TMP/ref1")|1|intact|intact" "the same reference; its coadd and source list made again under their ids"
is "$(clean)" "$CLEAN" "fsck: clean"
done_testing
