#!/bin/sh
# refmake through the whole pipeline: simulated exposures registered
# (imingest) and extracted (extract), then references built by refmake
# through the coadd pipeline: eight processes started together make exactly
# one coadd and one reference and all print it; the coadd carries the
# computed provenances and its links to the inputs' products; the coadd
# program given the same inputs returns the same coadd; a bad reference is
# replaced over the same coadd; other criteria build another coadd.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 25
ref_db_start

PLACE="--target SIMFIELD --section S1 --filter r"
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
count() { sql "SELECT count(*) FROM $1"; }

imsim -q -n 4 --size 256x256 --nstars 200 --set simulation.dither_arcsec=5 -o "$T_TMP/sim" >/dev/null
ok $? "imsim: four exposures"
# Every program runs with the simulation's reference catalogue; the coadds
# are weighted means.
printf '{"extraction": {"astrometry": {"refcat": "%s"}}, "coaddition": {"method": "mean"}}\n' "$T_TMP/sim/refcat.fits" >"$T_TMP/config.json"
export SKYSTACK_CONFIG="$T_TMP/config.json"
imingest -q "$T_TMP"/sim/exp_00?.fits >/dev/null
ok $? "imingest"
extract -q $(imquery --ids) >/dev/null 2>"$T_TMP/extract.err"
ok $? "extract"
is "$(sql "SELECT count(*) FROM images i WHERE EXISTS (SELECT 1 FROM source_lists s
      JOIN psfs p ON p.image_id = s.image_id AND p.provenance_id = s.provenance_id
      JOIN backgrounds b ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id
      JOIN world_coordinates w ON w.image_id = s.image_id AND w.provenance_id = s.provenance_id
      JOIN zero_points z ON z.image_id = s.image_id AND z.provenance_id = s.provenance_id
      WHERE s.image_id = i.id)")" 4 "the four images have all their extraction products"

refmake --refset first $PLACE --dry-run --json >"$T_TMP/dry" 2>/dev/null
COA=$(field coaddition <"$T_TMP/dry")
CEX=$(field coadd_extraction <"$T_TMP/dry")
like "$(cat "$T_TMP/dry")" '"enough":true' "the dry run finds enough images"

# Eight processes at once on one place and a new refset.
for k in 1 2 3 4 5 6 7 8; do
    (refmake -q --threads 1 --refset first $PLACE --json >"$T_TMP/c$k.out" 2>"$T_TMP/c$k.err"
     echo $? >"$T_TMP/c$k.rc") &
done
wait
is "$(cat "$T_TMP"/c?.rc | tr -d '\n')" 00000000 "eight processes: all exit 0"
for k in 1 2 3 4 5 6 7 8; do [ -s "$T_TMP/c$k.err" ] && sed 's/^/# /' "$T_TMP/c$k.err" | head -5; done
is "$(sort -u "$T_TMP"/c?.out | wc -l | tr -d ' ')" 1 "all print the same reference"
is "$(count "images WHERE type = 'coadd'")" 1 "exactly one coadd"
is "$(count refs)" 1 "exactly one reference"
REF=$(sql "SELECT id FROM refs")
C=$(sql "SELECT image_id FROM refs")
is "$(sql "SELECT provenance_id FROM images WHERE id = $C")" "$COA" "the coadd has the computed coaddition provenance"
is "$(sql "SELECT DISTINCT s.provenance_id FROM refs r JOIN source_lists s ON s.id = r.source_list_id")" "$CEX" \
    "the reference's products have the computed coadd-extraction provenance"
is "$(count "coadd_components WHERE coadd_image_id = $C")" 4 "the coadd is linked to its four inputs"
P=$(sed -n 's/.*"path":"\([^"]*\)".*/\1/p' "$T_TMP/c1.out")
[ -s "$P" ] && [ -s "$P.json" ]; ok $? "the coadd file and its sidecar exist"
like "$(cat "$P.json")" "\"id\": *\"$COA\"" "its sidecar names the coaddition provenance"

# The second call is quick and builds nothing.
exit_is 0 "refmake again" refmake --refset first $PLACE --id
is "$(cat "$T_TMP/out")|$(count "images WHERE type = 'coadd'")|$(count refs)" "$REF|1|1" \
    "the same reference, nothing made"
# The coadd program on the same inputs finds the same coadd.
exit_is 0 "coadd of the same inputs" sh -c "imquery --type science --ids | coadd -q -"
is "$(cat "$T_TMP/out")" "$P" "the coadd program returns the reference's coadd"
is "$(count "images WHERE type = 'coadd'")" 1 "and builds nothing"

# A bad reference over good inputs is not made again from the same coadd
# (refmake says so); with one input marked bad, a new coadd of the good
# images replaces it.
refset -q mark-bad "$REF" --reason "test" >/dev/null
exit_is 2 "refmake after mark-bad: the same coadd again is refused" refmake --refset first $PLACE --id
B=$(sql "SELECT min(image_id) FROM coadd_components WHERE coadd_image_id = $C")
skybad -q mark image "$B" --reason "test" >/dev/null
exit_is 0 "refmake after an input is marked bad" refmake --refset first $PLACE --id
REF2=$(cat "$T_TMP/out")
is "$(count "images WHERE type = 'coadd'")|$(sql "SELECT replaced_by FROM refs WHERE id = $REF")" "2|$REF2" \
    "a new coadd and reference, replacing the bad one"

# Other criteria select other inputs: another coadd.
exit_is 0 "a refset of the best two images" refmake --refset best2 $PLACE --max-images 2 --id
is "$(count "images WHERE type = 'coadd'")" 3 "a third coadd"
is "$(sql "SELECT count(*) FROM coadd_components c JOIN refs r ON r.image_id = c.coadd_image_id
           WHERE r.id = $(cat "$T_TMP/out")")" 2 "of two inputs"
done_testing
