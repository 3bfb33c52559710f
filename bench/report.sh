#!/bin/sh
# bench/report.sh: the report speed figure ("the report of a refset of
# 1,000 references <= 10 s"). On a private cluster in a scratch folder:
# imsim, imingest, extract and refmake make one real reference (with its
# coadd, quick-look, PSF and zero point); SQL then clones its coadd's images
# row (shifted on the sky on a 40 x 25 grid, so the coverage map has 1,000
# footprints), its coadd_components and its refs row N-1 times, each clone
# a field of its own, and links the coadd file and its quick-look under the
# clones' names; then times
#   refset report bench --outdir DIR
# RUNS times and prints the times and the median, and checks that the page
# lists N products.
#
# Usage: sh bench/report.sh [N] [RUNS]   (defaults 1000 and 5)
# Needs build/bin (make) and the PostgreSQL server with q3c.
set -eu
N=${1:-1000}
RUNS=${2:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
export PATH="${SK_BUILDDIR:-$HERE/build}/bin:$PATH"
export SKYSTACK_SHARE="$HERE/share/skystack"
unset SKYSTACK_DB
WORK=$(mktemp -d /tmp/skbench-report-XXXXXX)
chmod 755 "$WORK"
export SKYSTACK_DB_DIR="$WORK/db" SKYSTACK_DATA="$WORK/data" SKYSTACK_CONFIG="$WORK/cfg.json"
trap 'skydb -q stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cd "$WORK"
printf '{"extraction": {"astrometry": {"refcat": "%s/sim/refcat.fits"}}}\n' "$WORK" >cfg.json
skydb -q start >/dev/null
mkdir -p sim
imsim -q --nexp 4 --size 256x256 --seed 7 --outdir sim --set simulation.cadence_days=1 >sim/list
xargs imingest -q <sim/list >/dev/null
imquery --filter r | extract -q - >/dev/null 2>&1 || true
refmake -q --refset bench --target SIMFIELD --section S1 --filter r >coadd.path
sql() { skydb psql -- -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
orig=$(sql "SELECT image_id FROM refs LIMIT 1")
cat >clone.sql <<SQL
DO \$\$
DECLARE cols text;
BEGIN
  SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) INTO cols
    FROM information_schema.columns WHERE table_name = 'images' AND column_name NOT IN
    ('id', 'filepath', 'input_set_hash', 'target', 'ra', 'ra_corner_00', 'ra_corner_10', 'ra_corner_11',
     'ra_corner_01', 'minra', 'maxra', 'dec', 'dec_corner_00', 'dec_corner_10', 'dec_corner_11',
     'dec_corner_01', 'mindec', 'maxdec', 'created_at');
  EXECUTE format('CREATE TEMP TABLE clones AS SELECT g, (g %% 40) * 0.03 AS dra, (g / 40) * 0.03 AS ddec '
                 'FROM generate_series(1, $((N - 1))) g');
  EXECUTE format('INSERT INTO images (filepath, input_set_hash, target, ra, ra_corner_00, ra_corner_10, '
    'ra_corner_11, ra_corner_01, minra, maxra, dec, dec_corner_00, dec_corner_10, dec_corner_11, '
    'dec_corner_01, mindec, maxdec, %s) SELECT regexp_replace(i.filepath, ''[.]fits\$'', '''') || ''-c'' || c.g || ''.fits'', '
    'encode(sha256((i.input_set_hash || c.g)::bytea), ''hex''), ''F'' || c.g, i.ra + c.dra, '
    'i.ra_corner_00 + c.dra, i.ra_corner_10 + c.dra, i.ra_corner_11 + c.dra, i.ra_corner_01 + c.dra, '
    'i.minra + c.dra, i.maxra + c.dra, i.dec + c.ddec, i.dec_corner_00 + c.ddec, i.dec_corner_10 + c.ddec, '
    'i.dec_corner_11 + c.ddec, i.dec_corner_01 + c.ddec, i.mindec + c.ddec, i.maxdec + c.ddec, %s '
    'FROM images i, clones c WHERE i.id = $orig', cols, cols);
END \$\$;
INSERT INTO coadd_components SELECT n.id, c.image_id, c.source_list_id, c.psf_id, c.background_id,
  c.world_coordinates_id, c.zero_point_id FROM images n JOIN coadd_components c ON c.coadd_image_id = $orig
  WHERE n.target LIKE 'F%';
INSERT INTO refs (image_id, provenance_id, source_list_id, psf_id, background_id, world_coordinates_id,
  zero_point_id, place, target, section_id, filter, instrument, ra, dec, ra_corner_00, dec_corner_00,
  ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra,
  mindec, maxdec)
SELECT n.id, r.provenance_id, r.source_list_id, r.psf_id, r.background_id, r.world_coordinates_id,
  r.zero_point_id, '{"section":"S1","target":"' || n.target || '"}', n.target, r.section_id, r.filter,
  r.instrument, n.ra, n.dec, n.ra_corner_00, n.dec_corner_00, n.ra_corner_10, n.dec_corner_10,
  n.ra_corner_11, n.dec_corner_11, n.ra_corner_01, n.dec_corner_01, n.minra, n.maxra, n.mindec, n.maxdec
FROM images n, refs r WHERE n.target LIKE 'F%' AND r.image_id = $orig;
SQL
skydb psql -- -qtAX -v ON_ERROR_STOP=1 -f "$WORK/clone.sql" >/dev/null
# the clones' files: links to the coadd and its quick-look
src=$(cat coadd.path)
sql "SELECT filepath FROM images WHERE target LIKE 'F%'" | while read -r rel; do
    ln -s "$src" "$SKYSTACK_DATA/$rel"
    ln -s "${src%.fits}.png" "$SKYSTACK_DATA/${rel%.fits}.png"
done
nrefs=$(sql "SELECT count(*) FROM refs")
: >times
i=0
while [ "$i" -lt "$RUNS" ]; do
    /usr/bin/time -f "%e %U %S" -o t.txt refset -q report bench --outdir "$WORK/report" >page
    awk '{printf "%.3f\n", $1}' t.txt >>times
    i=$((i + 1))
done
rows=$(grep -c '^<tr><td>' "$(cat page)" || true)
echo "refset report of a refset of $nrefs references ($rows product rows on the page): $RUNS runs"
echo "  wall times (s): $(tr '\n' ' ' <times)"
echo "  median: $(sort -n times | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s   (goal <= 10 s)"
