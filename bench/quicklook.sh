#!/bin/sh
# bench/quicklook.sh: the quick-look speed figure ("quick-look of a
# 4096x4096 coadd <= 0.5 s"). Simulates one 4096x4096 exposure with imsim,
# extracts it (its source list is circled), and times, through the program,
#   imlook --sources LIST -o OUT.png IMAGE
# (read SCI and WGT, bin to 1024 px, asinh stretch, circles, arrows, scale
# bar, PNG) RUNS times; prints every time and the median, and checks that
# the PNG is 1024 x 1024.
#
# Usage: sh bench/quicklook.sh [RUNS]   (default 11). Needs build/bin (make) and GNU time
# (/usr/bin/time, Debian package time). On a loaded machine the wall time
# includes waiting for a core: the CPU time is printed too.
set -eu
RUNS=${1:-11}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SK_BUILDDIR:-$HERE/build}/bin
export PATH="$BIN:$PATH"
export SKYSTACK_SHARE="$HERE/share/skystack"
export SKYSTACK_CONFIG=
WORK=$(mktemp -d /tmp/skbench-look-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
imsim -q -n 1 --size 4096x4096 --nstars 3000 --seed 11 -o sim >/dev/null
extract -q --no-db sim/exp_000.fits >/dev/null
src=$(ls sim/exp_000.*.sources.fits | head -1)
i=0
: >times
: >cpu
while [ "$i" -lt "$RUNS" ]; do
    /usr/bin/time -f "%e %U %S" -o t.txt imlook -q --sources "$src" -o look.png sim/exp_000.fits >/dev/null
    awk '{printf "%.3f\n", $1}' t.txt >>times
    awk '{printf "%.3f\n", $2 + $3}' t.txt >>cpu
    i=$((i + 1))
done
size=$(od -An -tu1 -j16 -N8 look.png | awk '{printf "%d x %d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}')
echo "quick-look of a 4096x4096 image (imlook, read + bin to 1024 + stretch + overlay + PNG): $RUNS runs"
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "  wall times (s): $(tr '\n' ' ' <times)"
echo "  CPU times (user+sys, s): $(tr '\n' ' ' <cpu)"
echo "  median wall $(med times) s, median CPU $(med cpu) s   (goal <= 0.5 s); PNG $size"
