#!/bin/sh
# extract --tpv-head: the solved WCS also as TPV beside the SIP .head, the
# very cards wcstpv makes of that .head (the same library code), with its
# sidecar; made for existing products on a rerun; refused without a
# reference catalogue or with a database.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 10
cd "$T_TMP" || exit 1
imsim -q --nexp 1 --size 256x256 --nstars 150 --seed 4 --outdir sim >/dev/null 2>"$T_TMP/err"
ok $? "imsim exposure"
run_ok "extract --no-db --refcat --tpv-head" extract --no-db --refcat sim/refcat.fits --tpv-head sim/exp_000.fits
HEAD=$(grep '\.[A-Z2-7]\{8\}\.head$' "$T_TMP/out"); TPV=$(grep '\.tpv\.head$' "$T_TMP/out")
like "$TPV" "^sim/exp_000\.[A-Z2-7]{8}\.tpv\.head$" "the TPV head is printed, named like the other products"
like "$(cat "$TPV")" "CTYPE1  = 'RA---TPV'" "it is a TPV WCS"
like "$(cat "$TPV")" "PV1_[0-9]+ *=" "with its PV distortion terms"
wcstpv -o "$T_TMP/ref.tpv.head" "$HEAD" >/dev/null
cmp -s "$TPV" "$T_TMP/ref.tpv.head"; ok $? "the cards wcstpv makes of the SIP .head"
[ -s "$TPV.json" ]; ok $? "with a sidecar"
rm -f "$TPV" "$TPV.json"
run_ok "rerun: the products are reused, the TPV head made again" \
    extract --no-db --refcat sim/refcat.fits --tpv-head sim/exp_000.fits
[ -s "$TPV" ] && grep -q "$TPV" "$T_TMP/out"; ok $? "and printed"
exit_is 1 "--tpv-head without a reference catalogue: exit 1" extract --no-db --tpv-head --outdir x sim/exp_000.fits
