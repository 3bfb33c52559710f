#!/bin/sh
# The planes of a coadd in its sidecar: SCI, WGT, FLG and NIMG for every
# method, and the score image SCORE of a zogy coadd, which is in the file.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 6
cd "$T_TMP" || exit 1
printf '{"extraction": {"astrometry": {"refcat": "sim/refcat.fits"}}}\n' >cfg.json
export SKYSTACK_CONFIG="$T_TMP/cfg.json"
imsim -q --nexp 3 --size 160x160 --nstars 80 --seed 5 --no-defects --outdir sim >/dev/null 2>"$T_TMP/err" &&
    extract -q --no-db sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits >/dev/null
ok $? "three exposures extracted"
run_ok "zogy coadd" coadd -q --no-db --no-progress --no-extraction --method zogy -o zogy.fits \
    sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
side=$(tr -d '\n' <zogy.fits.json | tr -s ' ')
like "$side" '"planes": \{[^}]*"SCORE": "score image' "the zogy coadd's sidecar records its SCORE plane"
grep -aq "EXTNAME = 'SCORE   '" zogy.fits; ok $? "which the file holds"
run_ok "mean coadd" coadd -q --no-db --no-progress --no-extraction --method mean -o mean.fits \
    sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
side=$(tr -d '\n' <mean.fits.json | tr -s ' ')
ok $(printf '%s' "$side" | grep -q '"NIMG"' && ! printf '%s' "$side" | grep -q '"SCORE"' && echo 0 || echo 1) \
    "a mean coadd's sidecar records SCI, WGT, FLG, NIMG and no SCORE"
