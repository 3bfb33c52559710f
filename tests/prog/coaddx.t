#!/bin/sh
# coadd --method zogy and psfmatch, --background-match and --artifact-masks
# without a database: imsim exposures, their extraction products (PSF
# models included) beside them; the keywords, the coadd PSF beside the
# coadd, MAGZERO of the proper coadd, and refusals.
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 44

S=$T_TMP/sim
imsim -q --nexp 4 --size 300x300 --nstars 120 --seed 21 --outdir "$S" >/dev/null 2>"$T_TMP/err"
ok $? "four imsim exposures"
IMGS="$S/exp_000.fits $S/exp_001.fits $S/exp_002.fits $S/exp_003.fits"
# shellcheck disable=SC2086
extract -q --no-db $IMGS >/dev/null 2>"$T_TMP/err"
ok $? "extract --no-db on them (background and PSF products beside them)"
zp() { grep -ao "MAGZERO = *[-0-9.E+]*" "$S/exp_00$1.truth.fits" | head -1 | awk -F= '{ printf "%s", $2 + 0 }'; }
ZPS="$(zp 0),$(zp 1),$(zp 2),$(zp 3)"
key() { # key FILE KEYWORD: value of the first such 80-character header card
    k=$(printf '%-8.8s' "$2")
    grep -ao "$k= .\{70\}" "$1" | head -1 | cut -c11- | sed "s| /.*||; s/'//g; s/^ *//; s/ *\$//"
}

# shellcheck disable=SC2086
run_ok "mean" coadd --no-db --no-extraction --method mean --zero-points "$ZPS" -o "$T_TMP/mean.fits" $IMGS
# shellcheck disable=SC2086
run_ok "zogy" coadd --no-db --no-extraction --method zogy --zero-points "$ZPS" -o "$T_TMP/zogy.fits" $IMGS
is "$(cat "$T_TMP/out")" "$T_TMP/zogy.fits" "the coadd's path printed"
is "$(key "$T_TMP/zogy.fits" COMBINET)" "ZOGY" "COMBINET ZOGY"
FR=$(key "$T_TMP/zogy.fits" ZOGYFR)
like "$FR" "^[0-9.]+(E[-+][0-9]+)?\$" "ZOGYFR is the flux scale ($FR)"
want=$(awk -v m="$(key "$T_TMP/mean.fits" MAGZERO)" -v f="$FR" 'BEGIN { printf "%.4f", m + 2.5 * log(f) / log(10) }')
is "$(key "$T_TMP/zogy.fits" MAGZERO | awk '{ printf "%.4f", $1 }')" "$want" "MAGZERO = the common zero point + 2.5 log10 ZOGYFR"
is "$(key "$T_TMP/zogy.fits" VARCORR | awk '{ printf "%g", $1 }')" "1" "VARCORR 1 (white noise)"
[ -s "$T_TMP/zogy.psf" ] && [ -s "$T_TMP/zogy.psf.json" ]; ok $? "its PSF (the analytic P_R) and sidecar beside it"
grep -aq "PSF_DATA" "$T_TMP/zogy.psf"; ok $? "in PSFEx form"
like "$(cat "$T_TMP/err")" "zogy: F_R" "the flux scale in the log"

# shellcheck disable=SC2086
run_ok "psfmatch to a 1.5 arcsec Moffat" coadd --no-db --no-extraction --method psfmatch \
    --target-fwhm 1.5 --zero-points "$ZPS" -o "$T_TMP/pm.fits" $IMGS
is "$(key "$T_TMP/pm.fits" COMBINET)" "PSFMATCH" "COMBINET PSFMATCH"
is "$(key "$T_TMP/pm.fits" COMBINEP)" "CLIPPED" "the matched inputs' combine: clipped"
fw=$(key "$T_TMP/pm.fits" PSFFWHM)
ok "$(awk -v f="$fw" 'BEGIN { print (f * 0.26 > 1.44 && f * 0.26 < 1.56) ? 0 : 1 }')" "PSFFWHM the target's (${fw} px)"
[ -s "$T_TMP/pm.psf" ]; ok $? "the target PSF beside it"
is "$(key "$T_TMP/pm.fits" MAGZERO)" "$(key "$T_TMP/mean.fits" MAGZERO)" "MAGZERO the common zero point"

# shellcheck disable=SC2086
run_ok "mean with artifact masks and background matching" coadd --no-db --no-extraction --method mean \
    --artifact-masks --background-match --zero-points "$ZPS" -o "$T_TMP/art.fits" $IMGS
is "$(key "$T_TMP/art.fits" ARTMASK)" "T" "ARTMASK T"
is "$(key "$T_TMP/art.fits" BGMATCH)" "T" "BGMATCH T"
for n in 1 2 3 4; do
    like "$(key "$T_TMP/art.fits" "BGOFF$n")" "^-?[0-9.]+(E[-+][0-9]+)?\$" "BGOFF$n"
    like "$(key "$T_TMP/art.fits" "ARTPIX$n")" "^[0-9]+\$" "ARTPIX$n"
done
like "$(cat "$T_TMP/err")" "background match: input 1 offset" "offsets in the log"

# threads: identical files
for m in zogy psfmatch; do
    # shellcheck disable=SC2086
    run_ok "$m at 1 thread" coadd --no-db --no-extraction --method $m --threads 1 --artifact-masks \
        --zero-points "$ZPS" -o "$T_TMP/${m}1.fits" $IMGS
    # shellcheck disable=SC2086
    run_ok "$m at 2 threads" coadd --no-db --no-extraction --method $m --threads 2 --artifact-masks \
        --zero-points "$ZPS" -o "$T_TMP/${m}2.fits" $IMGS
    cmp -s "$T_TMP/${m}1.fits" "$T_TMP/${m}2.fits"; ok $? "$m: identical files for 1 and 2 threads"
    cmp -s "$T_TMP/${m}1.psf" "$T_TMP/${m}2.psf"; ok $? "$m: and identical PSF files"
done

# another method, another provenance
a=$(grep -ao '"id": *"[A-Z2-7]*"' "$T_TMP/zogy.fits.json" | head -1)
b=$(grep -ao '"id": *"[A-Z2-7]*"' "$T_TMP/pm.fits.json" | head -1)
ok "$([ -n "$a" ] && [ "$a" != "$b" ] && echo 0 || echo 1)" "zogy and psfmatch have different provenances"

# refusals
# shellcheck disable=SC2086
exit_is 1 "zogy with --no-psf: exit 1" coadd --no-db --no-extraction --no-psf --method zogy \
    --zero-points "$ZPS" -o "$T_TMP/x.fits" $IMGS
like "$(cat "$T_TMP/err")" "needs the inputs' PSFs" "says why"
[ ! -e "$T_TMP/x.fits" ]; ok $? "nothing written"
# shellcheck disable=SC2086
exit_is 1 "an unknown target profile: exit 1" coadd --no-db --no-extraction --method psfmatch \
    --target-fwhm 1.5 --set coaddition.target_profile=airy --zero-points "$ZPS" -o "$T_TMP/x.fits" $IMGS
like "$(cat "$T_TMP/err")" "target_profile" "names the key"

done_testing
