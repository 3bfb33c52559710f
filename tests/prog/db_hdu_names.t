#!/bin/sh
# imingest --weight-hdu/--mask-hdu: a file whose noise and mask planes are
# HDUs of names no finder knows (SKYWT, BADPIX) is stored with them as WGT
# and FLG; the stored copy extracts as the original with WGT and FLG does;
# not with --link.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 6
start_test_db
cd "$T_TMP" || exit 1
imsim -q --nexp 1 --size 200x200 --nstars 100 --seed 9 --no-defects --outdir std >/dev/null 2>"$T_TMP/err"
ok $? "imsim exposure with WGT and FLG"
mkdir -p odd
perl -0777 -pe "s/EXTNAME = 'WGT     '/EXTNAME = 'SKYWT   '/; s/EXTNAME = 'FLG     '/EXTNAME = 'BADPIX  '/" \
    std/exp_000.fits >odd/exp_000.fits
run_ok "imingest --weight-hdu SKYWT --mask-hdu BADPIX" \
    imingest --paths --hdu SCI --weight-hdu SKYWT --mask-hdu BADPIX odd/exp_000.fits
STORED=$(sed -n 1p "$T_TMP/out")
grep -aq "EXTNAME = 'WGT     '" "$STORED"; ok $? "the stored copy has a WGT plane"
geom() { grep '^ellipse(' "$1" | cut -d'#' -f1; }
extract -q --no-db --regions --outdir a std/exp_000.fits >a.out &&
    extract -q --no-db --regions --outdir b "$STORED" >b.out
ok $? "extract the original and the stored copy"
geom "$(sed -n 3p a.out)" >a.geom; geom "$(sed -n 3p b.out)" >b.geom
n=$(wc -l <a.geom | tr -d ' ')
ok $([ "$n" -gt 20 ] && cmp -s a.geom b.geom && echo 0 || echo 1) "the same $n sources as with WGT and FLG"
exit_is 1 "--weight-hdu with --link: exit 1" imingest --link --weight-hdu SKYWT odd/exp_000.fits
