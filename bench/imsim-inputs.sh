#!/bin/sh
# bench/imsim-inputs.sh: the benchmark inputs: NEXP simulated DECam-CCD-sized
# exposures (2048x4096, 20000 stars each, galaxies, defects) of one field,
# their truth tables and reference catalog, written with the distortion as
# TPV so that SWarp and Source Extractor read the same WCS as skystack.
# Prints the product paths on stdout and the time imsim took on stderr.
#
# Usage: sh bench/imsim-inputs.sh DIR [NEXP] [SEED]   (defaults 10 and 1)
# Extra imsim options may follow in IMSIM_OPTS (e.g. "--threads 1").
set -eu
DIR=${1:?usage: sh bench/imsim-inputs.sh DIR [NEXP] [SEED]}
NEXP=${2:-10}
SEED=${3:-1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SK_BUILDDIR:-$HERE/build}/bin
export PATH="$BIN:$PATH"
export SKYSTACK_SHARE="${SKYSTACK_SHARE:-$HERE/share/skystack}"

t0=$(date +%s.%N)
# shellcheck disable=SC2086
imsim --nexp "$NEXP" --seed "$SEED" --size 2048x4096 --nstars 20000 --distortion tpv \
      --outdir "$DIR" --print-all ${IMSIM_OPTS:-}
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$NEXP" \
    'BEGIN { printf "imsim: %d exposures of 2048x4096 with 20000 stars in %.1f s\n", n, b - a }' >&2
