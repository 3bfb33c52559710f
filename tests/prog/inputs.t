#!/bin/sh
# Every input traced, without a database: extract's image, weight map (and
# its kind), mask and reference catalogue, and coadd's weights, masks,
# backgrounds, PSFs and zero points are listed with their md5s in the
# sidecars; changing any one of them between two runs never returns the
# products of the first (a new product, or a refusal naming the input that
# changed, with nothing touched); the same inputs still reuse them.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 89

cd "$T_TMP" || exit 1
imsim -q -n 3 --size 200x200 --nstars 150 --seed 5 --set simulation.dither_arcsec=5 -o sim >/dev/null 2>"$T_TMP/err"
ok $? "imsim: three exposures and a reference catalogue"
imsim -q -n 1 --size 200x200 --nstars 150 --seed 6 -o sim6 >/dev/null 2>"$T_TMP/err"
ok $? "imsim: another field (another reference catalogue)"

# fits FILE BITPIX VALUE [VALUE2]: a 200x200 image of VALUE (its lower half
# VALUE2 when given)
fits() {
    python3 - "$@" <<'EOF'
import struct, sys
path, bitpix, v1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v2 = float(sys.argv[4]) if len(sys.argv) > 4 else v1
cards = ["SIMPLE  = %20s" % "T", "BITPIX  = %20d" % bitpix, "NAXIS   = %20d" % 2,
         "NAXIS1  = %20d" % 200, "NAXIS2  = %20d" % 200, "END"]
head = "".join(c.ljust(80) for c in cards).ljust(2880).encode()
fmt = ">f" if bitpix == -32 else ">h"
data = b"".join(struct.pack(fmt, v2 if y < 100 else v1) if bitpix == -32 else
                struct.pack(fmt, int(v2 if y < 100 else v1)) for y in range(200) for x in range(200))
data += b"\0" * (-len(data) % 2880)
open(path, "wb").write(head + data)
EOF
}
fits w1.fits -32 1 && fits w2.fits -32 1 0.25 && fits m1.fits 16 0 && fits m2.fits 16 0 1
ok $? "weight and mask files"
cp sim/exp_000.fits img.fits   # no sidecar: the image alone is the upstream
cp sim/refcat.fits cat.fits
printf '{"extraction": {"astrometry": {"refcat": "%s/cat.fits"}}}\n' "$T_TMP" >cfg.json
export SKYSTACK_CONFIG="$T_TMP/cfg.json"

sums() { md5sum o1/* | md5sum; }
# ---- extract ----
run_ok "extract --weight w1" extract --no-db -o o1 --weight w1.fits img.fits
SRC=$(sed -n 1p "$T_TMP/out")
like "$(cat "$SRC.json")" '"role": "image"' "the sidecar names the image"
like "$(tr -d '\n ' <"$SRC.json")" "\"md5\":\"$(md5sum <w1.fits | cut -c1-32)\",\"path\":\"w1.fits\",\"role\":\"weight\"" \
    "the weight map with its md5"
like "$(tr -d '\n ' <"$SRC.json")" "\"id\":\"[0-9a-f]{64}\",\"md5\":\"[0-9a-f]{32}\",\"path\":\"[^\"]*/cat.fits\",\"role\":\"refcat\"" \
    "the reference catalogue by its catalogue id (and its first 32 digits as its digest)"
before=$(sums)
run_ok "the same inputs again" extract --no-db -o o1 --weight w1.fits img.fits
like "$(cat "$T_TMP/err")" "exists already" "are reused"
is "$(sed -n 1p "$T_TMP/out")" "$SRC" "the same source list"

refused() { # refused WHAT REGEX CMD...: exit 1 naming the input, nothing touched
    what=$1; re=$2; shift 2
    exit_is 1 "$what: refused (exit 1)" "$@"
    like "$(cat "$T_TMP/err")" "$re" "the message names the input that changed"
    is "$(sums)" "$before" "the products are untouched"
}
refused "another weight map" "weight w2\.fits.*w1\.fits" extract --no-db -o o1 --weight w2.fits img.fits
refused "no weight map" "weight w1\.fits .*no longer" extract --no-db -o o1 img.fits
refused "the weight read as a variance" "variance w1\.fits" \
    extract --no-db -o o1 --weight w1.fits --weight-type variance img.fits
refused "a mask added" "mask m1\.fits" extract --no-db -o o1 --weight w1.fits --mask m1.fits img.fits
cp w1.fits w1.keep && cp w2.fits w1.fits
refused "the weight's content changed under its name" "weight w1\.fits \(md5 $(md5sum <w2.fits | cut -c1-32)" \
    extract --no-db -o o1 --weight w1.fits img.fits
cp w1.keep w1.fits
imsim -q -n 1 --size 200x200 --nstars 150 --seed 5 --set simulation.dither_arcsec=5 \
    --set simulation.refcat_depth_mag=20.5 -o sim5b >/dev/null 2>"$T_TMP/err"
cp sim5b/refcat.fits cat.fits
# another catalogue content is another catalogue id, so another provenance:
# new products, those of the first left as they were
run_ok "the reference catalogue's content changed: extracted anew" extract --no-db -o o2 --weight w1.fits img.fits
[ "$(basename "$(sed -n 1p "$T_TMP/out")")" != "$(basename "$SRC")" ]
ok $? "under another provenance"
is "$(sums)" "$before" "the first products are untouched"
cp sim/refcat.fits cat.fits
cp sim/exp_001.fits img.fits
refused "the image's pixels changed" "image img\.fits" extract --no-db -o o1 --weight w1.fits img.fits
cp sim/exp_000.fits img.fits
run_ok "all as before: reused again" extract --no-db -o o1 --weight w1.fits img.fits
is "$(sums)" "$before" "same products"
run_ok "another weight in another folder: made" extract --no-db -o o2 --weight w2.fits img.fits
SRC2=$(sed -n 1p "$T_TMP/out")
like "$(cat "$SRC2.json")" '"w2.fits"' "its sidecar names the new weight"
if cmp -s "$SRC" "$SRC2"; then ok 1 "and its source list differs"; else ok 0 "and its source list differs"; fi
run_ok "a mask in another folder: made" extract --no-db -o o3 --weight w1.fits --mask m1.fits img.fits
like "$(cat "$(sed -n 1p "$T_TMP/out").json")" '"role": "mask"' "its sidecar names the mask"

# ---- coadd ----
extract -q --no-db sim/exp_000.fits sim/exp_001.fits >/dev/null 2>"$T_TMP/err"
ok $? "extract the two exposures beside them"
IMGS="sim/exp_000.fits sim/exp_001.fits"
B0=$(ls sim/exp_000.*.bkg.fits); B1=$(ls sim/exp_001.*.bkg.fits)
P0=$(ls sim/exp_000.*.psf); P1=$(ls sim/exp_001.*.psf)
co() { coadd --no-db --no-extraction --method mean --outdir oc "$@" $IMGS; }
# shellcheck disable=SC2086
run_ok "coadd" co
C1=$(cat "$T_TMP/out")
for r in image background psf wcs zero_point; do
    is "$(grep -c "\"role\": \"$r\"" "$C1.json")" "2" "the coadd's sidecar lists each input's $r"
done
run_ok "the same coadd again" co
like "$(cat "$T_TMP/err")" "exists already" "is reused"
is "$(cat "$T_TMP/out")" "$C1" "the same file"
seen="$C1"
new_coadd() { # new_coadd WHAT ARGS...: a coadd of another name, reused once made
    what=$1; shift
    run_ok "$what" co "$@"
    c=$(cat "$T_TMP/out")
    case " $seen " in *" $c "*) ok 1 "$what: a new coadd ($c)";; *) ok 0 "$what: a new coadd";; esac
    seen="$seen $c"
    run_ok "$what, again" co "$@"
    is "$(cat "$T_TMP/out")" "$c" "$what: reused the second time"
}
new_coadd "--weight" --weight w1.fits,w1.fits
new_coadd "another --weight" --weight w2.fits,w1.fits
new_coadd "--mask" --mask m2.fits,m1.fits
new_coadd "--background" --background "$B0,$B1"
new_coadd "other --background files" --background "$B1,$B0"
new_coadd "--psf" --psf "$P0,$P1"
new_coadd "other --psf files" --psf "$P1,$P0"
new_coadd "--zero-points" --zero-points 25,25
new_coadd "other --zero-points" --zero-points 25,25.5
# the products beside an input changed under their names: the coadd of
# that name is not returned
cp "$B0" b0.keep && cp "$B1" "$B0"
before=$(md5sum "$C1")
exit_is 1 "a background beside an input changed: the old coadd is refused (exit 1)" co
like "$(cat "$T_TMP/err")" "background .*exp_000" "naming that background"
is "$(md5sum "$C1")" "$before" "the coadd is untouched"
cp b0.keep "$B0"
run_ok "restored: reused" co
is "$(cat "$T_TMP/out")" "$C1" "the first coadd again"
done_testing
