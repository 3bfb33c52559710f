#!/bin/sh
# coadd without a database: imsim exposures and their extraction products
# beside them, the coadd file with SCI/WGT/FLG/NIMG and its header, the
# provenance sidecar, reuse of an existing coadd (any input order,
# duplicates once), identical bits for any thread count, the grids, stdin,
# extraction of the coadd, and refusals with their exit codes.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 62

cd "$T_TMP" || exit 1
S=$T_TMP/sim
imsim -q --nexp 4 --size 300x300 --nstars 120 --seed 11 --outdir "$S" >/dev/null 2>"$T_TMP/err"
ok $? "four imsim exposures"
IMGS="$S/exp_000.fits $S/exp_001.fits $S/exp_002.fits $S/exp_003.fits"
# shellcheck disable=SC2086
extract -q --no-db $IMGS >/dev/null 2>"$T_TMP/err"
ok $? "extract --no-db on them (background products beside them)"
# zero points: the true ones, from the truth tables
zp() { grep -ao "MAGZERO = *[-0-9.E+]*" "$S/exp_00$1.truth.fits" | head -1 | awk -F= '{ printf "%s", $2 + 0 }'; }
ZPS="$(zp 0),$(zp 1),$(zp 2),$(zp 3)"
key() { # key FILE KEYWORD: value of the first such 80-character header card
    k=$(printf '%-8.8s' "$2")
    grep -ao "$k= .\{70\}" "$1" | head -1 | cut -c11- | sed "s| /.*||; s/'//g; s/^ *//; s/ *\$//"
}
O="$T_TMP/out1"
mkdir -p "$O"

# shellcheck disable=SC2086
run_ok "coadd --no-db" coadd --no-db --no-psf --zero-points "$ZPS" --outdir "$O" $IMGS
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "1" "one path printed"
C=$(cat "$T_TMP/out")
like "$C" "^$O/coadd-[A-Z2-7]{8}-[0-9a-f]{12}\.fits\$" "named after its provenance and input set"
[ -s "$C" ] && [ -s "$C.json" ]; ok $? "coadd and sidecar written"
for e in SCI WGT FLG NIMG; do
    grep -aq "EXTNAME = '$e" "$C"; ok $? "extension $e"
done
is "$(key "$C" NCOMBINE)" "4" "NCOMBINE 4"
is "$(key "$C" COMBINET)" "CLIPPED" "COMBINET CLIPPED (the default)"
is "$(key "$C" RESAMPT)" "LANCZOS3" "RESAMPT LANCZOS3"
is "$(key "$C" FILTER)" "r" "FILTER r"
is "$(key "$C" EXPTIME | awk '{ print $1 + 0 }')" "1200" "EXPTIME the sum of 4 x 300 s"
is "$(key "$C" MJD-OBS | awk '{ printf "%.4f", $1 }')" "$(key "$S/exp_000.fits" MJD-OBS | awk '{ printf "%.4f", $1 }')" "MJD-OBS = start of the first"
is "$(key "$C" MAGZERO | awk '{ printf "%.4f", $1 }')" "$(zp 3 | awk '{ printf "%.4f", $1 }')" "MAGZERO = the last (alignment) input's"
grep -aq "surface brightness and total flux are conserved" "$C"; ok $? "flux convention stated in the header"
like "$(cat "$C.json")" '"process": *"coaddition"' "sidecar: a coaddition provenance"
like "$(cat "$C.json")" '"process": *"extraction"' "with the inputs' extraction provenance upstream"
like "$(cat "$C.json")" '"process": *"preprocessing"' "and their preprocessing provenance"
is "$(grep -c '"role": "image"' "$C.json")" "4" "sidecar lists the four input images"
is "$(grep -c '"role": "background"' "$C.json")" "4" "and their background products"
is "$(grep -c '"role": "zero_point"' "$C.json")" "4" "and their zero points (--zero-points)"
is "$(grep -c '"md5"' "$C.json")" "14" "each input with its md5 (and the coadd's and its quick-look's)"
ls "$O" | grep -q "\.sources\.fits\$"; ok $? "extract ran on the coadd (source list beside it)"

before=$(md5sum <"$C")
run_ok "rerun, inputs in another order, one twice" coadd --no-db --no-psf --outdir "$O" \
    --zero-points "$(zp 2),$(zp 0),$(zp 3),$(zp 1),$(zp 0)" \
    "$S/exp_002.fits" "$S/exp_000.fits" "$S/exp_003.fits" "$S/exp_001.fits" "$S/exp_000.fits"
is "$(cat "$T_TMP/out")" "$C" "the same coadd is returned"
like "$(cat "$T_TMP/err")" "exists already" "and not rebuilt (stderr says so)"
is "$(md5sum <"$C")" "$before" "the file is untouched"

# threads and bands: identical bits; neither enters the provenance
# shellcheck disable=SC2086
run_ok "1 thread" coadd --no-db --no-psf --no-extraction --threads 1 --zero-points "$ZPS" -o "$T_TMP/t1.fits" $IMGS
# shellcheck disable=SC2086
run_ok "2 threads, bands of 50 rows" coadd --no-db --no-psf --no-extraction --threads 2 --band-rows 50 \
    --zero-points "$ZPS" -o "$T_TMP/t2.fits" $IMGS
cmp -s "$T_TMP/t1.fits" "$T_TMP/t2.fits"; ok $? "identical files for 1 and 2 threads and other bands"
cmp -s "$T_TMP/t1.fits" "$C"; ok $? "and identical to the first coadd"
a=$(grep -o '"id": *"[A-Z2-7]*"' "$T_TMP/t1.fits.json" | head -1)
b=$(grep -o '"id": *"[A-Z2-7]*"' "$C.json" | head -1)
is "$a" "$b" "same provenance"

# stdin, another method: another provenance
printf '%s\n' $IMGS | coadd --no-db --no-psf --no-extraction --method median --zero-points "$ZPS" \
    -o "$T_TMP/median.fits" - >"$T_TMP/out" 2>"$T_TMP/err"
ok $? "paths on stdin, median"
is "$(key "$T_TMP/median.fits" COMBINET)" "MEDIAN" "COMBINET MEDIAN"
c=$(grep -o '"id": *"[A-Z2-7]*"' "$T_TMP/median.fits.json" | head -1)
ok $([ "$c" != "$b" ] && echo 0 || echo 1) "another method, another provenance"

# grids
# shellcheck disable=SC2086
run_ok "tan grid" coadd --no-db --no-psf --no-extraction --method mean --grid tan --center 150.1,2.2 \
    --size 200x150 --scale 0.3 --zero-points "$ZPS" -o "$T_TMP/tan.fits" $IMGS
is "$(key "$T_TMP/tan.fits" NAXIS1) $(key "$T_TMP/tan.fits" NAXIS2)" "200 150" "tan grid of the size asked"
is "$(key "$T_TMP/tan.fits" CTYPE1)" "RA---TAN" "a TAN projection"
# shellcheck disable=SC2086
run_ok "union grid" coadd --no-db --no-psf --no-extraction --method mean --grid union \
    --zero-points "$ZPS" -o "$T_TMP/union.fits" $IMGS
w=$(key "$T_TMP/union.fits" NAXIS1)
ok $([ "$w" -gt 300 ] && echo 0 || echo 1) "union grid wider than one dithered input ($w px)"

# refusals
exit_is 2 "a missing file: exit 2" coadd --no-db --no-psf --zero-points 25 "$T_TMP/none.fits"
like "$(cat "$T_TMP/err")" "none.fits" "the message names it"
exit_is 1 "an input without a zero point: exit 1" coadd --no-db --no-psf "$S/exp_000.fits"
like "$(cat "$T_TMP/err")" "zero point" "the message says what is missing"
# a copy of an exposure with its background product but no PSF
cp "$S/exp_000.fits" "$T_TMP/nopsf.fits"; cp "$S/exp_000.fits.json" "$T_TMP/nopsf.fits.json"
for b in "$S"/exp_000.*.bkg.fits; do cp "$b" "$T_TMP/nopsf.${b#"$S"/exp_000.}"; done
exit_is 1 "an input without its PSF: exit 1" coadd --no-db --zero-points 25 "$T_TMP/nopsf.fits"
like "$(cat "$T_TMP/err")" "nopsf.fits: no PSF" "names the image and the product"
cp "$S/exp_000.fits" "$T_TMP/lonely.fits"
exit_is 1 "an input without its background: exit 1" coadd --no-db --no-psf --zero-points 25 "$T_TMP/lonely.fits"
like "$(cat "$T_TMP/err")" "lonely.fits: no background" "names the image"
exit_is 1 "a list that does not match the inputs: exit 1" coadd --no-db --no-psf --zero-points 25,25 "$S/exp_000.fits"
exit_is 1 "no inputs: exit 1" coadd --no-db
exit_is 1 "an unknown method: exit 1" coadd --no-db --no-psf --method average --zero-points 25 "$S/exp_000.fits"
exit_is 1 "a place without the database: exit 1" coadd --no-db --ra 150 --dec 2 --filter r
imsim -q --nexp 1 --size 128x128 --nstars 20 --seed 12 --set simulation.filter=g --outdir "$T_TMP/g" >/dev/null 2>&1
extract -q --no-db "$T_TMP/g/exp_000.fits" >/dev/null 2>&1
exit_is 1 "different filters: exit 1" coadd --no-db --no-psf --zero-points 25,25 "$S/exp_000.fits" "$T_TMP/g/exp_000.fits"
like "$(cat "$T_TMP/err")" "filter '[gr]' differs from '[gr]'" "the message names the filters"
n=$(ls "$T_TMP" | grep -c '^coadd-')
is "$n" "0" "refusals leave no coadd behind"
# zero points and WCS from a calibrating extraction (with the reference
# catalog): the source lists' MAGZERO and the .head WCS beside the images
mkdir -p "$T_TMP/cal"
for k in 0 1 2 3; do cp "$S/exp_00$k.fits" "$S/exp_00$k.fits.json" "$T_TMP/cal/"; done
# shellcheck disable=SC2086
extract -q --no-db --set "extraction.astrometry.refcat=$S/refcat.fits" "$T_TMP"/cal/exp_00?.fits >/dev/null 2>&1
cal=""; last=""
for k in 0 1 2 3; do # the exposures extract could calibrate
    if ls "$T_TMP"/cal/exp_00$k.*.head >/dev/null 2>&1; then cal="$cal $T_TMP/cal/exp_00$k.fits"; last=$k; fi
done
src=$(ls "$T_TMP"/cal/exp_00"$last".*.sources.fits 2>/dev/null | head -1)
zsrc=$(grep -ao "MAGZERO = *[-0-9.E+]*" "$src" 2>/dev/null | head -1 | awk -F= '{ printf "%.4f", $2 }')
if [ -n "$zsrc" ] && [ "$(echo $cal | wc -w)" -ge 2 ]; then
    # shellcheck disable=SC2086
    run_ok "zero points and WCS from the extraction products" coadd --no-db --no-psf --no-extraction \
        --set "extraction.astrometry.refcat=$S/refcat.fits" -o "$T_TMP/cal.fits" $cal
    is "$(key "$T_TMP/cal.fits" MAGZERO | awk '{ printf "%.4f", $1 }')" "$zsrc" "MAGZERO: the last input's calibrated zero point"
else
    ok 1 "extract --no-db calibrated at least two exposures (zero point and .head WCS): $(echo $cal | wc -w)"
    skip 1 "the coadd of calibrated exposures needs two of them"
fi
run_ok "--dump-config" coadd --dump-config
like "$(cat "$T_TMP/out")" '"clip_ampfrac"' "the coaddition section is printed"
done_testing
