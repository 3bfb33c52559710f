#!/bin/sh
# look.t: quick-looks through the programs: imlook's
# outputs and refusals; a coadd (without a database, tile-compressed by
# storage.compress) with its quick-look beside it, recorded in its sidecar,
# and extract reading the compressed coadd. (The report page, refset report,
# is checked in pin.t on the reference that test makes with its database.)
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
plan 16
cd "$T_TMP" || exit 1
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }

imsim -q -n 3 --size 200x200 --nstars 150 --seed 5 --set simulation.dither_arcsec=5 -o sim >/dev/null
ok $? "imsim: three exposures"
out=$(imlook sim/exp_000.fits)
is "$out" "sim/exp_000.png" "imlook prints the PNG beside the image"
is "$(png_size sim/exp_000.png)" "400x400" "a 200 px image is enlarged to 400 x 400"
imlook -q --size 64 --stretch zscale -o small.png sim/exp_000.fits >/dev/null
is "$(png_size small.png)" "50x50" "--size 64: binned by 4 into 50 x 50"
exit_is 1 "an unknown stretch is bad usage" imlook --stretch log sim/exp_000.fits
exit_is 1 "-o with two images is bad usage" imlook -o x.png sim/exp_000.fits sim/exp_001.fits
exit_is 1 "a file that is not FITS is refused" imlook sim/exp_000.fits.json
ok $([ ! -e x.png ] && [ ! -e sim/exp_000.fits.png ] && echo 0 || echo 1) "nothing written by a refusal"

printf '{"extraction": {"astrometry": {"refcat": "sim/refcat.fits"}}, "coaddition": {"method": "mean"}, "storage": {"compress": true}}\n' >cfg.json
export SKYSTACK_CONFIG="$T_TMP/cfg.json"
run_ok "extract --no-db" extract -q --no-db sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
coadd -q --no-db --outdir coadds sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits >coadd.out
ok $? "coadd --no-db with storage.compress"
c=$(cat coadd.out)
like "$c" '\.fits\.fz$' "the coadd is tile-compressed (.fits.fz)"
q=${c%.fits.fz}.png
ok $([ -s "$q" ] && echo 0 || echo 1) "its quick-look beside it"
side=$(cat "$c.json")
like "$side" "\"md5\": \"$(md5sum <"$q" | cut -c1-32)\"" "the coadd's sidecar records the quick-look's md5"
nsrc=$(printf '%s' "$side" | sed -n 's/.*"sources": \([0-9]*\).*/\1/p')
ok $([ "${nsrc:-0}" -gt 10 ] && echo 0 || echo 1) "the sources of its extraction are circled ($nsrc)"
ls coadds/*.sources.fits >/dev/null 2>&1
ok $? "the compressed coadd was extracted"
ino=$(stat -c %i "$q")
coadd -q --no-db --outdir coadds sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits >/dev/null
is "$(stat -c %i "$q")" "$ino" "the quick-look is kept (not rewritten) when the coadd is reused"
done_testing
