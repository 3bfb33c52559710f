#!/bin/sh
# Pinned products: a small imsim run taken through every pipeline (extract
# without a database; coadd by every method, each with the extraction of its
# coadd; imingest, extract and refmake with the database) must give exactly
# the files and provenance ids recorded in tests/data/pin/manifest.txt: each
# FITS, PSF and .head product's name (which carries its provenance id) and
# md5. A change of code that changes a product shows here; one that should
# change products (a new code version) records the manifest anew with
#   SK_PIN_RECORD=1 make check   (then review and commit the diff).
# The reference it makes also serves the report page (refset report), which
# would otherwise need a run of its own.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
MANIFEST=$SRC/tests/data/pin/manifest.txt
# eleven tests of the run and five of the report page; then the manifest
# recorded (SK_PIN_RECORD), or compared as a whole and one test per pinned
# product
if [ -n "${SK_PIN_RECORD:-}" ]; then plan 18; else plan $((18 + $(wc -l <"$MANIFEST"))); fi

cd "$T_TMP" || exit 1
imsim -q -n 3 --size 200x200 --nstars 150 --seed 5 --set simulation.dither_arcsec=5 -o sim >/dev/null
ok $? "imsim: three exposures"
# Paths relative to this folder, so that nothing depends on where it is.
printf '{"extraction": {"astrometry": {"refcat": "sim/refcat.fits"}}, "coaddition": {"method": "mean"}}\n' >cfg.json
export SKYSTACK_CONFIG="$T_TMP/cfg.json"

run_ok "extract --no-db" extract -q --no-db sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
for m in mean clipped median zogy psfmatch; do
    run_ok "coadd --no-db --method $m" coadd --no-db --threads 2 --method $m --outdir coadds \
        sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
done

ref_db_start
run_ok "imingest" imingest -q sim/exp_000.fits sim/exp_001.fits sim/exp_002.fits
run_ok "extract (database)" sh -c 'extract -q $(imquery --ids)'
run_ok "refmake" refmake -q --refset pin --target SIMFIELD --section S1 --filter r

# name and md5 of every product (sidecars hold paths and times: their ids are
# in the names already)
manifest() {
    (cd "$T_TMP" && find sim coadds -type f ! -name '*.json' | sort | xargs md5sum)
    (cd "$SKYSTACK_DATA" && find . -type f ! -name '*.json' | sort | xargs md5sum)
}
manifest >"$T_TMP/manifest" 2>>"$T_TMP/err"
n=$(wc -l <"$T_TMP/manifest" | tr -d ' ')
ok $([ "$n" -ge 60 ] && echo 0 || echo 1) "the run made its products ($n files)"

# the report page of the refset (after the manifest: it reads the products)
page=$(refset report pin --outdir rep)
like "$page" "/rep/index.html$" "refset report prints the page"
missing=0
for f in $(grep -o 'src="[^"]*"' rep/index.html | sed 's/^src="//; s/"$//'); do
    [ -s "rep/$f" ] || missing=$((missing + 1))
done
is "$missing/$(grep -o '<img' rep/index.html | wc -l | tr -d ' ')" "0/4" "every image of the page exists (the three plots and the thumbnail)"
like "$(cat rep/index.html)" "<code>[A-Z2-7]{20}</code><br>reference 1" "the page lists the reference with its provenance"
like "$(cat rep/index.html)" "[0-9]+ of [0-9]+ stars; left out: [0-9]+ &chi;&sup2;, [0-9]+ aperture, [0-9]+ neighbour" \
    "the page says the stars of the zero point and what the star selection left out"
exit_is 2 "report of a refset that does not exist" refset report nosuch --outdir rep2
exit_is 1 "report without a name or --since" refset report
if [ -n "${SK_PIN_RECORD:-}" ]; then
    mkdir -p "$(dirname "$MANIFEST")" && cp "$T_TMP/manifest" "$MANIFEST"
    ok $? "manifest recorded in $MANIFEST"
    done_testing
    exit $?
fi
if diff "$MANIFEST" "$T_TMP/manifest" >"$T_TMP/diff"; then
    ok 0 "every product byte-identical to the pinned manifest, same names (provenance ids)"
else
    ok 1 "every product byte-identical to the pinned manifest, same names (provenance ids)"
    sed 's/^/#   /' "$T_TMP/diff" | head -40
fi
# each pinned line is checked on its own as well, so a failure names the file
while read -r sum path; do
    grep -qx "$sum  $path" "$T_TMP/manifest"; ok $? "pinned: $path"
done <"$MANIFEST"
done_testing
