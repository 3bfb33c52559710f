#!/bin/sh
# db_ingest.t: imingest on the real DECam cutouts with nothing but
# --instrument decam (weights and masks found by name), rows checked against
# the headers and against footprint corners computed independently (astropy
# all_pix2world with the TPV distortion, committed below) to 0.1 arcsec;
# the stored files (skystack layout, sidecars, md5s); idempotent
# re-ingest; refusals (no WCS, no time, no filter) that change nothing;
# DATE-OBS and the generic map; links; SQL-looking values stored as values;
# concurrent ingest of one file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 65
start_test_db
DECAM=$REAL/decam-legacysurvey

# name, filter, MJD-OBS, EXPTIME, DETPOS, then the outer pixel-edge corners
# (0-based pixel (-0.5,-0.5) (w-0.5,-0.5) (w-0.5,h-0.5) (-0.5,h-0.5)) as RA
# Dec pairs in degrees, from astropy.wcs (wcslib with the TPV terms).
cat >"$T_TMP/truth" <<'EOF'
c4d_140818_232043_ooi_z_ls9.N12.fits z 56887.97073001 118.0 N12 244.77771573 12.07390064 244.77770056 12.07090137 244.78151357 12.07088944 244.78152881 12.07388868
c4d_150329_083320_ooi_r_ls9.N11.fits r 57110.35507997 68.0 N11 244.77767243 12.07390773 244.77766209 12.07090560 244.78148188 12.07089480 244.78149229 12.07389692
c4d_150329_083505_ooi_g_ls9.N11.fits g 57110.35620083 79.0 N11 244.77771147 12.07388684 244.77770115 12.07088481 244.78152078 12.07087408 244.78153116 12.07387610
c4d_150412_073257_ooi_z_ls9.N11.fits z 57124.31303155 80.0 N11 244.77772217 12.07393775 244.77771120 12.07093574 244.78153087 12.07092438 244.78154191 12.07392638
c4d_180218_090701_ooi_z_ls9.N10.fits z 58167.37988309 99.0 N10 244.77771829 12.07390774 244.77771176 12.07090550 244.78153130 12.07089613 244.78153789 12.07389838
c4d_180518_044138_ooi_r_ls9.N12.fits r 58256.19558747 75.0 N12 244.77772245 12.07388832 244.77770632 12.07088889 244.78151979 12.07087594 244.78153598 12.07387534
c4d_180809_002630_ooi_g_ls9.N12.fits g 58339.01841202 93.0 N12 244.77771002 12.07394642 244.77769549 12.07094711 244.78150854 12.07093543 244.78152313 12.07393472
c4d_180908_000426_ooi_g_ls9.N10.fits g 58369.00307978 100.0 N10 244.77772832 12.07389487 244.77772439 12.07089307 244.78146854 12.07088467 244.78147253 12.07388648
c4d_150110_053718_ooi_z_ls9.S4.fits z 57032.23194295 150.0 S4 110.30795535 23.92358891 110.30795503 23.91626054 110.31596923 23.91625774 110.31596996 23.92358609
c4d_171113_061941_ooi_r_ls9.S4.fits r 58070.26367856 88.0 S4 110.30793435 23.92361905 110.30793128 23.91621597 110.31594758 23.91621690 110.31595105 23.92361995
c4d_181104_072440_ooi_g_ls9.S4.fits g 58426.30880066 140.0 S4 110.30795896 23.92362039 110.30795679 23.91621815 110.31597218 23.91621845 110.31597475 23.92362066
c4d_181214_050844_ooi_g_ls9.S9.fits g 58466.21440415 200.0 S9 110.30792832 23.92360180 110.30795457 23.91620877 110.31602645 23.91624506 110.31600061 23.92363829
c4d_181215_045000_ooi_z_ls9.S9.fits z 58467.20139963 88.0 S9 110.30791087 23.92359311 110.30793485 23.91619971 110.31600654 23.91623439 110.31598298 23.92362798
c4d_181215_051332_ooi_r_ls9.S9.fits r 58467.21774261 60.0 S9 110.30795229 23.92362859 110.30797704 23.91623521 110.31604864 23.91626975 110.31602430 23.92366333
EOF

# listing: every file under the data root with its md5 (to see that nothing changed).
listing() { (cd "$SKYSTACK_DATA" 2>/dev/null && find . -type f -o -type l | sort | xargs -r md5sum) | md5sum; }
counts() { sql "SELECT (SELECT count(*) FROM images) || ' ' || (SELECT count(*) FROM provenances) || ' ' || (SELECT count(*) FROM code_versions)"; }

# Every DECam file at once (images, weights, masks): only the instrument given.
imingest --instrument decam "$DECAM"/testcase3/*.fits "$DECAM"/testcase6/*.fits >"$T_TMP/ids1" 2>"$T_TMP/err"
is "$?" "0" "imingest --instrument decam on all the cutouts (oow/ood given too)"
sed 's/^/#   /' "$T_TMP/err" | grep -v "weight or mask" | head -5
is "$(wc -l <"$T_TMP/ids1" | tr -d ' ')" "14" "one id printed per science image"
is "$(counts)" "14 1 1" "14 images, one preprocessing provenance and its code version"

# Rows against the headers and the independent corners.
sql "SELECT regexp_replace(original_path, '.*/', ''), filter, mjd, exp_time, section_id,
            ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10,
            ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01
     FROM images ORDER BY 1" | tr '|' ' ' >"$T_TMP/rows"
while read -r name filt mjd expt sec c0 c1 c2 c3 c4 c5 c6 c7; do
    row=$(grep "^$name " "$T_TMP/rows")
    verdict=$(echo "$row" | awk -v f="$filt" -v m="$mjd" -v e="$expt" -v s="$sec" \
        -v t="$c0 $c1 $c2 $c3 $c4 $c5 $c6 $c7" '
        { split(t, w, " "); worst = 0
          for (k = 0; k < 4; k++) {
              dra = ($(6 + 2 * k) - w[1 + 2 * k]) * cos(w[2 + 2 * k] * 3.14159265358979 / 180)
              ddec = $(7 + 2 * k) - w[2 + 2 * k]
              d = sqrt(dra * dra + ddec * ddec) * 3600
              if (d > worst) worst = d }
          bad = ""
          if ($2 != f) bad = bad " filter " $2
          if ((($3 - m) < 0 ? m - $3 : $3 - m) > 1e-7) bad = bad " mjd " $3
          if ($4 + 0 != e + 0) bad = bad " exptime " $4
          if ($5 != s) bad = bad " section " $5
          if (worst > 0.1) bad = bad sprintf(" corner off by %.3f arcsec", worst)
          print (bad == "" ? "ok" : bad) }')
    is "$verdict" "ok" "$name: filter, MJD, exposure time, section and corners (to 0.1\") right"
done <"$T_TMP/truth"

r=$(sql "SELECT instrument, telescope, target, project, airmass, round(gain::numeric, 9), round(saturation::numeric, 4), width, height
         FROM images WHERE original_path LIKE '%c4d_180908_000426_ooi_g_ls9.N10.fits'")
is "$r" "decam|CTIO 4.0-m telescope|DECaLS_46909_g|2014B-0404|1.64|3.976017104|45599.9573|41|50" \
    "instrument, telescope, target, project, airmass, mean amplifier gain, saturation, size"
prov=$(sql "SELECT id FROM provenances")
p8=$(echo "$prov" | cut -c1-8)
is "$(sql "SELECT filepath FROM images WHERE original_path LIKE '%c4d_180908_000426_ooi_g_ls9.N10.fits'")" \
    "decam/2018-09-08/N10/g/science/$p8/c4d_180908_000426_ooi_g_ls9.N10.fits" \
    "the stored path encodes instrument, date, section, filter, type and provenance"
is "$(sql "SELECT parameters->>'instrument' FROM provenances")" "decam" "the provenance records the keyword map used"

# The stored files.
nfits=$(find "$SKYSTACK_DATA" -name '*.fits' | wc -l | tr -d ' ')
njson=$(find "$SKYSTACK_DATA" -name '*.fits.json' | wc -l | tr -d ' ')
is "$nfits $njson" "14 14" "14 images and 14 sidecars in the data root"
stored="$SKYSTACK_DATA/decam/2018-09-08/N10/g/science/$p8/c4d_180908_000426_ooi_g_ls9.N10.fits"
for ext in SCI WGT FLG; do
    grep -aq "EXTNAME = '$ext" "$stored"
    ok $? "the stored image has the $ext extension (skystack layout)"
done
md5_db=$(sql "SELECT md5 || ' ' || original_md5 FROM images WHERE filepath LIKE '%c4d_180908_000426_ooi_g_ls9.N10.fits'")
md5_file=$(md5sum "$stored" | cut -c1-32)
md5_orig=$(md5sum "$DECAM/testcase3/c4d_180908_000426_ooi_g_ls9.N10.fits" | cut -c1-32)
is "$md5_db" "$md5_file $md5_orig" "the row holds the stored file's md5 and the original's"
grep -q "\"$md5_file\"" "$stored.json"
ok $? "the sidecar records the stored file's md5"
grep -q "c4d_180908_000426_oow_g_ls9.N10.fits" "$stored.json"
ok $? "the sidecar names the weight file it was built from"
grep -q "\"$prov\"" "$stored.json"
ok $? "the sidecar holds the provenance"

# Places: the two cutout positions.
radec=$(sql "SELECT ra || ' ' || dec FROM images WHERE original_path LIKE '%c4d_180908_000426_ooi_g_ls9.N10.fits'")
is "$(imquery --ra "${radec% *}" --dec "${radec#* }" --count)" "8" "imquery finds the 8 testcase3 exposures at its centre"
is "$(imquery --ra 110.312 --dec 23.92 --filter g --count)" "2" "and the 2 g exposures of testcase6"
is "$(imquery --ra 110.312 --dec 23.92 --filter g --order latest --limit 1 --ids)" \
    "$(sql "SELECT id FROM images WHERE original_path LIKE '%c4d_181214_050844%'")" "the latest g exposure there"

# Re-ingest: a no-op that prints the existing ids.
list0=$(listing)
imingest --instrument decam "$DECAM"/testcase3/*ooi*.fits "$DECAM"/testcase6/*ooi*.fits >"$T_TMP/ids2" 2>"$T_TMP/err"
is "$?" "0" "re-ingesting succeeds"
is "$(sort -n "$T_TMP/ids2" | tr '\n' ' ')" "$(sort -n "$T_TMP/ids1" | tr '\n' ' ')" "and prints the existing ids"
like "$(cat "$T_TMP/err")" "already registered as image" "and says so"
is "$(counts)" "14 1 1" "no new rows"
is "$(listing)" "$list0" "no file changed in the data root"

# Refusals change nothing.
before=$(counts)
exit_is 1 "an image without WCS is refused (exit 1)" imingest "$REAL/m13-orion/M13_blue_0001.fits.gz"
like "$(cat "$T_TMP/err")" "M13_blue_0001.fits.gz.*no usable WCS" "the message names the file and the missing WCS"

# mkfits FILE CARD...: a 10x10 float image with these extra header cards.
mkfits() {
    f=$1; shift
    {
        for c in "SIMPLE  =                    T" "BITPIX  =                  -32" "NAXIS   =                    2" \
            "NAXIS1  =                   10" "NAXIS2  =                   10" "CTYPE1  = 'RA---TAN'" \
            "CTYPE2  = 'DEC--TAN'" "CRVAL1  = ${CRVAL1:-50.0}" "CRVAL2  =                -20.0" \
            "CRPIX1  =                  5.5" "CRPIX2  =                  5.5" "CDELT1  =               -0.001" \
            "CDELT2  =                0.001" "EXPTIME =                 30.0" "$@" "END"; do
            printf '%-80s' "$c"
        done
    } >"$f"
    size=$(wc -c <"$f")
    pad=$(( (2880 - size % 2880) % 2880 ))
    head -c "$pad" /dev/zero | tr '\0' ' ' >>"$f"
    head -c 2880 /dev/zero >>"$f"
}
mkfits "$T_TMP/notime.fits" "FILTER  = 'r       '"
mkfits "$T_TMP/nofilter.fits" "DATE-OBS= '2020-01-01T06:00:00'"
exit_is 1 "an image without time is refused" imingest "$T_TMP/notime.fits"
like "$(cat "$T_TMP/err")" "notime.fits.*no observation time" "the message names the file and the missing time"
exit_is 1 "an image without filter is refused" imingest "$T_TMP/nofilter.fits"
like "$(cat "$T_TMP/err")" "nofilter.fits.*no filter" "the message names the file and the missing filter"
exit_is 1 "a missing file is refused" imingest "$T_TMP/absent.fits"
exit_is 1 "an unknown instrument is refused" imingest --instrument hubble "$T_TMP/nofilter.fits"
like "$(cat "$T_TMP/err")" "known: .*decam" "and the message lists the known keyword maps"
exit_is 1 "--link of a file not in the skystack layout is refused" \
    imingest --instrument decam --link "$DECAM/testcase3/c4d_180908_000426_ooi_g_ls9.N10.fits"
is "$(counts)" "$before" "refusals wrote no rows"
is "$(listing)" "$list0" "refusals wrote no files"

# A filter given on the command line; values that look like SQL stay values.
evil="r'); DROP TABLE images; --"
imingest --filter "$evil" --target "x' OR '1'='1" "$T_TMP/nofilter.fits" >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" "0" "--filter supplies a missing filter"
id=$(cat "$T_TMP/out")
is "$(sql "SELECT filter || '|' || target || '|' || round(mjd::numeric, 6) FROM images WHERE id = $id")" \
    "$evil|x' OR '1'='1|58849.250000" "SQL-looking values are stored as they are, time from DATE-OBS"
is "$(imquery --filter "$evil" --ids)" "$id" "and found as they are"
case $(sql "SELECT filepath FROM images WHERE id = $id") in
    *"'"* | *";"* | *" "*) ok 1 "the stored path has only safe characters" ;;
    *) ok 0 "the stored path has only safe characters" ;;
esac
is "$(sql "SELECT count(*) FROM images")" "15" "the images table is intact"

# The generic map with DATE-OBS: the DSS plate.
imingest "$REAL/dss/HorseHead.fits.gz" >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" "0" "the DSS plate is ingested with the generic keyword map"
hh=$(cat "$T_TMP/out")
is "$(sql "SELECT filter || '|' || instrument || '|' || round(mjd::numeric, 7) || '|' || (end_mjd = mjd) FROM images WHERE id = $hh")" \
    "OG590|Photographic Plate|48247.5756944|true" "filter, instrument and MJD from DATE-OBS 1990-12-22T13:49:00"
is "$(sql "SELECT count(*) FROM provenances WHERE process = 'preprocessing'")" "2" "another keyword map is another provenance"

# Linking a file already in the skystack layout.
cp "$stored" "$T_TMP/linked.fits"
imingest --instrument decam --link --target LINKED "$T_TMP/linked.fits" >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" "0" "--link of a file in the skystack layout"
lp=$(imquery --target LINKED)
[ -L "$lp" ] && [ "$(readlink "$lp")" = "$T_TMP/linked.fits" ]
ok $? "the data root holds a link to it"

# An image straddling RA = 0, from its WCS to the query.
CRVAL1=0.0 mkfits "$T_TMP/wrap.fits" "FILTER  = 'u       '" "MJD-OBS =              59001.5"
imingest "$T_TMP/wrap.fits" >"$T_TMP/out" 2>"$T_TMP/err"
is "$?" "0" "an image across RA = 0 is ingested"
wid=$(cat "$T_TMP/out")
is "$(sql "SELECT (maxra < minra) || ' ' || (minra > 359.99) || ' ' || (maxra < 0.01) FROM images WHERE id = $wid")" \
    "true true true" "its bounding box straddles RA = 0 (maxra < minra)"
is "$(imquery --ra 359.998 --dec -20 --ids) $(imquery --ra 0.002 --dec -20 --ids)" "$wid $wid" \
    "it is found on both sides of RA = 0"
exit_is 2 "and not beyond its edge" imquery --ra 0.01 --dec -20

# Two processes ingesting one new file at once: one image.
mkfits "$T_TMP/twice.fits" "FILTER  = 'i       '" "MJD-OBS =              59000.5"
imingest "$T_TMP/twice.fits" >"$T_TMP/a" 2>"$T_TMP/ea" &
pa=$!
imingest "$T_TMP/twice.fits" >"$T_TMP/b" 2>"$T_TMP/eb" &
pb=$!
wait $pa; ra_=$?
wait $pb; rb_=$?
is "$ra_ $rb_" "0 0" "two concurrent ingests of one file both succeed"
is "$(cat "$T_TMP/a")" "$(cat "$T_TMP/b")" "and print the same id"
is "$(sql "SELECT count(*) FROM images WHERE filter = 'i'")" "1" "one image was registered"
done_testing
