#!/bin/sh
# extract --detect (dual-image mode) on two imsim bands of one field on one
# grid: the detections, positions and shapes of the detection image, the
# detection image an input of the products and of their provenance, reuse,
# and the refusals (another grid, another WCS, a missing file)
# with their exit codes.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 17

band() { # band DIR NOISE_SEED SED_MAG [imsim options]
    d=$1; ns=$2; sm=$3; shift 3
    imsim --nexp 1 --size 256x256 --nstars 150 --seed 4 --noise-seed "$ns" --sed-mag "$sm" \
        --dither 0 --rotation 0 --outdir "$T_TMP/$d" "$@" >/dev/null 2>>"$T_TMP/imsim.err"
}
band a 11 0 && band b 12 0.6 && band c 13 -0.6 && band small 12 0.6 --size 256x200 &&
    band shifted 12 0.6 --wcs-offset 2
ok $? "imsim: bands of one field (one seed, a noise seed each), one of another size, one with a shifted WCS"
A=$T_TMP/a/exp_000.fits; B=$T_TMP/b/exp_000.fits; C=$T_TMP/c/exp_000.fits
cmp -s "$A" "$B"; ok $([ $? -ne 0 ] && echo 0 || echo 1) "the bands differ (noise and colours)"

run_ok "single-image extraction of the detection image" extract --no-db --regions --outdir "$T_TMP/single" "$A"
REG_A=$(sed -n 3p "$T_TMP/out")
run_ok "dual-image extraction: detect on band a, measure band b" \
    extract --no-db --regions --detect "$A" --outdir "$T_TMP/dual" "$B"
SRC=$(sed -n 1p "$T_TMP/out"); REG=$(sed -n 3p "$T_TMP/out")
like "$SRC" "^$T_TMP/dual/exp_000\.[A-Z2-7]{8}\.sources\.fits$" "the source list is named after the measured image"
grep '^ellipse(' "$REG_A" | cut -d'#' -f1 >"$T_TMP/geom_a"
grep '^ellipse(' "$REG" | cut -d'#' -f1 >"$T_TMP/geom_dual"
n=$(wc -l <"$T_TMP/geom_a" | tr -d ' ')
ok $([ "$n" -gt 30 ] && cmp -s "$T_TMP/geom_a" "$T_TMP/geom_dual" && echo 0 || echo 1) \
    "the same $n sources at the same positions with the same shapes as on the detection image"
grep -aq "DETIMAGE= 'exp_000.fits'" "$SRC"; ok $? "the source list's header names the detection image (DETIMAGE)"
like "$(tr -d ' \n' <"$SRC.json")" '"role":"detection"' "the detection image is an input in the sidecar"
like "$(tr -d ' \n' <"$SRC.json")" '"detection":\{"md5":"[0-9a-f]{32}"\}' "its md5 is a provenance parameter"

run_ok "rerun" extract --no-db --detect "$A" --outdir "$T_TMP/dual" "$B"
like "$(cat "$T_TMP/err")" "exists already" "the products are reused"
run_ok "another detection image" extract --no-db --detect "$C" --outdir "$T_TMP/dual" "$B"
p1=$(basename "$SRC" | cut -d. -f2); p2=$(basename "$(sed -n 1p "$T_TMP/out")" | cut -d. -f2)
ok $([ "$p1" != "$p2" ] && echo 0 || echo 1) "another detection image, another provenance ($p1, $p2)"

exit_is 1 "a detection image of another size: exit 1" \
    extract --no-db --detect "$T_TMP/small/exp_000.fits" --outdir "$T_TMP/bad" "$B"
like "$(cat "$T_TMP/err")" "small/exp_000.fits.*256x200.*b/exp_000.fits.*256x256" "the message names both files and sizes"
exit_is 1 "a detection image whose WCS is 2 arcsec off: exit 1" \
    extract --no-db --detect "$T_TMP/shifted/exp_000.fits" --outdir "$T_TMP/bad" "$B"
exit_is 2 "a detection image that does not exist: exit 2" \
    extract --no-db --detect "$T_TMP/none.fits" --outdir "$T_TMP/bad" "$B"
