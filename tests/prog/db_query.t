#!/bin/sh
# db_query.t: imquery against a hand-built table of footprints: every
# filter and combinations of them, containment by the true four-corner
# footprint (across RA = 0, a footprint rotated 45 degrees with a point
# inside its bounding box but outside its corner, near the pole), boxes
# with a minimum overlap, ordering, limits, every output format (JSON
# checked by PostgreSQL's own parser), the printed SQL, and SQL-injection
# strings in every string option.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dbtest.sh"
plan 122
start_test_db

sql "
INSERT INTO code_versions VALUES ('preprocessing', '1.0'), ('extraction', '1.0'), ('coaddition', '1.0');
INSERT INTO provenances (id, process, code_version, is_bad) VALUES
  ('PREONEAAAAAAAAAAAAAA', 'preprocessing', '1.0', false), ('PRETWOAAAAAAAAAAAAAA', 'preprocessing', '1.0', false),
  ('PREBADAAAAAAAAAAAAAA', 'preprocessing', '1.0', true), ('EXTONEAAAAAAAAAAAAAA', 'extraction', '1.0', false),
  ('COADDAAAAAAAAAAAAAAA', 'coaddition', '1.0', false);
INSERT INTO images (id, filepath, md5, provenance_id, type, original_md5, original_hdu, input_set_hash,
    instrument, filter, section_id, target, project, mjd, end_mjd, exp_time, airmass,
    fwhm_estimate, lim_mag_estimate, bkg_rms_estimate, zero_point_estimate, is_bad, width, height,
    ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11,
    ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg)
SELECT id, 't/' || id || '.fits', repeat('0', 32), prov, type,
    CASE WHEN type = 'science' THEN md5(id::text) END, '0',
    CASE WHEN type = 'coadd' THEN repeat('a', 64) END,
    inst, filt, sec, tgt, proj, mjd, mjd + 0.01, expt, air, fwhm, lim, bkg, zp, bad, 100, 100,
    ra, dec, r00, d00, r10, d10, r11, d11, r01, d01, minra, maxra, mindec, maxdec,
    greatest(q3c_dist(ra, dec, r00, d00), q3c_dist(ra, dec, r10, d10),
             q3c_dist(ra, dec, r11, d11), q3c_dist(ra, dec, r01, d01))
FROM (VALUES
  -- id type filter mjd exptime airmass fwhm lim bkg zp target section instrument project prov bad / footprint
  (1, 'science', 'r', 60000.1, 60, 1.2, 1.0, 23.0, 10, 25.0, 'F1', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   150.0, 2.0, 149.9, 1.9, 150.1, 1.9, 150.1, 2.1, 149.9, 2.1, 149.9, 150.1, 1.9, 2.1),
  (2, 'science', 'r', 60001.1, 120, 1.5, 2.0, 23.5, 20, 25.5, 'F1', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   150.0, 2.0, 149.9, 1.9, 150.1, 1.9, 150.1, 2.1, 149.9, 2.1, 149.9, 150.1, 1.9, 2.1),
  (3, 'science', 'g', 60002.1, 300, 1.1, 0.8, 22.0, 5, 24.5, 'F1', 'S2', 'cam2', 'P2', 'PRETWOAAAAAAAAAAAAAA', false,
   150.0, 2.0, 149.9, 1.9, 150.1, 1.9, 150.1, 2.1, 149.9, 2.1, 149.9, 150.1, 1.9, 2.1),
  -- straddles RA = 0
  (4, 'science', 'r', 60003.1, 60, NULL, NULL, NULL, NULL, NULL, 'F2', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   0.0, 10.0, 359.9, 9.9, 0.1, 9.9, 0.1, 10.1, 359.9, 10.1, 359.9, 0.1, 9.9, 10.1),
  -- rotated 45 degrees: a diamond of half-diagonal 0.1 deg
  (5, 'science', 'i', 60004.1, 60, NULL, NULL, NULL, NULL, NULL, 'F3', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   200.0, -30.0, 200.0, -30.1, 200.11547005, -30.0, 200.0, -29.9, 199.88452995, -30.0, 199.88452995, 200.11547005, -30.1, -29.9),
  -- near the north pole
  (6, 'science', 'z', 60005.1, 60, NULL, NULL, NULL, NULL, NULL, 'F4', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   120.0, 89.0, 114.27, 88.9, 125.73, 88.9, 125.73, 89.1, 114.27, 89.1, 114.27, 125.73, 88.9, 89.1),
  -- marked bad
  (7, 'science', 'r', 60000.5, 60, 1.2, 1.0, 23.0, 10, 25.0, 'F1', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', true,
   150.0, 2.0, 149.9, 1.9, 150.1, 1.9, 150.1, 2.1, 149.9, 2.1, 149.9, 150.1, 1.9, 2.1),
  (8, 'coadd', 'r', 60006.1, 600, NULL, 0.9, 25.0, NULL, NULL, 'F1', 'S1', 'cam1', 'P1', 'COADDAAAAAAAAAAAAAAA', false,
   150.0, 2.0, 149.9, 1.9, 150.1, 1.9, 150.1, 2.1, 149.9, 2.1, 149.9, 150.1, 1.9, 2.1),
  -- with extraction products
  (9, 'science', 'r', 60007.1, 60, NULL, NULL, NULL, NULL, NULL, 'F5', 'S1', 'cam1', 'P1', 'PREONEAAAAAAAAAAAAAA', false,
   30.0, -45.0, 29.9, -45.1, 30.1, -45.1, 30.1, -44.9, 29.9, -44.9, 29.9, 30.1, -45.1, -44.9),
  -- of a provenance marked bad
  (10, 'science', 'r', 60008.1, 60, NULL, NULL, NULL, NULL, NULL, 'F5', 'S1', 'cam1', 'P1', 'PREBADAAAAAAAAAAAAAA', false,
   30.0, -45.0, 29.9, -45.1, 30.1, -45.1, 30.1, -44.9, 29.9, -44.9, 29.9, 30.1, -45.1, -44.9)
) AS v(id, type, filt, mjd, expt, air, fwhm, lim, bkg, zp, tgt, sec, inst, proj, prov, bad,
       ra, dec, r00, d00, r10, d10, r11, d11, r01, d01, minra, maxra, mindec, maxdec);
INSERT INTO source_lists (image_id, provenance_id, filepath, md5) VALUES (9, 'EXTONEAAAAAAAAAAAAAA', 'p/9.cat', repeat('0', 32));
INSERT INTO psfs (image_id, provenance_id, filepath, md5) VALUES (9, 'EXTONEAAAAAAAAAAAAAA', 'p/9.psf', repeat('0', 32));
INSERT INTO backgrounds (image_id, provenance_id, filepath, md5) VALUES (9, 'EXTONEAAAAAAAAAAAAAA', 'p/9.bkg', repeat('0', 32));
INSERT INTO world_coordinates (image_id, provenance_id, header) VALUES (9, 'EXTONEAAAAAAAAAAAAAA', 'CTYPE1');
INSERT INTO zero_points (image_id, provenance_id, zp, dzp) VALUES (9, 'EXTONEAAAAAAAAAAAAAA', 25.1, 0.01);
-- image 1 has only some products: not enough for --with-products
INSERT INTO source_lists (image_id, provenance_id, filepath, md5) VALUES (1, 'EXTONEAAAAAAAAAAAAAA', 'p/1.cat', repeat('0', 32));
" >/dev/null || { echo "Bail out! cannot build the footprint table"; exit 1; }
NROWS=$(sql "SELECT count(*) FROM images")
is "$NROWS" "10" "the footprint table holds 10 images"

# ids CASE OPTIONS...: the ids imquery prints, sorted, on one line.
ids() { imquery --ids "$@" 2>"$T_TMP/qerr" | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# ordered OPTIONS...: the ids in the order imquery prints them.
ordered() { imquery --ids "$@" 2>"$T_TMP/qerr" | tr '\n' ' ' | sed 's/ $//'; }
q() { # q WANT DESCRIPTION OPTIONS...
    want=$1; d=$2; shift 2
    got=$(ids "$@")
    is "$got" "$want" "$d"
    [ "$got" = "$want" ] || sed 's/^/#   /' "$T_TMP/qerr"
}

# Containment by the footprint.
q "1 2 3 8" "--ra/--dec: the images containing the point (bad one left out)" --ra 150 --dec 2
q "1 2 3 7 8" "--include-bad brings the image marked bad back" --ra 150 --dec 2 --include-bad
exit_is 2 "a point outside every footprint finds nothing (exit 2)" imquery --ra 150.15 --dec 2
q "4" "RA = 0: a point east of 0 in a straddling image" --ra 0.05 --dec 10
q "4" "RA = 0: a point west of 0 in a straddling image" --ra 359.95 --dec 10
exit_is 2 "RA = 0: a point beyond the straddling image" imquery --ra 0.3 --dec 10
q "5" "a point inside a footprint rotated 45 degrees" --ra 200.034641 --dec -29.97
exit_is 2 "a point inside the bounding box but outside the rotated footprint's corner" \
    imquery --ra 200.080829 --dec -29.93
q "6" "near the pole: a point inside" --ra 120 --dec 89.0
exit_is 2 "near the pole: the point across the pole" imquery --ra 300 --dec 89.0
exit_is 2 "near the pole: a point poleward of the footprint" imquery --ra 120 --dec 89.25
exit_is 1 "--ra without --dec is bad usage" imquery --ra 150
exit_is 1 "--dec out of range is bad input" imquery --ra 150 --dec 95

# Boxes.
q "1 2 3 8" "--box around the images" --box 149.8,150.2,1.8,2.2
q "1 2 3 8" "--box covered 37.5%, --min-overlap 0.3" --box 149.95,150.35,1.9,2.1 --min-overlap 0.3
exit_is 2 "--box covered 37.5%, --min-overlap 0.4 finds nothing" imquery --box 149.95,150.35,1.9,2.1 --min-overlap 0.4
q "4" "--box across RA = 0" --box 359.8,0.2,9.8,10.2
q "4" "--box across RA = 0 covered 25%, --min-overlap 0.2" --box 359.8,0.2,9.8,10.2 --min-overlap 0.2
exit_is 2 "--box across RA = 0 covered 25%, --min-overlap 0.3" imquery --box 359.8,0.2,9.8,10.2 --min-overlap 0.3
exit_is 1 "--min-overlap without --box is bad usage" imquery --min-overlap 0.5
exit_is 1 "a malformed --box is bad usage" imquery --box 1,2,3

# Names.
q "1 2 3 8" "--target" --target F1
q "3" "--section" --section S2
q "3" "--filter" --filter g
q "3" "--instrument" --instrument cam2
q "3" "--project" --project P2
q "8" "--type coadd" --type coadd
q "9" "--target excludes images of a bad provenance" --target F5
q "9 10" "--include-bad includes them" --target F5 --include-bad

# Time.
q "2 3" "--min-mjd/--max-mjd" --min-mjd 60001 --max-mjd 60002.5
q "2 3" "--since/--until (ISO dates)" --since 2023-02-26 --until 2023-02-27T12:00:00
exit_is 1 "a malformed --since is bad usage" imquery --since 2023-02-30

# Quality.
q "1 8" "--min-seeing/--max-seeing" --min-seeing 0.85 --max-seeing 1.5
q "2 8" "--min-lim-mag" --min-lim-mag 23.2
q "3" "--max-lim-mag" --max-lim-mag 22.5
q "2" "--min-exptime/--max-exptime" --min-exptime 100 --max-exptime 200
q "2" "--min-airmass" --min-airmass 1.3
q "3" "--max-airmass" --max-airmass 1.15
q "2" "--min-bkg" --min-bkg 15
q "3" "--max-bkg" --max-bkg 6
q "2" "--min-zp" --min-zp 25.2
q "3" "--max-zp" --max-zp 24.8

# Provenance and products.
q "3" "--prov (preprocessing)" --prov PRETWOAAAAAAAAAAAAAA
q "1 9" "--prov (extraction: images with any product of it)" --prov EXTONEAAAAAAAAAAAAAA
q "8" "--prov (coaddition)" --prov COADDAAAAAAAAAAAAAAA
q "9" "--with-products: all five products" --with-products
q "9" "--with-products --prov EXTRACTION" --with-products --prov EXTONEAAAAAAAAAAAAAA
q "9" "--with-products --prov PREPROCESSING" --with-products --prov PREONEAAAAAAAAAAAAAA
exit_is 2 "--with-products --prov of images without products" imquery --with-products --prov PRETWOAAAAAAAAAAAAAA

# Combinations.
q "1 8" "place + filter + seeing + time" --ra 150 --dec 2 --filter r --max-seeing 1.5 --min-mjd 59999
q "1 2" "box + filter + type + instrument" --box 149.8,150.2,1.8,2.2 --filter r --type science --instrument cam1
q "2" "place + airmass + zp + bkg" --ra 150 --dec 2 --min-airmass 1.3 --min-zp 25 --min-bkg 15

# Ordering and limits.
is "$(ordered --ra 150 --dec 2 --type science)" "1 2 3" "default order: earliest first"
is "$(ordered --ra 150 --dec 2 --type science --order earliest)" "1 2 3" "--order earliest"
is "$(ordered --ra 150 --dec 2 --type science --order latest)" "3 2 1" "--order latest"
is "$(ordered --ra 150 --dec 2 --type science --order quality)" "1 3 2" "--order quality (lim_mag - 3 fwhm)"
is "$(ordered --ra 150 --dec 2 --type science --order quality --set query.quality_fwhm_factor=0)" "2 1 3" \
    "--order quality with the factor set to 0 ranks by limiting magnitude"
is "$(ordered --ra 150 --dec 2 --order latest --limit 2)" "8 3" "--limit 2"
is "$(ordered --ra 150 --dec 2 --order latest -n 1)" "8" "-n 1"
exit_is 1 "--limit 0 is bad usage" imquery --limit 0
exit_is 1 "an unknown --order is bad usage" imquery --order best

# Output formats.
is "$(imquery --ra 0.05 --dec 10)" "$SKYSTACK_DATA/t/4.fits" "paths (default): under the data root"
is "$(imquery --ra 150 --dec 2 --count)" "4" "--count"
is "$(imquery --ra 150.15 --dec 2 --count)" "0" "--count of nothing is 0"
is "$(imquery --ra 150 --dec 2 --count --limit 2)" "2" "--count honours --limit"
imquery --ra 150 --dec 2 --table >"$T_TMP/table"
is "$(wc -l <"$T_TMP/table" | tr -d ' ')" "5" "--table: a header and one line per image"
like "$(head -1 "$T_TMP/table")" "^id +filter +mjd +exptime +seeing +lim_mag" "--table header"
col=$(head -1 "$T_TMP/table" | awk '{ print index($0, "filter") }')
aligned=1
for line in $(sed 1d "$T_TMP/table" | awk -v c="$col" '{ print substr($0, c, 1) }'); do
    case $line in r | g) ;; *) aligned=0 ;; esac
done
ok $(( 1 - aligned )) "--table: the filter column is aligned under its header"

imquery --ra 150 --dec 2 --json >"$T_TMP/json"
is "$(wc -l <"$T_TMP/json" | tr -d ' ')" "4" "--json: one line per image"
ncols=$(sql "SELECT count(*) FROM information_schema.columns WHERE table_name = 'images'")
nparsed=0
while IFS= read -r line; do
    got=$(printf '%s\n' "SELECT (j->>'id') || ' ' || (SELECT count(*) FROM json_object_keys(j)) || ' ' ||
        json_typeof(j->'mjd') || ' ' || json_typeof(j->'is_bad') || ' ' || (j->>'filter') || ' ' || (j->>'path')
        FROM (SELECT :'line'::json AS j) s;" |
        skydb psql -- -X -q -At -v ON_ERROR_STOP=1 -v line="$line" 2>&1)
    id=${got%% *}
    case $id in 1 | 2 | 8) f=r ;; 3) f=g ;; *) f=? ;; esac
    is "$got" "$id $((ncols + 1)) number boolean $f $SKYSTACK_DATA/t/$id.fits" \
        "--json line for image $id parses, has every column (and path), typed"
    nparsed=$((nparsed + 1))
done <"$T_TMP/json"
is "$nparsed" "4" "--json: every line parsed"

imquery --ra 150 --dec 2 --filter r --since 2023-02-25 --sql >"$T_TMP/sql"
ok $? "--sql prints the statement"
like "$(cat "$T_TMP/sql")" "PREPARE imquery\(" "--sql: a PREPARE with typed parameters"
like "$(cat "$T_TMP/sql")" "i.filter = \\\$[0-9]+::text" "--sql: values are parameters"
sed -n '/^PREPARE/,/^EXECUTE/p' "$T_TMP/sql" | sed '$d' | grep -q "'r'"
ok $(( $? == 0 )) "--sql: no value is spliced into the statement"
from_sql=$(skydb psql -- -X -q -At -v ON_ERROR_STOP=1 -f "$T_TMP/sql" | cut -d'|' -f1 | sort -n | tr '\n' ' ' | sed 's/ $//')
is "$from_sql" "$(ids --ra 150 --dec 2 --filter r --since 2023-02-25)" "--sql run through psql returns what imquery returns"
exit_is 1 "two output formats are bad usage" imquery --ids --json

# SQL injection through every string option: no rows, nothing changed.
before=$(sql "SELECT count(*) || ' ' || (SELECT count(*) FROM provenances) FROM images")
for bad in "F1' OR '1'='1" "x'); DELETE FROM images; --" "F1\" OR 1=1 --" "\\'; DROP TABLE images; --" "r' UNION SELECT * FROM images --"; do
    for opt in target section filter instrument project type prov; do
        imquery --$opt "$bad" --ids >"$T_TMP/out" 2>"$T_TMP/err"
        rc=$?
        if [ "$rc" -ne 2 ] || [ -s "$T_TMP/out" ]; then
            ok 1 "--$opt \"$bad\": no rows"
            echo "#   exit $rc, output: $(head -3 "$T_TMP/out")"
        else
            ok 0 "--$opt \"$bad\": no rows"
        fi
    done
    imquery --filter "$bad" --sql >"$T_TMP/sql" 2>/dev/null
    sed -n '/^PREPARE/,/^EXECUTE/p' "$T_TMP/sql" | sed '$d' | grep -qiE "DELETE|DROP|UNION|1=1"
    ok $(( $? == 0 )) "--sql with \"$bad\": the string only appears as a value"
done
is "$(sql "SELECT count(*) || ' ' || (SELECT count(*) FROM provenances) FROM images")" "$before" \
    "after the injection attempts every row is still there"
done_testing
