#!/bin/sh
# extract with the database in dual-image mode (--detect) and with
# --tpv-head: two bands of one field ingested, chi2det's detection image of
# them (a file); each band measured by id on it: a source list row for each
# measured image whose inputs hold the detection image (role detection, its
# md5), whose provenance names its md5 and has the detection image's
# provenance upstream; the same positions in both bands; with a reference
# catalogue and --tpv-head the .tpv.head beside the .head in the data root,
# the cards wcstpv makes of it; a rerun reuses the rows and remakes a
# missing .tpv.head; a detection image on another grid is refused without
# rows.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 22
start_test_db
cd "$T_TMP" || exit 1

band() { # band DIR NOISE_SEED SED_MAG [imsim options]
    d=$1; ns=$2; sm=$3; shift 3
    imsim -q --nexp 1 --size 256x256 --nstars 150 --seed 4 --noise-seed "$ns" --sed-mag "$sm" \
        --dither 0 --rotation 0 --outdir "$d" "$@" >/dev/null 2>>imsim.err
}
band a 11 0.5 --set simulation.filter=g && band b 12 -0.5 --set simulation.filter=i &&
    band small 12 0 --size 256x200
ok $? "imsim: two bands of one field, and an image of another size"
ida=$(imingest a/exp_000.fits 2>err) && idb=$(imingest b/exp_000.fits 2>>err)
ok $? "imingest both (ids $ida $idb)"
run_ok "chi2det: the detection image of the two bands" chi2det --fwhm 3 -o det.fits a/exp_000.fits b/exp_000.fits
DETMD5=$(md5sum <det.fits | cut -d' ' -f1)

rows() { sql "SELECT count(*) FROM source_lists"; }
run_ok "extract --detect by id (database), with --regions" extract --regions --detect det.fits "$ida" "$idb"
SRCA=$(grep '\.sources\.fits$' out | sed -n 1p); SRCB=$(grep '\.sources\.fits$' out | sed -n 2p)
case "$SRCA$SRCB" in "$SKYSTACK_DATA"/*"$SKYSTACK_DATA"/*) ok 0 "the source lists are in the data root";;
    *) ok 1 "the source lists are in the data root ($SRCA $SRCB)";; esac
is "$(rows)" "2" "a source_lists row for each measured image"
is "$(sql "SELECT count(DISTINCT image_id) FROM source_lists WHERE image_id IN ($ida, $idb)")" "2" \
    "the rows are those of the two images"
ins=$(sql "SELECT inputs::text FROM source_lists WHERE image_id = $idb")
like "$ins" "\"role\": \"detection\"" "the row's inputs hold the detection image"
like "$ins" "\"md5\": \"$DETMD5\"" "with its md5"
prov=$(sql "SELECT provenance_id FROM source_lists WHERE image_id = $idb")
like "$(sql "SELECT parameters::text FROM provenances WHERE id = '$prov'")" "\"detection\": \\{\"md5\": \"$DETMD5\"\\}" \
    "the stored provenance names the detection image's md5"
detprov=$(sed -n 's/.*"id": *"\([A-Z2-7]*\)".*/\1/p' det.fits.json | head -1)
is "$(sql "SELECT count(*) FROM provenance_upstreams WHERE downstream_id = '$prov' AND upstream_id = '$detprov'")" "1" \
    "the detection image's provenance is an upstream"
grep -aq "DETIMAGE= 'det.fits'" "$SRCB"; ok $? "the source list's header names the detection image"
geom() { grep '^ellipse(' "$1" | cut -d'#' -f1; }
REGA=$(grep '\.reg$' out | sed -n 1p); REGB=$(grep '\.reg$' out | sed -n 2p)
geom "$REGA" >ga; geom "$REGB" >gb
n=$(wc -l <ga | tr -d ' ')
ok $([ "$n" -gt 30 ] && cmp -s ga gb && echo 0 || echo 1) "both bands measured at the same $n detections"

run_ok "extract --detect (band a's image) --refcat --tpv-head by id" \
    extract --refcat a/refcat.fits --tpv-head --detect a/exp_000.fits "$idb"
TPVA=$(grep '\.tpv\.head$' out | sed -n 1p); HEADA=$(grep -v '\.tpv\.head$' out | grep '\.head$' | sed -n 1p)

case "$TPVA" in "$SKYSTACK_DATA"/*.tpv.head) ok 0 "the .tpv.head is in the data root";;
    *) ok 1 "the .tpv.head is in the data root ($TPVA)";; esac
wcstpv -o ref.tpv.head "$HEADA" >/dev/null && cmp -s "$TPVA" ref.tpv.head
ok $? "the cards wcstpv makes of the .head"
[ -s "$TPVA.json" ]; ok $? "with its sidecar"

rm -f "$TPVA" "$TPVA.json"
run_ok "rerun" extract --refcat a/refcat.fits --tpv-head --detect a/exp_000.fits "$idb"
[ -s "$TPVA" ] && is "$(rows)" "3" "the rows reused, the missing .tpv.head made again" ||
    ok 1 "the missing .tpv.head made again"

exit_is 1 "a detection image of another size: exit 1" extract --detect small/exp_000.fits "$idb"
like "$(cat err)" "small/exp_000.fits.*256x200" "the message names the file and its size"
is "$(rows)" "3" "no row added"
done_testing
