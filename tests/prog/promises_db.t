#!/bin/sh
# Promises of the manuals checked through the programs with a database
# (tests/CLAIMS lists each claim and its test):
# - extract(1): processes extracting the same image with the same
#   provenance serialise on an advisory lock: one makes the products, the
#   others print them; one row each;
# - refmake(1): the min_overlap criterion keeps the images that cover that
#   fraction of the bounding box of the first image in the criteria's
#   order (footprints set to known boxes here).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 22
start_test_db
cd "$T_TMP" || exit 1

# ---- four extracts of one image at once ----
imsim -q --nexp 1 --size 512x512 --nstars 400 --seed 31 --outdir one >/dev/null 2>"$T_TMP/err"
ok $? "imsim exposure"
id=$(imingest -q one/exp_000.fits 2>"$T_TMP/err")
ok $? "imingest it (id $id)"
for k in 1 2 3 4; do
    (extract --threads 1 "$id" >"$T_TMP/x$k.out" 2>"$T_TMP/x$k.err"; echo $? >"$T_TMP/x$k.rc") &
done
wait
is "$(cat "$T_TMP"/x?.rc | tr -d '\n')" "0000" "four extracts of one image at once: all exit 0"
is "$(cat "$T_TMP"/x?.out | sort | uniq -c | awk '{ print $1 }' | sort -u | tr -d '\n')" "4" \
    "all four print the same products"
is "$(grep -l "extraction [A-Z2-7]* exists already" "$T_TMP"/x?.err | wc -l | tr -d ' ')" "3" \
    "one made them, the three others waited and reused them"
is "$(sql "SELECT (SELECT count(*) FROM source_lists) || ' ' || (SELECT count(*) FROM backgrounds) || ' ' || (SELECT count(*) FROM psfs)")" \
    "1 1 1" "one source_lists, backgrounds and psfs row"
src=$(sed -n 1p "$T_TMP/x1.out")
is "$(sql "SELECT md5 FROM source_lists")" "$(md5sum <"$src" | cut -d' ' -f1)" "the row's md5 is the file's"
is "$(ls "$(dirname "$src")" | grep -c '\.sources\.fits$')" "1" "one source list in the data root"

# ---- refmake's min_overlap ----
# (exposures 1 to 4: the first would have the name and date of the one above)
imsim -q --nexp 5 --size 200x200 --nstars 60 --seed 32 --outdir four >/dev/null 2>"$T_TMP/err"
ok $? "imsim: four more exposures"
imingest -q four/exp_001.fits four/exp_002.fits four/exp_003.fits four/exp_004.fits >"$T_TMP/ids" 2>"$T_TMP/err"
ok $? "imingested"
is "$(wc -w <"$T_TMP/ids" | tr -d ' ')" "4" "four ids"
IDS=$(tr '\n' ' ' <"$T_TMP/ids")
# shellcheck disable=SC2086
extract -q $IDS >/dev/null 2>"$T_TMP/err"
ok $? "extracted"
# the calibration's rows (no catalogue here) stand in for it
sql "INSERT INTO world_coordinates (image_id, provenance_id, header)
       SELECT image_id, provenance_id, 'END' FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO zero_points (image_id, provenance_id, zp, dzp)
       SELECT image_id, provenance_id, 25.0, 0.01 FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO psfs (image_id, provenance_id, filepath, md5)
       SELECT image_id, provenance_id, filepath || '.psf', md5 FROM source_lists ON CONFLICT DO NOTHING" >/dev/null
ok $? "every image has all its extraction products"
# footprints: boxes 0.1 deg in RA (at dec 2) by 0.1 deg, shifted east by
# 0, 0.01, 0.03 and 0.05 deg: they cover 100, 90, 70 and 50 % of the
# first's; the images in that order by quality (depth)
n=0
for i in $IDS; do
    sql "UPDATE images SET lim_mag_estimate = 24 - $n * 0.1, fwhm_estimate = 1.0,
           ra = 150.05 + s, dec = 2.05, ra_corner_00 = 150 + s, dec_corner_00 = 2.0,
           ra_corner_10 = 150.1 + s, dec_corner_10 = 2.0, ra_corner_11 = 150.1 + s, dec_corner_11 = 2.1,
           ra_corner_01 = 150 + s, dec_corner_01 = 2.1, minra = 150 + s, maxra = 150.1 + s,
           mindec = 2.0, maxdec = 2.1, radius_deg = 0.0708
         FROM (SELECT (ARRAY[0, 0.01, 0.03, 0.05])[$n + 1] AS s) AS v WHERE id = $i" >/dev/null
    n=$((n + 1))
done
is "$(sql "SELECT count(*) FROM images WHERE dec = 2.05")" "4" "footprints set"
ids_in_order() { echo "$IDS" | tr ' ' '\n' | head -"$1" | tr '\n' ' ' | sed 's/ $//'; }
overlap() { # overlap FRACTION N: a dry run with min_overlap FRACTION selects the first N
    refmake --refset O --target SIMFIELD --section S1 --filter r --dry-run \
        --set "referencing.criteria=[{\"min_overlap\":$1,\"min_images\":1,\"order\":\"quality\"}]" \
        >"$T_TMP/out" 2>"$T_TMP/err"
    like "$(cat "$T_TMP/out")" "criteria 0 \\([A-Z2-7]{20}\\): $2 images? selected" \
        "min_overlap $1: $2 image(s) selected"
    is "$(sed -n 's/^image \([0-9]*\).*/\1/p' "$T_TMP/out" | sort -n | tr '\n' ' ' | sed 's/ $//')" \
        "$(ids_in_order "$2" | tr ' ' '\n' | sort -n | tr '\n' ' ' | sed 's/ $//')" \
        "min_overlap $1: those covering at least that fraction of the first's box"
}
overlap 0.95 1
overlap 0.8 2
overlap 0.6 3
overlap 0.4 4
done_testing
