#!/bin/sh
# refmake: the refset rules one by one on simulated images already in the
# database with their extraction products, and the coadds refmake would
# reuse (built into the database here with their products, and files where
# their rows say), so that every
# rule is checked against a known state: creation on first use, the
# upstream_hash check with nothing written, appending and --no-append,
# fallback criteria, the quick second run, refsets sharing a reference and
# a coadd, bad references, a dry run, concurrent processes.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 85
ref_db_start

PLACE="--target SIMFIELD --section S1 --filter r"
STRICT='{"max_seeing":0.95,"min_images":2}'
RELAXED='{"max_seeing":2.0,"min_images":2}'
TWO='[{"max_seeing":0.95,"min_images":2},{"max_seeing":2.0,"min_images":2}]'
field() { # field NAME: the value of "NAME":"..." in canonical JSON on stdin
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}
count() { sql "SELECT count(*) FROM $1"; }

# Four simulated exposures of one field, registered and extracted.
imsim -q -n 4 --size 256x256 --nstars 80 --set simulation.dither_arcsec=5 -o "$T_TMP/sim" >/dev/null
ok $? "imsim: four exposures"
imingest -q "$T_TMP"/sim/exp_00?.fits >/dev/null
ok $? "imingest"
extract -q $(imquery --ids) >/dev/null
ok $? "extract"

exit_is 1 "no --refset" refmake $PLACE
exit_is 1 "no place" refmake --refset R1 --filter r
exit_is 1 "half a field" refmake --refset R1 --target SIMFIELD --filter r
exit_is 1 "no filter" refmake --refset R1 --target SIMFIELD --section S1
exit_is 1 "a criterion of the wrong type" refmake --refset R1 $PLACE --set 'referencing.criteria=[{"max_seeing":"good"}]'
like "$(cat "$T_TMP/err")" "referencing.criteria\\[0\\].max_seeing" "the error names the criterion"

# The chain computed from the configuration.
exit_is 0 "dry run" refmake --refset R1 $PLACE --dry-run --json
DRY=$(cat "$T_TMP/out")
PRE=$(echo "$DRY" | field preprocessing)
EXT=$(echo "$DRY" | field extraction)
COA=$(echo "$DRY" | field coaddition)
CEX=$(echo "$DRY" | field coadd_extraction)
is "$(sql "SELECT DISTINCT provenance_id FROM images")" "$PRE" "the images' preprocessing provenance is the one computed"
is "$(sql "SELECT DISTINCT provenance_id FROM source_lists")" "$EXT" "their extraction provenance is the one computed"
is "$(count refsets)" 0 "a dry run writes nothing"
like "$DRY" '"exists":false' "the dry run says the refset would be created"
exit_is 0 "dry run with a description" refmake --refset R1 $PLACE --dry-run --set referencing.description=other
is "$(cat "$T_TMP/out" | sed -n 's/^upstream_hash //p')" "$(echo "$DRY" | field upstream_hash)" \
    "the refset description does not change the upstream_hash"
is "$(sed -n 's/^referencing 0 \([A-Z2-7]*\).*/\1/p' "$T_TMP/out")" \
    "$(echo "$DRY" | sed -n 's/.*"members":\[{"appended":true,"criteria":{[^}]*},"id":"\([A-Z2-7]*\)".*/\1/p')" \
    "nor the referencing provenance"

# No image has all its products yet: nothing can be made, and the
# message names the provenance it looked for.
exit_is 2 "too few images: exit 2" refmake --refset probe $PLACE
like "$(cat "$T_TMP/err")" "with extraction products of provenance $EXT" "the message names the extraction provenance"
like "$(cat "$T_TMP/err")" "4 science images at the place in filter r" "and counts the images at the place"
refset -q delete probe >/dev/null

# Known quality (seeing, depth) and all extraction products.
sql "UPDATE images SET fwhm_estimate = v.f, lim_mag_estimate = v.m FROM (VALUES (1, 0.9, 23.0),
     (2, 1.0, 23.2), (3, 1.3, 22.5), (4, 1.6, 22.0)) AS v(i, f, m) WHERE images.id = v.i"
sql "INSERT INTO psfs (image_id, provenance_id, filepath, md5)
       SELECT image_id, provenance_id, filepath || '.psf', md5 FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO world_coordinates (image_id, provenance_id, header)
       SELECT image_id, provenance_id, 'END' FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO zero_points (image_id, provenance_id, zp, dzp)
       SELECT image_id, provenance_id, 25.0, 0.01 FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO backgrounds (image_id, provenance_id, filepath, md5)
       SELECT image_id, provenance_id, filepath || '.bkg', md5 FROM source_lists ON CONFLICT DO NOTHING"
ok $? "products filled in"
# make_coadd IDS: a coadd of those inputs under the computed coaddition
# provenance, with its products under the coadd-extraction provenance.
make_coadd() {
    sql "INSERT INTO provenances (id, process, code_version) VALUES ('$COA', 'coaddition', '1.0'),
           ('$CEX', 'extraction', '1.0') ON CONFLICT DO NOTHING;
         INSERT INTO code_versions VALUES ('coaddition', '1.0') ON CONFLICT DO NOTHING;
         WITH c AS (INSERT INTO images (filepath, md5, provenance_id, type, input_set_hash, instrument,
             filter, section_id, target, mjd, end_mjd, width, height, ra, dec, ra_corner_00,
             dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11, ra_corner_01,
             dec_corner_01, minra, maxra, mindec, maxdec, radius_deg)
           SELECT 'coadds/set_$1.fits', md5('$1'), '$COA', 'coadd', encode(sha256('$1'::bytea), 'hex'),
             instrument, filter, section_id, target, mjd, end_mjd, width, height, ra, dec, ra_corner_00,
             dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11, ra_corner_01,
             dec_corner_01, minra, maxra, mindec, maxdec, radius_deg
           FROM images WHERE id = 4 RETURNING id),
         s AS (INSERT INTO source_lists (image_id, provenance_id, filepath, md5)
           SELECT id, '$CEX', 'coadds/set_$1.cat', md5('s') FROM c),
         p AS (INSERT INTO psfs (image_id, provenance_id, filepath, md5)
           SELECT id, '$CEX', 'coadds/set_$1.psf', md5('p') FROM c),
         b AS (INSERT INTO backgrounds (image_id, provenance_id, filepath, md5)
           SELECT id, '$CEX', 'coadds/set_$1.bkg', md5('b') FROM c),
         w AS (INSERT INTO world_coordinates (image_id, provenance_id, header)
           SELECT id, '$CEX', 'END' FROM c),
         z AS (INSERT INTO zero_points (image_id, provenance_id, zp, dzp) SELECT id, '$CEX', 25, 0.01 FROM c)
         SELECT id FROM c"
    # their files (a row whose file is missing is not done: refmake would make it again)
    mkdir -p "$SKYSTACK_DATA/coadds"
    printf '%s' "$1" >"$SKYSTACK_DATA/coadds/set_$1.fits"
    for f in fits cat psf bkg; do
        [ "$f" = fits ] || printf '%s' "$f" >"$SKYSTACK_DATA/coadds/set_$1.$f"
        echo '{}' >"$SKYSTACK_DATA/coadds/set_$1.$f.json"
    done
}
C1234=$(make_coadd 1,2,3,4)
C12=$(make_coadd 1,2)
C123=$(make_coadd 1,2,3)
is "$(count "images WHERE type = 'coadd'")" 3 "three coadds in the database"

exit_is 0 "dry run: the plan" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" --dry-run
like "$(cat "$T_TMP/out")" "criteria 0 \\([A-Z2-7]{20}\\): 1 image selected, too few" "the strict criteria find one image"
like "$(cat "$T_TMP/out")" "criteria 1 \\([A-Z2-7]{20}\\): 4 images selected, enough; coadd $C1234 exists and would be reused" \
    "the relaxed ones find four and the coadd to reuse"
is "$(grep -c '^image ' "$T_TMP/out")" 5 "the selected images are listed"

# Rule: the refset is created on first use; the strict criteria find too
# few images, the relaxed ones make the reference.
exit_is 0 "first refmake" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO"
REF_PATH=$(cat "$T_TMP/out")
is "$REF_PATH" "$SKYSTACK_DATA/coadds/set_1,2,3,4.fits" "it prints the path of the reference's coadd"
is "$(sql "SELECT count(*), min(upstream_hash) FROM refsets WHERE name = 'R1'")" \
    "1|$(echo "$DRY" | field upstream_hash)" "refset R1 was created with the computed upstream_hash"
is "$(count "refset_provenances")" 2 "with both referencing provenances"
is "$(sql "SELECT r.image_id || '|' || rp.position FROM refs r JOIN refset_provenances rp
           ON rp.provenance_id = r.provenance_id")" "$C1234|1" "one reference: the coadd of the four, under the relaxed criteria"
is "$(sql "SELECT p.parameters->>'max_seeing' FROM refs r JOIN provenances p ON p.id = r.provenance_id")" "2.0" \
    "its referencing provenance holds the relaxed criteria"
is "$(sql "SELECT count(*) FROM provenances p WHERE p.parameters::text LIKE '%R1%'")" 0 "no provenance names the refset"
REF1=$(sql "SELECT id FROM refs")

# Rule: a second run returns the same reference and builds nothing.
NCOADD=$(count "images WHERE type = 'coadd'")
exit_is 0 "second refmake" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" --id
is "$(cat "$T_TMP/out")" "$REF1" "the same reference"
is "$(count "images WHERE type = 'coadd'")|$(count refs)" "$NCOADD|1" "no coadd and no reference made"
exit_is 0 "the same at a position inside the reference" refmake --refset R1 --filter r \
    --ra "$(sql "SELECT ra FROM refs")" --dec "$(sql "SELECT dec FROM refs")" --set "referencing.criteria=$TWO" --id
is "$(cat "$T_TMP/out")|$(count refs)" "$REF1|1" "a position inside it gets the same reference"

# Rule: the same name with other coadd (or extraction) parameters is an
# error naming what differs, and nothing is written.
snapshot() { sql "SELECT (SELECT count(*) FROM refsets), (SELECT count(*) FROM refset_provenances),
                         (SELECT count(*) FROM provenances), (SELECT count(*) FROM refs)"; }
BEFORE=$(snapshot)
exit_is 1 "other coaddition parameters" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" \
    --set coaddition.method=mean
like "$(cat "$T_TMP/err")" "coaddition provenance differs.*parameters method \\(refset: \"clipped\", this configuration: \"mean\"\\)" \
    "the error names the coaddition parameter that differs"
exit_is 1 "other extraction parameters" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" \
    --set extraction.detection.min_area_px=7
like "$(cat "$T_TMP/err")" "extraction.*detection.min_area_px \\(refset: 5, this configuration: 7\\)" \
    "the error names the extraction parameter that differs"
is "$(snapshot)" "$BEFORE" "nothing was written"

# Rule: new selection criteria are appended; --no-append and
# referencing.allow_append=false refuse them.
THREE='[{"max_seeing":0.95,"min_images":2},{"max_seeing":2.0,"min_images":2},{"max_images":3}]'
exit_is 1 "new criteria with --no-append" refmake --refset R1 $PLACE --set "referencing.criteria=$THREE" --no-append
like "$(cat "$T_TMP/err")" "appending is off \\(--no-append\\)" "the refusal names --no-append"
exit_is 1 "new criteria with allow_append=false" refmake --refset R1 $PLACE --set "referencing.criteria=$THREE" \
    --set referencing.allow_append=false
like "$(cat "$T_TMP/err")" "referencing.allow_append is false" "the refusal names the key"
is "$(snapshot)" "$BEFORE" "nothing was written"
exit_is 0 "new criteria are appended" refmake --refset R1 $PLACE --set "referencing.criteria=$THREE" --id
is "$(cat "$T_TMP/out")" "$REF1" "the place keeps its reference"
is "$(sql "SELECT string_agg(position::text, ',' ORDER BY position) FROM refset_provenances")" "0,1,2" \
    "the new provenance comes last"
is "$(count refs)" 1 "no reference made"

# Rule: a new refset with the same criteria shares the reference and coadd.
exit_is 0 "a second refset with the same criteria" refmake --refset R2 $PLACE --set "referencing.criteria=$TWO" --id
is "$(cat "$T_TMP/out")" "$REF1" "it returns the same reference"
is "$(count refs)|$(count "images WHERE type = 'coadd'")" "1|$NCOADD" "no reference and no coadd made"
exit_is 0 "refset refs R2" refset refs R2 --json
like "$(cat "$T_TMP/out")" "\"id\":$REF1,.*\"loaded\":true" "R2 holds it"

# Rule: a reference marked bad is skipped; the same images would make the
# same coadd again, which is refused; with one of its inputs (image 4)
# marked bad the good images select the coadd of 1,2,3, and a new
# reference over it replaces the bad one.
refset -q mark-bad "$REF1" --reason "satellite trail" >/dev/null
exit_is 2 "refmake after mark-bad: the same coadd again is refused" refmake --refset R1 $PLACE \
    --set "referencing.criteria=$TWO" --id
skybad -q mark image 4 --reason "satellite trail" >/dev/null
exit_is 0 "refmake after an input is marked bad" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" --id
REF2=$(cat "$T_TMP/out")
skybad -q unmark image 4 >/dev/null
is "$(sql "SELECT image_id FROM refs WHERE NOT is_bad AND id = $REF2")|$(sql "SELECT is_bad, replaced_by FROM refs WHERE id = $REF1")|$(count "images WHERE type = 'coadd'")" \
    "$C123|t|$REF2|$NCOADD" "a new good reference over the coadd of the good images; the old one stays bad, replaced by it"
exit_is 0 "R2 now loads the new one too" refmake --refset R2 $PLACE --set "referencing.criteria=$TWO" --id
is "$(cat "$T_TMP/out")" "$REF2" "the refsets share the new reference"
exit_is 0 "dry run with a reference" refmake --refset R1 $PLACE --set "referencing.criteria=$TWO" --dry-run
like "$(cat "$T_TMP/out")" "^reference $REF2 exists" "the dry run shows the reference"

# Concurrency: eight processes at once on one place and a new refset.
BEST2='[{"max_images":2,"min_images":2}]'
for k in 1 2 3 4 5 6 7 8; do
    (refmake -q --refset R3 $PLACE --set "referencing.criteria=$BEST2" --json >"$T_TMP/c$k.out" 2>"$T_TMP/c$k.err"
     echo $? >"$T_TMP/c$k.rc") &
done
wait
is "$(cat "$T_TMP"/c?.rc | tr -d '\n')" 00000000 "eight processes: all exit 0"
is "$(sort -u "$T_TMP"/c?.out | wc -l | tr -d ' ')" 1 "all print the same reference"
is "$(sql "SELECT count(*) FROM refs r JOIN refset_provenances rp ON rp.provenance_id = r.provenance_id
           JOIN refsets s ON s.id = rp.refset_id WHERE s.name = 'R3'")" 1 "exactly one reference"
like "$(cat "$T_TMP/c1.out")" "\"image_id\":$C12," "the coadd of the best two images"
is "$(count "images WHERE type = 'coadd'")" "$NCOADD" "no coadd made"

# Nothing in another filter: exit 2, saying what was looked for.
exit_is 2 "no images in filter g" refmake --refset R1 --target SIMFIELD --section S1 --filter g \
    --set "referencing.criteria=$TWO"
is "$(grep -c '^  criteria [0-9] (referencing provenance [A-Z2-7]*): 0 science images at the place in filter g' "$T_TMP/err")" 3 \
    "each criteria set is explained"

# Rule: the instruments criterion names the keyword map the images were
# ingested with (the instrument column), not the INSTRUME of their headers
# (which it is only for images ingested with the generic map). Two
# exposures of another field ingested with the map mapcam (a copy of
# generic) keep INSTRUME = SIMCAM in their headers.
printf '{"preprocessing": {"instruments": {"mapcam": {"instrument": "INSTRUME"}}}}\n' >"$T_TMP/mapcam.json"
imsim -q -n 2 --size 256x256 --nstars 80 --seed 3 --set simulation.dither_arcsec=5 \
    --set simulation.target=MAPFIELD -o "$T_TMP/map" >/dev/null
ok $? "imsim: two exposures of field MAPFIELD"
grep -aq "INSTRUME= 'SIMCAM" "$T_TMP/map/exp_000.fits"
ok $? "their headers say INSTRUME = SIMCAM"
imingest -q --config "$T_TMP/mapcam.json" --instrument mapcam "$T_TMP"/map/exp_00?.fits >"$T_TMP/mapids"
ok $? "imingest --instrument mapcam"
MAPIDS=$(sort -n "$T_TMP/mapids" | tr '\n' ' ')
is "$(sql "SELECT string_agg(DISTINCT instrument, ',') FROM images WHERE target = 'MAPFIELD'")" mapcam \
    "their instrument column holds the map's name"
extract -q $(cat "$T_TMP/mapids") >/dev/null
ok $? "extract"
sql "INSERT INTO psfs (image_id, provenance_id, filepath, md5)
       SELECT image_id, provenance_id, filepath || '.psf', md5 FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO world_coordinates (image_id, provenance_id, header)
       SELECT image_id, provenance_id, 'END' FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO zero_points (image_id, provenance_id, zp, dzp)
       SELECT image_id, provenance_id, 25.0, 0.01 FROM source_lists ON CONFLICT DO NOTHING;
     INSERT INTO backgrounds (image_id, provenance_id, filepath, md5)
       SELECT image_id, provenance_id, filepath || '.bkg', md5 FROM source_lists ON CONFLICT DO NOTHING"
ok $? "their products filled in"
MAP="--config $T_TMP/mapcam.json --instrument mapcam --target MAPFIELD --section S1 --filter r"
exit_is 0 "instruments mapcam (the map's name): dry run" refmake --refset I1 $MAP --instruments mapcam \
    --min-images 2 --dry-run
like "$(cat "$T_TMP/out")" "criteria 0 \\([A-Z2-7]{20}\\): 2 images selected, enough" "the map's name selects both images"
is "$(sed -n 's/^image \([0-9]*\) .*/\1/p' "$T_TMP/out" | sort -n | tr '\n' ' ')" "$MAPIDS" \
    "they are the two images ingested with mapcam"
exit_is 2 "instruments SIMCAM (their INSTRUME value): exit 2" refmake --refset I2 $MAP --instruments SIMCAM \
    --min-images 2
like "$(cat "$T_TMP/err")" "2 science images at the place in filter r, 2 with extraction products" \
    "both images are at the place with their products"
like "$(cat "$T_TMP/err")" "of these, 0 pass the instruments cut" "and neither passes the instruments cut"
exit_is 0 "instruments SIMCAM for images ingested with the generic map: dry run" refmake --refset I3 $PLACE \
    --instruments SIMCAM --min-images 2 --dry-run
like "$(cat "$T_TMP/out")" "criteria 0 \\([A-Z2-7]{20}\\): 4 images selected, enough" \
    "their INSTRUME value selects the four generic images"
done_testing
