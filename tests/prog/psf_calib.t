#!/bin/sh
# extract's calibration step: with --refcat, the PSF (PSFEx .psf), the WCS
# (.head cards, TAN-SIP) and the zero point (source-list header) from an
# imsim exposure whose header WCS is 20", 0.5 deg and 0.5 % off, each with
# a sidecar naming the catalog; a rerun is a no-op; too few matches is exit 2
# with no products; an image without WCS is exit 1; with the database, the
# psfs, world_coordinates and zero_points rows and the image's first-look
# columns and footprint from the solved WCS.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 58

S=$T_TMP/sim
imsim --nexp 1 --size 384x384 --nstars 250 --seed 6 --wcs-offset 20 --wcs-rotation 0.5 \
    --wcs-scale 0.005 --set simulation.mag_min=16.5 --set simulation.mag_max=21.5 \
    --outdir "$S" --print-all >"$T_TMP/sim.out" 2>"$T_TMP/err"
ok $? "imsim exposure with a wrong header WCS"
IMG=$S/exp_000.fits
CAT=$(grep 'refcat' "$T_TMP/sim.out")

run_ok "extract --no-db --refcat" extract --no-db --refcat "$CAT" "$IMG"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "4" "four products: source list, background, PSF, WCS"
SRC=$(sed -n 1p "$T_TMP/out"); PSF=$(sed -n 3p "$T_TMP/out"); HEAD=$(sed -n 4p "$T_TMP/out")
like "$PSF" "^$S/exp_000\.[A-Z2-7]{8}\.psf$" "PSF model beside the image"
like "$HEAD" "^$S/exp_000\.[A-Z2-7]{8}\.head$" "WCS cards beside the image"
like "$(head -c 5760 "$PSF")" "EXTNAME = 'PSF_DATA" "the PSF file has a PSF_DATA table"
like "$(head -c 5760 "$PSF")" "POLNAME1= 'X_IMAGE" "with PSFEx's context keywords"
like "$(cat "$HEAD")" "CTYPE1  = 'RA---TAN-SIP'" "TAN-SIP solution"
like "$(cat "$HEAD")" "A_3_0" "third-order SIP terms"
like "$(tail -1 "$HEAD")" "^END" "the cards end with END"
like "$(cat "$PSF.json")" '"product_type": *"psf"' "PSF sidecar"
like "$(cat "$HEAD.json")" "refcat.fits" "the WCS sidecar names the catalog among its inputs"
like "$(cat "$T_TMP/err")" "astrometry: [0-9]+ matches, rms" "the astrometric solution is reported"
like "$(cat "$T_TMP/err")" "was off by (19|20|21)\.[0-9]\"" "the 20\" error of the header WCS is found"
hdr=$(head -c 28800 "$SRC" | tr -d '\000')
like "$hdr" "MAGZERO =" "zero point in the source list header"
like "$hdr" "LIMMAG  =" "limiting magnitude too"
like "$hdr" "TTYPE[0-9]+ *= 'FLUX_PSF" "FLUX_PSF column"
like "$hdr" "TTYPE[0-9]+ *= 'MAG_PSF" "MAG_PSF column"
zp=$(echo "$hdr" | sed -n 's/.*MAGZERO = *\([0-9.]*\).*/\1/p' | head -1)
tzp=$(head -c 28800 "$S/exp_000.truth.fits" | tr -d '\000' | sed -n 's/.*MAGZERO = *\([0-9.]*\).*/\1/p' | head -1)
ok $(awk -v a="$zp" -v b="$tzp" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.02) }' && echo 0 || echo 1) \
    "zero point $zp within 0.02 mag of the true $tzp"

before=$(md5sum "$SRC" "$PSF" "$HEAD" | md5sum)
run_ok "rerun" extract --no-db --refcat "$CAT" "$IMG"
is "$(sed -n 3,4p "$T_TMP/out")" "$PSF
$HEAD" "rerun prints the existing calibration products"
is "$(md5sum "$SRC" "$PSF" "$HEAD" | md5sum)" "$before" "and leaves them untouched"

# --update-header: the solved WCS written into the image's header (a copy
# of the exposure with its sidecar, so that the rest keeps the original)
U=$T_TMP/upd/exp_000.fits
mkdir -p "$T_TMP/upd" && cp "$IMG" "$IMG.json" "$T_TMP/upd/"
before=$(md5sum <"$U")
exit_is 1 "--update-header without a reference catalogue: exit 1" extract --no-db --update-header "$U"
like "$(cat "$T_TMP/err")" "no reference catalogue" "the message says so"
exit_is 1 "--update-header with the database: exit 1" extract --refcat "$CAT" --update-header "$U"
like "$(cat "$T_TMP/err")" "only with --no-db" "the message says why"
is "$(md5sum <"$U")" "$before" "the image untouched by the refusals"
run_ok "extract --no-db --update-header" extract --no-db --refcat "$CAT" --update-header "$U"
UHEAD=$(sed -n 4p "$T_TMP/out")
uhd=$(head -c 23040 "$U" | tr -d '\000')
like "$uhd" "HISTORY WCS solved by extract" "the image's header says where its WCS comes from"
like "$uhd" "CTYPE1  = 'RA---TAN-SIP'" "and holds the TAN-SIP solution"
card() { grep -o "$1 *= *[-+0-9.Ee]*" | head -1 | sed 's/.*= *//'; }
for k in CRVAL1 CRVAL2 CD1_1 CD2_2 A_2_0; do
    is "$(echo "$uhd" | card "$k")" "$(card "$k" <"$UHEAD")" "$k in the image's header as in the .head product"
done
after=$(md5sum <"$U")
run_ok "rerun with --update-header" extract --no-db --refcat "$CAT" --update-header "$U"
like "$(cat "$T_TMP/err")" "exists already" "the extraction is not redone"
is "$(md5sum <"$U")" "$after" "and the image is the same file as after the first update"

# too few matches: exit 2, nothing written under that provenance
exit_is 2 "min_matches above the catalog: exit 2" extract --no-db --refcat "$CAT" \
    --set extraction.astrometry.min_matches=5000 --outdir "$T_TMP/few" "$IMG"
like "$(cat "$T_TMP/err")" "fewer than the minimum 5000" "the message says why"
is "$(ls "$T_TMP/few" 2>/dev/null | wc -l | tr -d ' ')" "0" "no products written"

# no WCS to start from: exit 1
cp "$REAL/m13-orion/"*.fits.gz "$T_TMP/" 2>/dev/null
M13=$(ls "$T_TMP"/*.fits.gz 2>/dev/null | head -1)
exit_is 1 "an image without WCS: exit 1" extract --no-db --refcat "$CAT" "$M13"
like "$(cat "$T_TMP/err")" "no WCS" "the message says so"

# without a catalog: the PSF only
run_ok "no catalog" extract --no-db --outdir "$T_TMP/nocat" "$IMG"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "3" "source list, background, PSF"

# with the database
. "$SK_SRCDIR/tests/prog/dbtest.sh"
start_test_db
id=$(imingest "$IMG" 2>"$T_TMP/err")
ok $? "imingest (id $id)"
radec0=$(sql "SELECT ra || ' ' || dec FROM images WHERE id = $id")
run_ok "extract --refcat by id" extract --refcat "$CAT" "$id"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "4" "four products"
DPSF=$(sed -n 3p "$T_TMP/out")
case "$DPSF" in "$SKYSTACK_DATA"/*.psf) ok 0 "PSF in the data root";; *) ok 1 "PSF in the data root ($DPSF)";; esac
is "$(sql "SELECT count(*) FROM psfs") $(sql "SELECT count(*) FROM world_coordinates") $(sql "SELECT count(*) FROM zero_points")" \
    "1 1 1" "one psfs, world_coordinates and zero_points row"
is "$(sql "SELECT md5 FROM psfs")" "$(md5sum <"$DPSF" | cut -d' ' -f1)" "psfs row md5 matches the file"
like "$(sql "SELECT header FROM world_coordinates")" "RA---TAN-SIP" "the WCS cards stored"
q=$(sql "SELECT (rms_arcsec > 0 AND rms_arcsec < 0.1 AND num_matches >= 20)::text FROM world_coordinates")
is "$q" "true" "rms and matches recorded"
q=$(sql "SELECT (zp > 20 AND dzp > 0 AND dzp < 0.02 AND lim_mag > zp - 10 AND cardinality(aper_cors) = 4)::text FROM zero_points")
is "$q" "true" "zp, dzp, limit and the four aperture corrections recorded"
q=$(sql "SELECT (abs(zero_point_estimate - (SELECT zp FROM zero_points)) < 1e-9 AND lim_mag_estimate > 20 AND abs(fwhm_estimate - (SELECT fwhm_arcsec FROM psfs)) < 1e-9 AND fwhm_estimate > 0.4 AND fwhm_estimate < 2)::text FROM images WHERE id = $id")
is "$q" "true" "first-look columns: zero point, limiting magnitude, the PSF's FWHM (arcsec)"
radec1=$(sql "SELECT ra || ' ' || dec FROM images WHERE id = $id")
moved=$(echo "$radec0 $radec1" | awk '{ d2r = 3.14159265358979 / 180; dx = ($3 - $1) * cos($2 * d2r); dy = $4 - $2; printf "%.1f", sqrt(dx * dx + dy * dy) * 3600 }')
ok $(awk -v m="$moved" 'BEGIN { exit !(m > 15 && m < 25) }' && echo 0 || echo 1) \
    "the image centre moved by $moved\" to the solved position (the header was 20\" off)"
run_ok "rerun by id" extract --refcat "$CAT" "$id"
is "$(sql "SELECT count(*) FROM zero_points")" "1" "no new rows"
done_testing
