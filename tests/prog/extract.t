#!/bin/sh
# extract without a database: products and sidecars beside the image (or in
# --outdir), stdout lists them, rerun with the same provenance is a no-op,
# output identical for any thread count, a critical parameter changes the
# provenance and a non-critical one does not, ds9 regions in 1-based pixels,
# stdin, a real image (EMMI, gzipped), and errors with their exit codes.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 43

S=$T_TMP/sim
imsim --nexp 1 --size 256x256 --nstars 150 --seed 4 --outdir "$S" >/dev/null 2>"$T_TMP/err"
ok $? "imsim exposure for the tests"
IMG=$S/exp_000.fits

run_ok "extract --no-db --regions" extract --no-db --regions "$IMG"
n=$(wc -l <"$T_TMP/out" | tr -d ' ')
is "$n" "4" "four products printed: source list, background, regions, PSF"
SRC=$(sed -n 1p "$T_TMP/out"); BKG=$(sed -n 2p "$T_TMP/out"); REG=$(sed -n 3p "$T_TMP/out")
PSF=$(sed -n 4p "$T_TMP/out")
like "$SRC" "^$S/exp_000\.[A-Z2-7]{8}\.sources\.fits$" "source list beside the image, named with the provenance prefix"
like "$BKG" "\.bkg\.fits$" "background product beside it"
like "$REG" "\.reg$" "region file"
[ -s "$SRC.json" ] && [ -s "$BKG.json" ]; ok $? "both FITS products have sidecars"
like "$(cat "$SRC.json")" '"process": *"extraction"' "sidecar provenance is an extraction"
like "$(cat "$SRC.json")" '"process": *"preprocessing"' "with the image's provenance upstream"
like "$(cat "$SRC.json")" '"threshold_sigma"' "critical parameters recorded"
prefix=$(basename "$SRC" | cut -d. -f2)
like "$(cat "$SRC.json")" "\"id\": *\"$prefix" "file name prefix = provenance id prefix"
head -4 "$REG" >"$T_TMP/head"
like "$(cat "$T_TMP/head")" "^# Region file format: DS9" "ds9 header"
like "$(cat "$T_TMP/head")" "image" "image coordinates"
nreg=$(grep -c '^ellipse(' "$REG")
ok $([ "$nreg" -gt 50 ] && echo 0 || echo 1) "regions for the detections ($nreg)"

before=$(md5sum "$SRC" "$BKG" "$REG" | md5sum)
sleep 1
run_ok "rerun with the same provenance" extract --no-db --regions "$IMG"
is "$(cat "$T_TMP/out")" "$SRC
$BKG
$REG
$PSF" "rerun prints the existing products"
is "$(md5sum "$SRC" "$BKG" "$REG" | md5sum)" "$before" "rerun leaves the products untouched"
like "$(cat "$T_TMP/err")" "exists already" "rerun says so on stderr"

# threads: identical bytes; --threads is not critical
run_ok "1 thread into another directory" extract --no-db --threads 1 --outdir "$T_TMP/t1" "$IMG"
run_ok "2 threads into another directory" extract --no-db --threads 2 --outdir "$T_TMP/t2" "$IMG"
a=$(sed -n 1p "$T_TMP/out")
b=$(echo "$a" | sed "s|$T_TMP/t2|$T_TMP/t1|")
cmp -s "$a" "$b"; ok $? "source lists identical for 1 and 2 threads"
is "$(basename "$a" | cut -d. -f2)" "$prefix" "thread count does not enter the provenance"

# a critical parameter changes the provenance and the file names
run_ok "another threshold" extract --no-db --threshold 7 --outdir "$T_TMP/t3" "$IMG"
p3=$(basename "$(sed -n 1p "$T_TMP/out")" | cut -d. -f2)
ok $([ "$p3" != "$prefix" ] && echo 0 || echo 1) "threshold change gives another provenance ($p3)"
n3=$(grep -c . "$T_TMP/out")
is "$n3" "3" "without --regions: three products (with the PSF)"

# the background product: mesh only by default, full maps on request
run_ok "--full-background" extract --no-db --full-background --outdir "$T_TMP/t5" "$IMG"
full=$(sed -n 2p "$T_TMP/out")
small=$(wc -c <"$BKG"); big=$(wc -c <"$full")
ok $([ "$big" -gt $((256 * 256 * 8)) ] && [ "$small" -lt $((256 * 256 * 4)) ] && echo 0 || echo 1) \
    "full maps ($big bytes) only with --full-background (mesh: $small bytes)"

# stdin
echo "$IMG" | extract --no-db --outdir "$T_TMP/t4" - >"$T_TMP/out" 2>"$T_TMP/err"
ok $? "paths on stdin with -"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "3" "products of the stdin image printed"

# a real image: EMMI galaxies, gzipped, no WCS, no weight map
cp "$REAL/emmi/galaxies.fits.gz" "$T_TMP/galaxies.fits.gz"
run_ok "real EMMI image (gzipped, relative weights)" extract --no-db --regions "$T_TMP/galaxies.fits.gz"
g=$(grep -c '^ellipse(' "$(sed -n 3p "$T_TMP/out")")
ok $([ "$g" -gt 300 ] && echo 0 || echo 1) "EMMI: $g detections"

# errors
exit_is 2 "missing file: exit 2" extract --no-db "$T_TMP/nothing.fits"
like "$(cat "$T_TMP/err")" "nothing.fits" "the message names the file"
echo "not a FITS file" >"$T_TMP/junk.fits"
exit_is 1 "not FITS: exit 1" extract --no-db "$T_TMP/junk.fits"
exit_is 1 "unknown configuration key: exit 1" extract --no-db --set extraction.detection.tresh=3 "$IMG"
exit_is 1 "wrong type: exit 1" extract --no-db --set extraction.background.mesh_px=big "$IMG"
exit_is 1 "bad filter name: exit 1" extract --no-db --set extraction.detection.filter=tophat "$IMG"
exit_is 1 "--outdir needs --no-db" extract --outdir "$T_TMP/x" "$IMG"
exit_is 1 "no image: exit 1" extract --no-db
exit_is 1 "ids need the database" extract --no-db 12
ls "$T_TMP"/junk* | grep -q sources; ok $([ $? -ne 0 ] && echo 0 || echo 1) "a failed image leaves no product"
run_ok "--dump-config" extract --dump-config
like "$(cat "$T_TMP/out")" '"deblend_contrast"' "--dump-config shows the extraction section"
done_testing
