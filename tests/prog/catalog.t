#!/bin/sh
# Reference catalogues: catingest makes one id from a catalogue's content
# and column map (whatever the order of its files, into a shard folder or
# the database); extract records that id, not a path: the shard folder, a
# moved copy of it and the database copy give one extraction provenance.
# With stars that moved for ten years the astrometric rms stays near that of
# a field without motion when positions are carried to the image's epoch
# and is far worse when not; with stars of many colours the zero point's
# scatter stays small with the colour term and grows without it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 30
cd "$T_TMP" || exit 1

hdr() { # hdr FILE KEY: a header card's value from the first 8 blocks
    head -c 23040 "$1" | fold -w 80 | sed -n "s/^$2 *= *'\{0,1\}\([^' /]*\).*/\1/p" | head -1
}
MAP="ra=ra,dec=dec,ra_err=ra_err,dec_err=dec_err,pmra=pmra,pmdec=pmdec,epoch=epoch,mag:G=G,err:G=G_err,mag:BP=BP,err:BP=BP_err,mag:RP=RP,err:RP=RP_err"
imsim -q -n 1 --size 320x320 --nstars 300 --seed 3 --no-defects --set simulation.proper_motion_max_mas_yr=100 \
    --set simulation.refcat_epoch_offset_yr=-10 --set simulation.colour_min=0.3 \
    --set simulation.colour_max=2.7 -o sim >/dev/null 2>err
ok $? "imsim: moving stars of many colours, catalogue ten years older"
imsim -q -n 1 --size 320x320 --nstars 300 --seed 3 --no-defects --set simulation.refcat_epoch_offset_yr=-10 \
    --set simulation.colour_min=0.3 --set simulation.colour_max=2.7 -o still >/dev/null 2>err
ok $? "imsim: the same field without motion"

run_ok "catingest --no-db: shard folder" catingest --no-db --name simcat --columns "$MAP" -o shards sim/refcat.fits
id1=$(cat out)
like "$id1" '^[0-9a-f]{64}$' "a catalogue id is printed"
[ -s shards/index.json ] && ls shards/shard-*.fits >/dev/null 2>&1; ok $? "index.json and FITS shards"
run_ok "catingest at nside 16 into another folder" catingest --no-db --name simcat --columns "$MAP" --nside 16 -o shards16 sim/refcat.fits
is "$(cat out)" "$id1" "the id does not depend on the sharding"
run_ok "catingest under another name" catingest --no-db --name othercat --columns "$MAP" -o shards_other sim/refcat.fits
[ "$(cat out)" != "$id1" ]; ok $? "another name, another id"
exit_is 1 "an existing folder is refused" catingest --no-db --name simcat --columns "$MAP" -o shards sim/refcat.fits
exit_is 1 "a missing column is named" catingest --no-db --name x --columns "ra=ra,dec=nodec" -o bad sim/refcat.fits
like "$(cat err)" "no column 'nodec'" "the message names the column"
[ ! -e bad ]; ok $? "nothing half-written"

# file-only extraction: the folder and a moved copy give one provenance, so
# that the extraction with the moved copy into the same folder reuses the
# products made with the folder (another provenance would make new ones)
run_ok "extract --no-db with the shard folder" extract --no-db -o x1 --refcat shards sim/exp_000.fits
p1=$(sed -n 1p out)
mv shards moved_shards
run_ok "extract --no-db with the moved folder" extract --no-db -o x1 --refcat moved_shards sim/exp_000.fits
is "$(sed -n 1p out)|$(ls x1/*.sources.fits | wc -l | tr -d ' ')" "$p1|1" \
    "one extraction provenance from the folder and its moved copy (the products reused)"
grep -q "$id1" x1/*.sources.fits.json; ok $? "the sidecar names the catalogue id"
grep -q "\"path\": *\"[^\"]*shards\"" x1/*.sources.fits.json && ! grep -q '"refcat": *"' x1/*.sources.fits.json
ok $? "the provenance parameters hold no catalogue path"

# epoch propagation and colour terms, read off the source list's header
src=$(ls x1/*.sources.fits)
rms_prop=$(hdr "$src" ASTRRMS)
extract --no-db -o x3 --set extraction.astrometry.propagate_epoch=false --refcat moved_shards sim/exp_000.fits >/dev/null 2>err
rms_none=$(hdr "$(ls x3/*.sources.fits)" ASTRRMS)
extract --no-db -o x5 --set extraction.astrometry.columns="$MAP" --refcat still/refcat.fits still/exp_000.fits >/dev/null 2>err
rms_still=$(hdr "$(ls x5/*.sources.fits)" ASTRRMS)
awk -v a="$rms_prop" -v b="$rms_none" -v c="$rms_still" 'BEGIN { exit !(a > 0 && a <= 1.2 * c && b > 5 * a) }'
ok $? "astrometric rms with propagation $rms_prop\", without $rms_none\", no motion $rms_still\""
is "$(hdr "$src" CTCOLOUR)" "BP-RP" "the colour term is recorded"
sc_ct=$(hdr "$src" MAGZSCAT)
noise=$(hdr "$src" MAGZNOIS)
extract --no-db -o x4 --set 'extraction.colour_terms=[]' --refcat moved_shards sim/exp_000.fits >/dev/null 2>err
sc_no=$(hdr "$(ls x4/*.sources.fits)" MAGZSCAT)
awk -v a="$sc_ct" -v b="$sc_no" -v n="$noise" 'BEGIN { exit !(a > 0 && a <= 1.25 * n && b > 2.5 * a) }'
ok $? "zero-point scatter with the colour term $sc_ct (stars' errors $noise), without $sc_no"

# the database copy: the same id, and the same extraction provenance
start_test_db
run_ok "catingest into the database" catingest --name simcat --columns "$MAP" sim/refcat.fits
is "$(cat out)" "$id1" "the database copy has the same id"
is "$(sql "SELECT sum(n) || ' ' || sum(length(r)) / sum(n) FROM refcat_$(echo "$id1" | cut -c1-16)")" \
    "$(sql "SELECT nrows FROM refcats WHERE catalog_id = '$id1'") 68" \
    "refcats counts the rows of its table (three bands: 68 bytes a row)"
id=$(imingest -q sim/exp_000.fits 2>err)
run_ok "extract (database) with db:simcat" extract --refcat db:simcat "$id"
pdb=$(sql "SELECT provenance_id FROM source_lists")
# the zero point's row holds the relation used: the source list's header
# says the same, and the shipped g, r or i term (for the image's filter)
sl=$(sql "SELECT filepath FROM source_lists")
sl=$(find "$SKYSTACK_DATA" -path "*$sl" | head -1)
want=$(awk -v k="$(hdr "$sl" CTCOEF0)" -v c="$(hdr "$sl" CTCMIN)" -v d="$(hdr "$sl" CTCMAX)" \
    -v b="$(hdr "$sl" MAGZBAND)" -v x="$(hdr "$sl" CTCOLOUR)" -v s="$(hdr "$sl" MAGZSCAT)" \
    'BEGIN { printf "%s %s %.6g %.6g %.6g %.4f", b, x, k, c, d, s }')
got=$(sql "SELECT ref_band || ' ' || colour_band1 || '-' || colour_band2 || ' ' || round(colour_coeffs[1]::numeric, 6)::float8
           || ' ' || colour_min || ' ' || colour_max || ' ' || round(scatter::numeric, 4) FROM zero_points")
is "$got" "$want" "the zero point's row records the colour term, its range and the scatter as the header does"
is "$(sql "SELECT (colour_reference LIKE 'Riello et al. 2021%') AND num_stars >= 10 AND
                  colour_coeffs[1] IN (-0.2199, 0.09837, 0.293) FROM zero_points")" "t" \
    "a shipped relation (Riello et al. 2021) over 10 or more stars"
want=$(for k in MAGZNSTR MAGZNCAN MAGZRCHI MAGZRAPX MAGZRNBR; do printf '%s ' "$(hdr "$sl" $k)"; done)
want="$want$(awk -v n="$(hdr "$sl" MAGZNOIS)" 'BEGIN { printf "%.5f", n }')"
is "$(sql "SELECT num_stars || ' ' || num_candidates || ' ' || num_rejected_chi2 || ' ' || num_rejected_aperture || ' '
           || num_rejected_neighbour || ' ' || round(noise::numeric, 5) FROM zero_points")" "$want" \
    "the zero point's row records the stars, the candidates and the star selection's rejections as the header does"
run_ok "extract (database) with the moved folder" extract --refcat moved_shards "$id"
is "$(sql "SELECT count(DISTINCT provenance_id) FROM source_lists")" "1" "one provenance from the database copy and the folder ($pdb)"
done_testing
