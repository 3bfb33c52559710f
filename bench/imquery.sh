#!/bin/sh
# bench/imquery.sh: the imquery speed figure ("under 50 ms on a table
# of 1,000,000 images"). Starts a private cluster in a scratch folder, fills
# it with 1,000,000 synthetic images (5,000 survey fields over the whole
# sky, 200 dithered visits each, g/r/i/z, five years, DECam-CCD-sized
# footprints), then times a typical query through the program:
#   imquery --ra --dec --filter r --min-mjd M --max-mjd M+7 --max-seeing 1.5
# at RUNS different places and prints the median wall-clock time.
#
# Usage: sh bench/imquery.sh [ROWS] [RUNS]   (defaults 1000000 and 31)
# Needs build/bin (make) and the PostgreSQL server with q3c. With
# BENCH_DB_DIR=DIR the cluster lives there and is kept (and filled only when
# empty), so that the timing can be repeated without refilling.
# It also times `imquery --version` (process start, no database) as a
# baseline: on a loaded machine both grow together.
set -eu
ROWS=${1:-1000000}
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
export SKYSTACK_DB_DIR="${BENCH_DB_DIR:-$WORK/db}" SKYSTACK_DATA="$WORK/data"
cleanup() {
    [ -n "${BENCH_DB_DIR:-}" ] || skydb -q stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

skydb -q start
have=$(skydb psql -- -X -At -c "SELECT count(*) FROM images")
if [ "$have" -eq 0 ]; then
echo "filling $ROWS synthetic images..." >&2
t0=$(date +%s)
skydb psql -- -q -v ON_ERROR_STOP=1 -v rows="$ROWS" <<'SQL'
INSERT INTO code_versions (process, version) VALUES ('preprocessing', '1.0') ON CONFLICT DO NOTHING;
INSERT INTO provenances (id, process, code_version) VALUES ('BENCHAAAAAAAAAAAAAAA', 'preprocessing', '1.0');
CREATE FUNCTION pg_temp.wrap360(x double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE AS 'SELECT x - 360 * floor(x / 360)';
SELECT setseed(0.25);
INSERT INTO images (filepath, md5, provenance_id, type, original_md5, original_hdu, instrument,
    filter, section_id, target, mjd, end_mjd, exp_time, airmass, width, height, ra, dec,
    ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, dec_corner_11,
    ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg,
    fwhm_estimate, lim_mag_estimate, zero_point_estimate, bkg_mean_estimate, bkg_rms_estimate)
SELECT 'bench/' || g || '.fits', md5(g::text), 'BENCHAAAAAAAAAAAAAAA', 'science', md5(g::text), '1',
    'decam', f, 'N' || (g % 62), 'field' || k, m, m + 0.0012, 100, 1 + r1, 2046, 4094,
    ra, dec,
    pg_temp.wrap360(ra - dra), greatest(dec - 0.15, -90), pg_temp.wrap360(ra + dra), greatest(dec - 0.15, -90),
    pg_temp.wrap360(ra + dra), least(dec + 0.15, 90), pg_temp.wrap360(ra - dra), least(dec + 0.15, 90),
    pg_temp.wrap360(ra - dra), pg_temp.wrap360(ra + dra), greatest(dec - 0.15, -90), least(dec + 0.15, 90),
    0.17, 0.6 + 2 * r2, 21 + 3.5 * r3, 25 + r1, 120, 6 + 4 * r2
FROM (
    SELECT g, k, f, m, r1, r2, r3, ra, dec,
           least(0.075 / greatest(cos(radians(dec)), 1e-3), 179.9) AS dra
    FROM (
        SELECT g, k, f, m, r1, r2, r3,
               pg_temp.wrap360(k * 137.50776405 + (rx - 0.5) * 0.04 / greatest(cos(radians(dec_f)), 1e-3)) AS ra,
               greatest(least(dec_f + (ry - 0.5) * 0.04, 89.8), -89.8) AS dec
        FROM (
            SELECT g, g % 5000 AS k,
                   degrees(asin(2 * ((g % 5000) + 0.5) / 5000 - 1)) AS dec_f,
                   (ARRAY['g', 'r', 'i', 'z'])[1 + floor(random() * 4)::int] AS f,
                   58000 + random() * 1826 AS m,
                   random() AS r1, random() AS r2, random() AS r3, random() AS rx, random() AS ry
            FROM generate_series(1, :rows) AS g
            OFFSET 0
        ) a
        OFFSET 0
    ) b
    OFFSET 0
) c;
ANALYZE images;
SQL
echo "filled in $(( $(date +%s) - t0 )) s" >&2
else
    ROWS=$have
fi

# Query places: the centres of RUNS random images, with a 7-day window
# around each image's date.
skydb psql -- -At -F ' ' -c "SELECT ra, dec, mjd - 3 FROM images TABLESAMPLE BERNOULLI (1) REPEATABLE (7) LIMIT $RUNS" >"$WORK/places"
imquery --ra 10 --dec 10 --filter r --count >/dev/null  # warm the caches
: >"$WORK/times"
found=0
while read -r ra dec m0; do
    m1=$(awk -v m="$m0" 'BEGIN { printf "%.6f", m + 7 }')
    t_start=$(date +%s%N)
    n=$(imquery --ra "$ra" --dec "$dec" --filter r --min-mjd "$m0" --max-mjd "$m1" --max-seeing 1.5 \
        2>/dev/null | wc -l)
    t_end=$(date +%s%N)
    found=$((found + n))
    echo $(( (t_end - t_start) / 1000 )) >>"$WORK/times"
done <"$WORK/places"
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] / 1000 }'; }
: >"$WORK/base"
for k in $(seq "$RUNS"); do
    t_start=$(date +%s%N)
    imquery --version >/dev/null
    t_end=$(date +%s%N)
    echo $(( (t_end - t_start) / 1000 )) >>"$WORK/base"
done
median_us=$(sort -n "$WORK/times" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
max_us=$(sort -n "$WORK/times" | tail -1)
printf 'imquery on %d images: median %.1f ms, max %.1f ms over %d queries (%d images found; goal < 50 ms)\n' \
    "$ROWS" "$(echo "$median_us" | awk '{ print $1 / 1000 }')" "$(echo "$max_us" | awk '{ print $1 / 1000 }')" \
    "$(wc -l <"$WORK/times")" "$found"
printf 'baseline: imquery --version (process start, no database): median %.1f ms; load average %s\n' \
    "$(median "$WORK/base")" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
