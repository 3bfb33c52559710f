#!/bin/sh
# --weight-hdu and --mask-hdu of extract and coadd: a file whose noise and
# mask planes are HDUs of names no finder knows (SKYWT, BADPIX) gives, with
# the options, the products of the same file with WGT and FLG; without
# them the noise is not found; a missing HDU is refused naming it.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 13

cd "$T_TMP" || exit 1
imsim -q --nexp 2 --size 200x200 --nstars 100 --seed 9 --no-defects --outdir std >/dev/null 2>"$T_TMP/err"
ok $? "imsim: two exposures with WGT and FLG"
# the same files with the planes renamed: the EXTNAME cards rewritten in place
mkdir -p odd
for i in 0 1; do
    perl -0777 -pe "s/EXTNAME = 'WGT     '/EXTNAME = 'SKYWT   '/; s/EXTNAME = 'FLG     '/EXTNAME = 'BADPIX  '/" \
        "std/exp_00$i.fits" >"odd/exp_00$i.fits"
done
grep -aq "EXTNAME = 'SKYWT   '" odd/exp_000.fits && ! grep -aq "EXTNAME = 'WGT     '" odd/exp_000.fits
ok $? "the weight plane is HDU SKYWT, the flags HDU BADPIX"

geom() { grep '^ellipse(' "$1" | cut -d'#' -f1; }
run_ok "extract the original" extract --no-db --regions std/exp_000.fits
geom "$(sed -n 3p "$T_TMP/out")" >std.geom
run_ok "extract --weight-hdu SKYWT --mask-hdu BADPIX" \
    extract --no-db --regions --weight-hdu SKYWT --mask-hdu BADPIX odd/exp_000.fits
geom "$(sed -n 3p "$T_TMP/out")" >odd.geom
cp "$T_TMP/out" "$T_TMP/out.odd0"
n=$(wc -l <std.geom | tr -d ' ')
ok $([ "$n" -gt 20 ] && cmp -s std.geom odd.geom && echo 0 || echo 1) \
    "the same $n sources, positions and shapes as with WGT"
like "$(tr -d ' \n' <"$(sed -n 1p "$T_TMP/out").json")" '"weight_hdu":"SKYWT"' "the HDU is in the provenance"
run_ok "extract without --weight-hdu" extract --no-db --regions --outdir plain odd/exp_000.fits
geom "$(sed -n 3p "$T_TMP/out")" >plain.geom
cmp -s std.geom plain.geom; ok $([ $? -ne 0 ] && echo 0 || echo 1) "without it the noise plane is not found: other detections"
exit_is 1 "a weight HDU that is not there: exit 1" extract --no-db --weight-hdu NOSUCH --outdir bad odd/exp_000.fits
like "$(cat "$T_TMP/err")" "NOSUCH" "the message names the HDU"

# coadd: the inputs' noise and masks from the named HDUs (their
# backgrounds given: they were extracted with --weight-hdu, another provenance)
B0=$(sed -n 2p "$T_TMP/out.odd0")
extract -q --no-db --weight-hdu SKYWT --mask-hdu BADPIX odd/exp_001.fits >odd1.out &&
    extract -q --no-db std/exp_001.fits >/dev/null
ok $? "extract the second exposure of each set"
coadd -q --no-db --no-psf --no-progress --zero-points 25,25 -o std.coadd.fits std/exp_000.fits std/exp_001.fits >/dev/null &&
    coadd -q --no-db --no-psf --no-progress --zero-points 25,25 --weight-hdu SKYWT --mask-hdu BADPIX \
        --background "$B0,$(sed -n 2p odd1.out)" -o odd.coadd.fits odd/exp_000.fits odd/exp_001.fits >/dev/null &&
    extract -q --no-db --regions std.coadd.fits >std.out && extract -q --no-db --regions odd.coadd.fits >odd.out
ok $? "coadd both sets (--weight-hdu SKYWT --mask-hdu BADPIX) and extract the coadds"
geom "$(sed -n 3p std.out)" >std.cgeom; geom "$(sed -n 3p odd.out)" >odd.cgeom
n=$(wc -l <std.cgeom | tr -d ' ')
ok $([ "$n" -gt 20 ] && cmp -s std.cgeom odd.cgeom && echo 0 || echo 1) \
    "the coadd of the renamed inputs extracts as the one of WGT and FLG inputs ($n sources)"
