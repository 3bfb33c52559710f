#!/bin/sh
# Marking bad and replacing: skybad marks images, extractions, coadds and
# references bad with a reason, who and when, and unmarks them; what is bad
# leaves imquery (and --include-bad brings it back); marking an image bad
# marks nothing else, but skybad users and refset uses show what used it and
# its reference is no longer loaded; eight refmake processes at once then
# make exactly one new coadd of the good images and one new reference, the
# old one replaced_by it; refset chain shows the replacements.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 46
ref_db_start

PLACE="--target SIMFIELD --section S1 --filter r"
count() { sql "SELECT count(*) FROM $1"; }
export SKYSTACK_USER=tester

imsim -q -n 4 --size 256x256 --nstars 200 --set simulation.dither_arcsec=5 -o "$T_TMP/sim" >/dev/null
ok $? "imsim: four exposures"
printf '{"extraction": {"astrometry": {"refcat": "%s"}}, "coaddition": {"method": "mean"}}\n' "$T_TMP/sim/refcat.fits" >"$T_TMP/config.json"
export SKYSTACK_CONFIG="$T_TMP/config.json"
imingest -q "$T_TMP"/sim/exp_00?.fits >/dev/null && extract -q $(imquery --ids) >/dev/null 2>"$T_TMP/extract.err"
ok $? "imingest and extract"
set -- $(imquery --ids --order earliest)
I1=$1 I2=$2 I3=$3 I4=$4

# ---- marking and unmarking ----
exit_is 1 "mark without a reason" skybad mark image "$I1"
like "$(cat "$T_TMP/err")" "--reason" "the message names --reason"
exit_is 2 "mark an image that does not exist" skybad mark image 999999 --reason x
exit_is 1 "mark a science image as a coadd" skybad mark coadd "$I1" --reason x
like "$(cat "$T_TMP/err")" "is a science image, not a coadd" "the message says what it is"
exit_is 1 "an unknown kind" skybad mark frame "$I1" --reason x
exit_is 0 "mark an image bad" skybad mark image "$I3" --reason "satellite trail"
is "$(sql "SELECT is_bad, bad_comment, bad_by FROM images WHERE id = $I3")" "t|satellite trail|tester" \
    "the image row carries the mark, the reason and who"
is "$(imquery --ids | tr '\n' ' ')" "$I1 $I2 $I4 " "imquery leaves the bad image out"
is "$(imquery --ids --include-bad | tr '\n' ' ')" "$I1 $I2 $I3 $I4 " "--include-bad shows it"
like "$(skybad list --json)" "\"by\":\"tester\",\"id\":$I3,\"kind\":\"image\",\"reason\":\"satellite trail\"" \
    "skybad list shows it with who and why"
exit_is 0 "unmark it" skybad unmark image "$I3" --by someone
is "$(imquery --ids | wc -l | tr -d ' ')|$(skybad list | wc -l | tr -d ' ')" "4|0" "it is back, nothing is bad"
is "$(skybad history image "$I3" | awk '{print $1, $3}' | tr '\n' ' ')" "mark tester unmark someone " \
    "the history keeps the mark and the unmark, with who"
SL=$(sql "SELECT id FROM source_lists WHERE image_id = $I2")
exit_is 0 "mark an extraction bad" skybad mark extraction "$SL" --reason "bad PSF"
is "$(imquery --ids --with-products | tr '\n' ' ')" "$I1 $I3 $I4 " "--with-products leaves out the image of a bad extraction"
is "$(imquery --ids --with-products --include-bad | wc -l | tr -d ' ')" 4 "and --include-bad brings it back"
skybad -q unmark extraction "$SL" >/dev/null

# ---- a reference, then one of its inputs marked bad ----
exit_is 0 "refmake" refmake -q --refset lc $PLACE --id
R1=$(cat "$T_TMP/out")
C1=$(sql "SELECT image_id FROM refs WHERE id = $R1")
exit_is 0 "mark an input image bad" skybad mark image "$I3" --reason "focus"
is "$(sql "SELECT is_bad FROM images WHERE id = $C1")|$(sql "SELECT is_bad FROM refs WHERE id = $R1")" "f|f" \
    "nothing else is marked: the coadd and the reference stay good"
like "$(skybad users "$I3" | tr '\n' '|')" "^coadd $C1 [^|]*\|reference $R1 coadd $C1 .*input image $I3 marked bad: focus\|$" \
    "skybad users shows the coadd and the reference made from it, and why it is not loadable"
like "$(refset uses "$I3")" "^$R1  coadd $C1 " "refset uses shows the reference"
is "$(imquery --made-from "$I3" --ids)|$(imquery --made-from "$I3" --ids --include-bad)" "$C1|$C1" \
    "imquery --made-from shows the coadd made from it"
like "$(refset refs lc)" "NOT LOADABLE: input image $I3 marked bad" "refset refs says why it is not loaded"

# ---- eight refmakes replace it ----
for k in 1 2 3 4 5 6 7 8; do
    (refmake -q --threads 1 --refset lc $PLACE --json >"$T_TMP/c$k.out" 2>"$T_TMP/c$k.err"
     echo $? >"$T_TMP/c$k.rc") &
done
wait
is "$(cat "$T_TMP"/c?.rc | tr -d '\n')" 00000000 "eight refmakes: all exit 0"
for k in 1 2 3 4 5 6 7 8; do [ -s "$T_TMP/c$k.err" ] && sed 's/^/# /' "$T_TMP/c$k.err" | head -5; done
is "$(sort -u "$T_TMP"/c?.out | wc -l | tr -d ' ')" 1 "all print the same reference"
is "$(count "images WHERE type = 'coadd'")|$(count refs)" "2|2" "exactly one new coadd and one new reference"
R2=$(sql "SELECT max(id) FROM refs")
C2=$(sql "SELECT image_id FROM refs WHERE id = $R2")
is "$(sql "SELECT replaced_by FROM refs WHERE id = $R1")" "$R2" "the old reference is replaced by the new one"
is "$(sql "SELECT string_agg(image_id::text, ' ' ORDER BY image_id) FROM coadd_components WHERE coadd_image_id = $C2")" \
    "$I1 $I2 $I4" "the new coadd is of the good images only"
is "$(sql "SELECT count(*) FROM refs WHERE skystack_ref_trouble(id) IS NULL")" 1 "one loadable reference for the place"
is "$(refset refs lc --json | grep -c '"loaded":true')|$(refset refs lc $PLACE --json | grep '"loaded":true' | grep -c "\"id\":$R2,")" "1|1" \
    "refset loads the new one"
like "$(refset chain "$R2" | tr '\n' '|')" "^ *id .*\| *$R1 +$C1 .* $R2 +replaced by reference $R2\| *$R2 +$C2 .* - +loadable\|$" \
    "refset chain shows the replacement"
exit_is 0 "refmake again" refmake -q --refset lc $PLACE --id
is "$(cat "$T_TMP/out")|$(count refs)" "$R2|2" "returns the new reference, nothing made"

# ---- a bad reference over good inputs ----
exit_is 0 "skybad marks a reference bad" skybad mark reference "$R2" --reason "bad subtraction"
exit_is 2 "refmake will not make the same coadd again" refmake -q --refset lc $PLACE --id
like "$(cat "$T_TMP/err")" "same coadd again, and coadd $C2 is that of reference $R2, marked bad: bad subtraction; mark the bad input" \
    "and says why and what to do"
exit_is 0 "unmark the reference" skybad unmark reference "$R2"
exit_is 0 "refmake returns it again" refmake -q --refset lc $PLACE --id
is "$(cat "$T_TMP/out")|$(count refs)" "$R2|2" "the same reference, nothing made"
SX=$(sql "SELECT id FROM source_lists WHERE image_id = $C2")
skybad -q mark extraction "$SX" --reason "bad coadd PSF" >/dev/null
exit_is 2 "the coadd's extraction marked bad: refmake refuses the same coadd" refmake -q --refset lc $PLACE --id
like "$(cat "$T_TMP/err")" "the extraction $SX of coadd $C2 is marked bad: bad coadd PSF" "and says why"
exit_is 0 "mark the coadd bad" skybad mark coadd "$C2" --reason "ghost"
is "$(imquery --type coadd --ids | tr '\n' ' ')|$(imquery --type coadd --ids --include-bad | wc -l | tr -d ' ')" "$C1 |2" \
    "imquery leaves the bad coadd out, --include-bad shows it"
done_testing
