#!/bin/sh
# bench/refmake.sh: the refmake speed figure ("refmake on a place whose
# reference exists: under 100 ms"). Starts a private cluster in a scratch
# folder; lets refmake create refset "bench" (its provenances computed from
# the default configuration and saved); fills the database with PLACES
# fields, each with a coadd, its extraction products and a reference of
# that refset in each of g, r, i, z; then times, through the program,
#   refmake --refset bench --target FIELD --section S1 --filter F
# for RUNS random existing places (and the same by --ra --dec), checks that
# every run printed the reference's coadd and made nothing, and prints the
# medians.
#
# Usage: sh bench/refmake.sh [PLACES] [RUNS]   (defaults 10000 and 31)
# Needs build/bin (make) and the PostgreSQL server with q3c. It also times
# `refmake --version` (process start, no database) as a baseline.
set -eu
PLACES=${1:-10000}
RUNS=${2:-31}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SK_BUILDDIR:-$HERE/build}/bin
export PATH="$BIN:$PATH"
export SKYSTACK_SHARE="$HERE/share/skystack"
unset SKYSTACK_DB
export SKYSTACK_CONFIG=
# A fresh, world-traversable folder: as root the cluster runs as postgres.
WORK=$(mktemp -d /tmp/skbench-XXXXXX)
chmod 755 "$WORK"
export SKYSTACK_DB_DIR="$WORK/db" SKYSTACK_DATA="$WORK/data"
cleanup() {
    skydb -q stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

skydb -q start
# refset "bench" and the whole provenance chain, saved by refmake itself
# (there is no image yet, so it makes no reference and exits 2).
refmake -q --refset bench --target F0 --section S1 --filter r 2>/dev/null && exit 1
CHAIN=$(refmake --refset bench --target F0 --section S1 --filter r --dry-run --json)
field() { echo "$CHAIN" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
COA=$(field coaddition)
CEX=$(field coadd_extraction)
REFPROV=$(skydb psql -- -X -At -c "SELECT provenance_id FROM refset_provenances rp JOIN refsets s
    ON s.id = rp.refset_id WHERE s.name = 'bench'")

echo "filling $PLACES places x 4 filters with coadds, products and references..." >&2
t0=$(date +%s)
skydb psql -- -q -v ON_ERROR_STOP=1 -v places="$PLACES" -v coa="$COA" -v cex="$CEX" -v ref="$REFPROV" <<'SQL'
CREATE FUNCTION pg_temp.wrap360(x double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE AS 'SELECT x - 360 * floor(x / 360)';
CREATE TEMP TABLE p AS
SELECT g, 'F' || k AS target, f, pg_temp.wrap360(k * 137.50776405) AS ra,
       degrees(asin(2 * (k + 0.5) / :places - 1)) AS dec
FROM (SELECT g, g / 4 AS k, (ARRAY['g', 'r', 'i', 'z'])[1 + g % 4] AS f
      FROM generate_series(0, 4 * :places - 1) AS g) a;
INSERT INTO images (id, filepath, md5, provenance_id, type, input_set_hash, instrument, filter,
    section_id, target, mjd, end_mjd, width, height, ra, dec,
    ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11,
    ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg)
SELECT g + 1, 'coadds/' || g || '.fits', md5(g::text), :'coa', 'coadd', encode(sha256(g::text::bytea), 'hex'),
    'DECam', f, 'S1', target, 60000, 60007, 2048, 4096, ra, dec,
    pg_temp.wrap360(ra - dra), dec - 0.15, pg_temp.wrap360(ra + dra), dec - 0.15,
    pg_temp.wrap360(ra + dra), dec + 0.15, pg_temp.wrap360(ra - dra), dec + 0.15,
    pg_temp.wrap360(ra - dra), pg_temp.wrap360(ra + dra), dec - 0.15, dec + 0.15, 0.17
FROM (SELECT *, least(0.075 / greatest(cos(radians(dec)), 1e-3), 179.9) AS dra FROM p) q;
INSERT INTO source_lists (id, image_id, provenance_id, filepath, md5)
    SELECT g + 1, g + 1, :'cex', 'coadds/' || g || '.cat.fits', md5(g::text) FROM p;
INSERT INTO psfs (id, image_id, provenance_id, filepath, md5)
    SELECT g + 1, g + 1, :'cex', 'coadds/' || g || '.psf', md5(g::text) FROM p;
INSERT INTO backgrounds (id, image_id, provenance_id, filepath, md5)
    SELECT g + 1, g + 1, :'cex', 'coadds/' || g || '.bkg.fits', md5(g::text) FROM p;
INSERT INTO world_coordinates (id, image_id, provenance_id, header)
    SELECT g + 1, g + 1, :'cex', 'END' FROM p;
INSERT INTO zero_points (id, image_id, provenance_id, zp, dzp)
    SELECT g + 1, g + 1, :'cex', 30, 0.01 FROM p;
INSERT INTO refs (image_id, provenance_id, source_list_id, psf_id, background_id,
    world_coordinates_id, zero_point_id, place, target, section_id, filter, instrument, ra, dec,
    ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11,
    ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec)
SELECT i.id, :'ref', i.id, i.id, i.id, i.id, i.id,
    '{"section":"S1","target":"' || i.target || '"}', i.target, 'S1', i.filter,
    i.instrument, i.ra, i.dec, i.ra_corner_00, i.dec_corner_00, i.ra_corner_10, i.dec_corner_10,
    i.ra_corner_11, i.dec_corner_11, i.ra_corner_01, i.dec_corner_01, i.minra, i.maxra, i.mindec,
    i.maxdec
FROM images i;
ANALYZE;
SQL
echo "filled in $(( $(date +%s) - t0 )) s" >&2
NREFS=$(skydb psql -- -X -At -c "SELECT count(*) FROM refs")

skydb psql -- -X -At -F ' ' -c "SELECT target, filter, ra, dec, image_id FROM refs
    TABLESAMPLE BERNOULLI (5) REPEATABLE (3) LIMIT $RUNS" >"$WORK/places"
refmake -q --refset bench --target F1 --section S1 --filter r >/dev/null # warm the caches
: >"$WORK/t_field"
: >"$WORK/t_pos"
bad=0
while read -r target filter ra dec image; do
    want="$SKYSTACK_DATA/coadds/$((image - 1)).fits"
    t_start=$(date +%s%N)
    got=$(refmake -q --refset bench --target "$target" --section S1 --filter "$filter")
    t_end=$(date +%s%N)
    [ "$got" = "$want" ] || bad=$((bad + 1))
    echo $(( (t_end - t_start) / 1000 )) >>"$WORK/t_field"
    t_start=$(date +%s%N)
    got=$(refmake -q --refset bench --ra "$ra" --dec "$dec" --filter "$filter")
    t_end=$(date +%s%N)
    [ "$got" = "$want" ] || bad=$((bad + 1))
    echo $(( (t_end - t_start) / 1000 )) >>"$WORK/t_pos"
done <"$WORK/places"
: >"$WORK/base"
for k in $(seq "$RUNS"); do
    t_start=$(date +%s%N)
    refmake --version >/dev/null
    t_end=$(date +%s%N)
    echo $(( (t_end - t_start) / 1000 )) >>"$WORK/base"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'; }
maxof() { sort -n "$1" | tail -1 | awk '{ printf "%.1f", $1 / 1000 }'; }
NOW=$(skydb psql -- -X -At -c "SELECT count(*) FROM refs")
[ "$NOW" -eq "$NREFS" ] || { echo "refmake made references: $NREFS before, $NOW after" >&2; exit 1; }
[ "$bad" -eq 0 ] || { echo "$bad runs printed another reference" >&2; exit 1; }
printf 'refmake, existing reference (%d references in the database), %d places:\n' "$NREFS" "$(wc -l <"$WORK/t_field")"
printf '  by --target/--section: median %s ms, max %s ms (goal < 100 ms)\n' "$(median "$WORK/t_field")" "$(maxof "$WORK/t_field")"
printf '  by --ra/--dec:         median %s ms, max %s ms (goal < 100 ms)\n' "$(median "$WORK/t_pos")" "$(maxof "$WORK/t_pos")"
printf 'baseline: refmake --version (process start, no database): median %s ms; load average %s\n' \
    "$(median "$WORK/base")" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
