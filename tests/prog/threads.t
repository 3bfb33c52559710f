#!/bin/sh
# Identical bytes whatever the thread count: the mean, clipped and median
# coadds and the extraction products (source list, background, PSF) made
# at 1, 2 and 3 threads are byte for byte the same files.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 19

cd "$T_TMP" || exit 1
S=$T_TMP/sim
imsim -q --nexp 3 --size 300x300 --nstars 120 --seed 11 --outdir "$S" >/dev/null 2>"$T_TMP/err"
ok $? "three imsim exposures"
IMGS="$S/exp_000.fits $S/exp_001.fits $S/exp_002.fits"

# extraction: every product, one output folder per thread count
for t in 1 2 3; do
    # shellcheck disable=SC2086
    run_ok "extract at $t thread(s)" extract -q --no-db --threads "$t" --outdir "$T_TMP/x$t" $IMGS
done
n=0; same=0
for f in "$T_TMP"/x1/*.fits "$T_TMP"/x1/*.psf; do
    b=$(basename "$f")
    n=$((n + 1))
    cmp -s "$f" "$T_TMP/x2/$b" && cmp -s "$f" "$T_TMP/x3/$b" && same=$((same + 1))
done
is "$n" "9" "three products per exposure (source list, background, PSF)"
is "$same" "$n" "each identical at 1, 2 and 3 threads"

# the coadds read the inputs' backgrounds from beside them
# shellcheck disable=SC2086
extract -q --no-db --threads 2 $IMGS >/dev/null 2>"$T_TMP/err"
ok $? "extract beside the inputs"
for m in mean clipped median; do
    for t in 1 2 3; do
        # shellcheck disable=SC2086
        run_ok "$m coadd at $t thread(s)" coadd -q --no-db --no-psf --no-extraction --method "$m" \
            --threads "$t" --band-rows 64 --zero-points 30,30,30 -o "$T_TMP/$m-$t.fits" $IMGS
    done
done
for m in mean clipped median; do
    cmp -s "$T_TMP/$m-1.fits" "$T_TMP/$m-2.fits" && cmp -s "$T_TMP/$m-1.fits" "$T_TMP/$m-3.fits"
    ok $? "$m: identical files at 1, 2 and 3 threads"
done
