#!/bin/sh
# Promises of the manuals checked through the programs, without a database
# (tests/CLAIMS lists each claim and its test):
# - extract(1): an image with fewer than three usable stars gets no PSF, a
#   warning, not an error: exit 0, the other products made;
# - extract(1): a header WCS off by up to search_radius_arcsec (60"),
#   max_rotation_deg (2) and max_scale_error (2 %) still solves, both ways;
# - coadd(1): coaddition.alignment_index first, last, N counted from 0 in
#   time order, negative from the end: that input's grid (WCS, size) and
#   zero point; an index beyond the inputs is bad input (exit 1).
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 33
cd "$T_TMP" || exit 1
key() { # key FILE KEYWORD: value of the first such 80-character header card
    k=$(printf '%-8.8s' "$2")
    grep -ao "$k= .\{70\}" "$1" | head -1 | cut -c11- | sed "s| /.*||; s/'//g; s/^ *//; s/ *\$//"
}

# ---- no PSF: a warning, not an error ----
imsim -q --nexp 1 --size 128x128 --nstars 2 --seed 3 --set simulation.mag_min=17 \
    --set simulation.mag_max=18 --set simulation.galaxy_fraction=0 --outdir few >/dev/null 2>"$T_TMP/err"
ok $? "imsim: an exposure with two stars"
exit_is 0 "extract of an image with fewer than three usable stars: exit 0" extract --no-db few/exp_000.fits
like "$(cat "$T_TMP/err")" "warning: .*exp_000\.fits: no PSF model" "a warning naming the image says there is no PSF"
like "$(cat "$T_TMP/err")" "need at least 3" "and why (at least three stars)"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" "2" "two products printed: source list and background"
like "$(sed -n 1p "$T_TMP/out")" "\.sources\.fits$" "the source list"
like "$(sed -n 2p "$T_TMP/out")" "\.bkg\.fits$" "the background"
ls few | grep -q '\.psf$'; ok $([ $? -ne 0 ] && echo 0 || echo 1) "no PSF file"

# ---- the header WCS off by the most the defaults allow ----
n=0
for c in "1 60 2 0.02" "2 60 -2 -0.02" "3 60 2 -0.02"; do
    set -- $c
    n=$((n + 1))
    imsim -q --nexp 1 --size 512x512 --nstars 400 --seed "$1" --wcs-offset "$2" --wcs-rotation "$3" \
        --wcs-scale "$4" --outdir "w$n" >/dev/null 2>"$T_TMP/err"
    ok $? "imsim: header WCS off by $2\", $3 deg, $4 (seed $1)"
    exit_is 0 "extract --refcat solves it" extract --no-db --refcat "w$n/refcat.fits" "w$n/exp_000.fits"
    ls "w$n"/exp_000.*.head >/dev/null 2>&1; ok $? "the solved WCS (.head) is written"
    # the offset found is the 60" shift (rotation and scale error add up
    # to 0.3" at the centre)
    off=$(sed -n 's/.*the header WCS was off by \([0-9.]*\)".*/\1/p' "$T_TMP/err" | head -1)
    ok $(awk -v o="${off:-0}" 'BEGIN { exit !(o > 58.5 && o < 61.5) }' && echo 0 || echo 1) \
        "and the header's error found: ${off:-none}\" (60 within 1.5)"
done

# ---- the alignment input ----
imsim -q --nexp 4 --size 200x200 --nstars 60 --seed 8 --set simulation.dither_arcsec=6 --outdir a >/dev/null 2>&1
extract -q --no-db a/exp_000.fits a/exp_001.fits a/exp_002.fits a/exp_003.fits >/dev/null 2>&1
ok $? "four dithered exposures (time order 0, 1, 2, 3) and their extraction products"
# the inputs in another order on the command line, each with its own zero
# point: 2 -> 25, 0 -> 26, 3 -> 27, 1 -> 28
align() { # align WHICH EXPOSURE ZP WHAT
    coadd -q --no-db --no-psf --no-extraction --alignment "$1" --zero-points 25,26,27,28 \
        -o "al$1.fits" a/exp_002.fits a/exp_000.fits a/exp_003.fits a/exp_001.fits >/dev/null 2>"$T_TMP/err"
    w="$(key "al$1.fits" CRVAL1) $(key "al$1.fits" CRVAL2) $(key "al$1.fits" NAXIS1)x$(key "al$1.fits" NAXIS2)"
    is "$w" "$(key "a/exp_00$2.fits" CRVAL1) $(key "a/exp_00$2.fits" CRVAL2) 200x200" \
        "alignment $1: the grid of exposure $2 ($4 in time order)"
    is "$(key "al$1.fits" MAGZERO | awk '{ printf "%.2f", $1 }')" "$3" "alignment $1: its zero point $3 is the coadd's"
}
align first 0 26.00 "the first"
align last 3 27.00 "the last"
align 1 1 28.00 "number 1 counted from 0"
align -2 2 25.00 "the second from the end"
align 0 0 26.00 "number 0"
exit_is 1 "alignment 4 of four inputs: exit 1" coadd --no-db --no-psf --no-extraction --alignment 4 \
    --zero-points 25,26,27,28 -o al4.fits a/exp_002.fits a/exp_000.fits a/exp_003.fits a/exp_001.fits
like "$(cat "$T_TMP/err")" "alignment_index: 4 is outside the 4 inputs" "the message says why"
done_testing
