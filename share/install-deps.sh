#!/bin/sh
# Install the Debian 12 packages skystack needs to build, test and benchmark.
# Usage: share/install-deps.sh [--bench]   (run as root, or with sudo available)
# Idempotent: does nothing when every package is already installed.
set -eu

pkgs="build-essential autoconf pkg-config perl ca-certificates
libcfitsio-dev wcslib-dev libfftw3-dev libpq-dev libjansson-dev libssl-dev libpng-dev
libchealpix-dev liberfa-dev
postgresql postgresql-15-q3c postgresql-contrib util-linux
python3 python3-numpy python3-astropy source-extractor"
if [ "${1:-}" = "--bench" ]; then
    pkgs="$pkgs swarp source-extractor psfex scamp hyperfine time linux-perf"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo
    else echo "install-deps: missing packages:$missing; run as root" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: installed$missing" >&2
