#!/bin/sh
# weight_rescale.t: coadds whose inputs' weight maps are off by a factor.
# Six imsim exposures in the conditions of a foreign simulation (Gaussian
# PSFs of FWHM 3 to 5.5 px, rotations, dithers, sky 800 ADU, gain 4, read
# noise 7 e-, unflagged cosmic rays); after extraction the WGT of three of
# them is doubled. Each coadd method rescales every input's weights to the
# blank-sky noise measured on its pixels: tests/skycheck.py (numpy +
# astropy, no skystack code) finds the coadd's pixel noise within 5 % of
# its WGT's prediction where every input overlaps; the factors are in the
# header; with coaddition.rescale_weights=false the mean coadd misses.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 14

PY=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import numpy, astropy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    skip 14 "no python3 with numpy and astropy (share/install-deps.sh installs them)"
    done_testing
    exit $?
fi
CHECK="$PY $SRC/tests/skycheck.py"

cd "$T_TMP" || exit 1
# shellcheck disable=SC2086
run_ok "imsim: six Gaussian-PSF exposures with cosmic rays" \
    imsim -q -n 6 --seed 3 --psf gaussian --cosmics 0.5 --size 512x512 --nstars 250 \
    --galaxies 0.05 --zero-point 21.8 --zp-scatter 0.03 --sky-adu 800 --gain 4 --read-noise 7 \
    --dither 10 --rotation 0.1 --seeing 0.78 --seeing-max 1.43 --set simulation.seeing_scatter=0 \
    --set simulation.mag_min=14 --set simulation.mag_max=23 --set simulation.mag_slope=0.1 \
    --set simulation.refcat_depth_mag=21 --set simulation.satellite_probability=0 \
    --set simulation.moving_sources=0 --set simulation.transients=0 -o g
REF="--set extraction.astrometry.refcat=g/refcat.fits"
IMGS="g/exp_000.fits g/exp_001.fits g/exp_002.fits g/exp_003.fits g/exp_004.fits g/exp_005.fits"
TRUTH="g/exp_000.truth.fits g/exp_001.truth.fits g/exp_002.truth.fits g/exp_003.truth.fits
 g/exp_004.truth.fits g/exp_005.truth.fits"
# shellcheck disable=SC2086
run_ok "extract --no-db with the catalogue" extract -q --no-db --threads 2 $REF $IMGS
$PY - <<'EOF'
from astropy.io import fits
for i in (1, 3, 5):
    with fits.open("g/exp_%03d.fits" % i, mode="update") as h:
        h["WGT"].data = h["WGT"].data * 2.0
EOF
ok $? "the WGT of exposures 1, 3 and 5 doubled"

for m in mean clipped zogy psfmatch; do
    # shellcheck disable=SC2086
    run_ok "coadd --no-db --method $m" coadd -q --no-db --threads 2 $REF --method $m --no-extraction \
        -o g/coadd_$m.fits $IMGS
    # shellcheck disable=SC2086
    $CHECK noise g/coadd_$m.fits $TRUTH --max noise_ratio=0.05 >"$T_TMP/n_$m"
    ok $? "$m: pixel noise within 5 % of the WGT's prediction where every input overlaps ($(head -1 "$T_TMP/n_$m"))"
done

# the factors: about 1/2 for the doubled inputs (sorted by time: the
# exposures' order), about 1 for the others, within 5 %
$PY - g/coadd_mean.fits <<'EOF' >"$T_TMP/ws"
import sys
from astropy.io import fits
h = fits.getheader(sys.argv[1], "SCI")
bad = [k for k in range(6)
       if abs(h["WSCL%d" % (k + 1)] / (0.5 if k % 2 else 1.0) - 1) > 0.05]
print(bool(h["WRESCALE"]), " ".join("%.3f" % h["WSCL%d" % (k + 1)] for k in range(6)), bad)
sys.exit(1 if bad or not h["WRESCALE"] else 0)
EOF
ok $? "header: WRESCALE and each input's factor WSCLn, 1/2 within 5 % for the doubled ($(cat "$T_TMP/ws"))"

# shellcheck disable=SC2086
run_ok "coadd --method mean with coaddition.rescale_weights=false" coadd -q --no-db --threads 2 $REF \
    --method mean --set coaddition.rescale_weights=false --no-extraction -o g/coadd_off.fits $IMGS
# shellcheck disable=SC2086
$CHECK noise g/coadd_off.fits $TRUTH --max noise_ratio=0.1 >"$T_TMP/n_off"
is "$?" "1" "without rescaling the doubled weights show: noise over WGT beyond 10 % ($(head -1 "$T_TMP/n_off"))"
done_testing
