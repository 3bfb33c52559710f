#!/bin/sh
# bench/fpack-real.sh: the interoperability figure ("every real image,
# fpack-compressed and uncompressed, gives the same source list"). For each
# image of ../shared/data/real (DECam images with their oow weight and ood
# mask), `extract --no-db` runs on the file as it is and on its
# tile-compressed copy, each into a folder of its own, and the two source
# lists are compared value by value (srclist-compare.c). Integer images:
# fpack's default (Rice, lossless). Float images: lossless GZIP tiles
# (imcopy 'OUT[compress GZIP; q 0]': fpack 1.7.0's `-g -q 0` still
# quantises here) -- these count in the figure; and also fpack's default
# (quantised, q = 4, lossy), whose source list is compared by position
# (every source within 0.1 px of one of the other list), reported apart.
#
# Usage: sh bench/fpack-real.sh [DATADIR]   (default /work/shared/data/real)
# Needs build/ (make) and fpack (Debian package libcfitsio-bin).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DATA=${1:-$(cd "$root/../.." 2>/dev/null && pwd)/shared/data/real}
[ -d "$DATA" ] || DATA=/work/shared/data/real
export PATH="$root/build/bin:$PATH" SKYSTACK_SHARE="$root/share/skystack" SKYSTACK_CONFIG=
command -v fpack >/dev/null || { echo "bench/fpack-real.sh: fpack not installed (Debian package libcfitsio-bin)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/skbench-fpack-XXXXXX")
trap 'rm -rf "$work"' EXIT
dep() { sed -n "s/^$1 *= *//p" "$root/config.mk"; }
# shellcheck disable=SC2046
cc -O2 -std=gnu11 -I"$root/lib" $(dep DEP_CFLAGS) -o "$work/cmp" "$here/srclist-compare.c" \
    "$root/build/lib/libskystack.a" $(dep DEP_LIBS) || exit 2

total=0; same=0
find "$DATA" -name '*.fits' ! -path '*/gaia/*' ! -name '*_oow_*' ! -name '*_ood_*' | sort >"$work/list"
while read -r img; do
    total=$((total + 1))
    name=$(basename "$img" .fits)
    d="$work/$total"
    mkdir -p "$d/plain" "$d/fz"
    cp "$img" "$d/plain/$name.fits"
    # BITPIX of the image HDU (the last HDU with NAXIS > 0 seen; a DECam
    # file's primary HDU is empty)
    bitpix=$(fold -w 80 "$img" | awk '/^BITPIX  =/ {b = $3} /^NAXIS   =/ && $3 > 0 {print b; exit}')
    # lossless: Rice (integer), GZIP unquantised (float)
    pack() {
        case "$3" in
        -*) imcopy "$1" "$2[compress GZIP; q 0]" >/dev/null ;;
        *) fpack -O "$2" "$1" ;;
        esac
    }
    pack "$img" "$d/fz/$name.fits.fz" "$bitpix" 2>"$d/err" || { echo "FAIL $name: $(cat "$d/err")"; continue; }
    opts=""; w=""; m=""
    case "$name" in *_ooi_*)
        w=$(echo "$img" | sed 's/_ooi_/_oow_/'); m=$(echo "$img" | sed 's/_ooi_/_ood_/')
        pack "$w" "$d/fz/w.fits.fz" -32 && pack "$m" "$d/fz/m.fits.fz" 16
        opts="--weight W --mask M" ;;
    esac
    run() {  # run DIR IMAGE [WEIGHT MASK]
        if [ -n "$opts" ]; then
            extract -q --no-db --outdir "$1/out" --weight "$3" --mask "$4" "$2"
        else
            extract -q --no-db --outdir "$1/out" "$2"
        fi
    }
    run "$d/plain" "$d/plain/$name.fits" "${w:-}" "${m:-}" >/dev/null 2>"$d/e1"; r1=$?
    run "$d/fz" "$d/fz/$name.fits.fz" "$d/fz/w.fits.fz" "$d/fz/m.fits.fz" >/dev/null 2>"$d/e2"; r2=$?
    if [ $r1 -ne 0 ] || [ $r2 -ne 0 ]; then
        # the same refusal on both is the same answer
        if [ $r1 -eq $r2 ] && [ "$(sed 's|.*/||' "$d/e1")" = "$(sed 's|.*/||; s|\.fz||' "$d/e2")" ]; then
            same=$((same + 1)); echo "same   $name: both refused ($(head -1 "$d/e1" | cut -c1-90))"
        else
            echo "DIFFER $name: exit $r1 and $r2: $(head -1 "$d/e1") / $(head -1 "$d/e2")"
        fi
        continue
    fi
    a=$(ls "$d/plain/out/"*.sources.fits); b=$(ls "$d/fz/out/"*.sources.fits)
    if res=$("$work/cmp" "$a" "$b"); then same=$((same + 1)); echo "same   $name ($bitpix): $res"
    else echo "DIFFER $name ($bitpix): $res"; fi
    case "$bitpix" in -*)
        mkdir -p "$d/lossy"; fpack -O "$d/lossy/$name.fits.fz" "$img"
        run "$d/lossy" "$d/lossy/$name.fits.fz" "$d/fz/w.fits.fz" "$d/fz/m.fits.fz" >/dev/null 2>&1 &&
            echo "       lossy fpack default (q=4): $("$work/cmp" "$(ls "$d/lossy/out/"*.sources.fits)" "$a" --match 0.1)"
    ;; esac
done <"$work/list"
echo "fpack-compressed and uncompressed real images: $same of $total give the same source list"
[ "$same" -eq "$total" ]
