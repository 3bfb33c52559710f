#!/bin/sh
# extract with the database: an ingested imsim exposure extracted by id,
# products in the data root under the extraction provenance, one row each in
# source_lists and backgrounds, the image's quality columns filled; rerun
# (by id or by path) is a no-op printing the same products; unknown ids and
# unregistered files are refused without changing anything.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 30
start_test_db

imsim --nexp 1 --size 256x256 --nstars 150 --seed 9 --outdir "$T_TMP/sim" >/dev/null 2>"$T_TMP/err"
ok $? "imsim exposure"
id=$(imingest "$T_TMP/sim/exp_000.fits" 2>"$T_TMP/err")
ok $? "imingest it (id $id)"
sed 's/^/#   /' "$T_TMP/err" | head -5

rows() { sql "SELECT (SELECT count(*) FROM source_lists) || ' ' || (SELECT count(*) FROM backgrounds)"; }

run_ok "extract by id" extract --regions "$id"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "4" "four products printed (with the PSF)"
SRC=$(sed -n 1p "$T_TMP/out"); BKG=$(sed -n 2p "$T_TMP/out")
case "$SRC" in "$SKYSTACK_DATA"/*) ok 0 "products in the data root";; *) ok 1 "products in the data root ($SRC)";; esac
[ -s "$SRC" ] && [ -s "$SRC.json" ] && [ -s "$BKG" ] && [ -s "$BKG.json" ]; ok $? "files and sidecars exist"
is "$(rows)" "1 1" "one source_lists and one backgrounds row"
prov=$(sql "SELECT provenance_id FROM source_lists")
like "$(cat "$SRC.json")" "\"id\": *\"$prov\"" "sidecar and row name the same provenance"
is "$(sql "SELECT process FROM provenances WHERE id = '$prov'")" "extraction" "the provenance is stored as an extraction"
is "$(sql "SELECT count(*) FROM provenance_upstreams WHERE downstream_id = '$prov'")" "1" "with the image's provenance as upstream"
rel=$(sql "SELECT filepath FROM source_lists")
is "$SKYSTACK_DATA/$rel" "$SRC" "row path relative to the data root"
is "$(sql "SELECT md5 FROM source_lists")" "$(md5sum <"$SRC" | cut -d' ' -f1)" "row md5 matches the file"
n=$(sql "SELECT num_sources FROM source_lists")
ok $([ "$n" -gt 20 ] && echo 0 || echo 1) "num_sources recorded ($n)"
q=$(sql "SELECT (bkg_rms_estimate > 0 AND bkg_mean_estimate > 0 AND fwhm_estimate > 0.5 AND fwhm_estimate < 3)::text FROM images WHERE id = $id")
is "$q" "true" "image quality columns filled (background, rms, FWHM in arcsec)"

before=$(md5sum "$SRC" "$BKG" | md5sum)
run_ok "rerun by id" extract --regions "$id"
is "$(sed -n 1p "$T_TMP/out")" "$SRC" "rerun prints the existing source list"
is "$(rows)" "1 1" "no new rows"
is "$(md5sum "$SRC" "$BKG" | md5sum)" "$before" "files untouched"
stored=$(sql "SELECT filepath FROM images WHERE id = $id")
run_ok "rerun by stored path" extract "$SKYSTACK_DATA/$stored"
is "$(sed -n 1p "$T_TMP/out")" "$SRC" "the path finds the same products"

like "$(sql "SELECT inputs::text FROM source_lists")" '"role": "image"' "the row records its inputs (source_lists.inputs)"
python3 -c 'import struct,sys; h="".join(c.ljust(80) for c in ["SIMPLE  = %20s"%"T","BITPIX  = %20d"%-32,"NAXIS   = %20d"%2,"NAXIS1  = %20d"%256,"NAXIS2  = %20d"%256,"END"]).ljust(2880).encode(); d=struct.pack(">f",1.0)*65536; open(sys.argv[1],"wb").write(h+d+b"\0"*(-len(d)%2880))' "$T_TMP/w.fits"
exit_is 1 "a weight map the registered extraction was not made with: refused (exit 1)" extract --weight "$T_TMP/w.fits" "$id"
like "$(cat "$T_TMP/err")" "weight .*w\.fits" "the message names the weight"
is "$(rows)" "1 1" "no rows added"
run_ok "another threshold: another provenance" extract --threshold 8 "$id"
is "$(rows)" "2 2" "a second row of each"

exit_is 2 "unknown id: exit 2" extract 999999
like "$(cat "$T_TMP/err")" "999999" "the message names the id"
exit_is 2 "unregistered file: exit 2" extract "$T_TMP/sim/exp_000.fits"
is "$(rows)" "2 2" "refusals add no rows"
done_testing
