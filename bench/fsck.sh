#!/bin/sh
# bench/fsck.sh: the consistency-check figure ("skydb fsck over 100,000
# rows and files: at most 10 s"). Starts a private cluster in a scratch
# folder, registers N science images (rows made by SQL) and writes their N
# files plus N sidecars under the data root, adds a few inconsistencies
# (orphan files, a temporary file, a row without file), then times
#   skydb fsck            (rows against files, claims, pending coadds)
#   skydb fsck --checksums (also every file's md5; the files are empty)
# and checks that it found exactly the inconsistencies made.
#
# Usage: sh bench/fsck.sh [N]   (default 100000)
set -eu
N=${1:-100000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SK_BUILDDIR:-$HERE/build}/bin
export PATH="$BIN:$PATH"
export SKYSTACK_SHARE="$HERE/share/skystack"
unset SKYSTACK_DB
export SKYSTACK_CONFIG=
WORK=$(mktemp -d /tmp/skbench-XXXXXX)
chmod 755 "$WORK"
export SKYSTACK_DB_DIR="$WORK/db" SKYSTACK_DATA="$WORK/data"
cleanup() {
    skydb -q stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
skydb -q start
EMPTY=d41d8cd98f00b204e9800998ecf8427e
skydb psql -- -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO code_versions (process, version) VALUES ('preprocessing', '1.0');
INSERT INTO provenances (id, process, code_version) VALUES ('BENCHAAAAAAAAAAAAAAA', 'preprocessing', '1.0');
INSERT INTO images (filepath, md5, provenance_id, type, original_md5, original_hdu, instrument, filter,
    mjd, end_mjd, width, height, ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10,
    ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg)
SELECT 'bench/d' || (g / 1000) || '/img' || g || '.fits', '$EMPTY', 'BENCHAAAAAAAAAAAAAAA', 'science',
    md5(g::text), '0', 'BENCH', 'r', 60000, 60000, 10, 10, 10, 10, 9.9, 9.9, 10.1, 9.9, 10.1, 10.1,
    9.9, 10.1, 9.9, 10.1, 9.9, 10.1, 0.15
FROM generate_series(1, $N) g;
SQL
mkdir -p "$SKYSTACK_DATA/bench"
awk -v n="$N" -v root="$SKYSTACK_DATA/bench" 'BEGIN {
    for (d = 0; d <= int(n / 1000); d++) print root "/d" d }' | xargs mkdir -p
awk -v n="$N" -v root="$SKYSTACK_DATA/bench" 'BEGIN {
    for (g = 1; g <= n; g++) { f = root "/d" int(g / 1000) "/img" g ".fits"; print f; print f ".json" } }' |
    xargs touch
# the inconsistencies: 3 orphan files, 1 temporary file, 1 row without file
touch "$SKYSTACK_DATA/bench/orphan1.fits" "$SKYSTACK_DATA/bench/d0/orphan2.fits" \
      "$SKYSTACK_DATA/bench/d0/orphan2.fits.json" "$SKYSTACK_DATA/bench/d1/img1001.fits.tmp-AbC123"
rm "$SKYSTACK_DATA/bench/d2/img2002.fits"
now() { date +%s.%N; }
for args in "" "--checksums"; do
    t0=$(now)
    skydb fsck $args >"$WORK/out" 2>"$WORK/err" && rc=0 || rc=$?
    t1=$(now)
    summary=$(tail -1 "$WORK/out")
    echo "skydb fsck $args: $(echo "$t1 - $t0" | bc) s (exit $rc)"
    echo "  $summary"
    case "$summary" in
    *"3 orphan files, 1 temporary files, 1 missing files, 0 checksum mismatches"*) ;;
    *) echo "  UNEXPECTED findings:"; cat "$WORK/out" "$WORK/err"; exit 1 ;;
    esac
done
