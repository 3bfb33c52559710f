#!/bin/sh
# tests/browser/report.sh: the report page of refset(1) checked in a real
# browser (not part of `make check`: it needs Chromium). Builds a small
# refset on a private cluster (imsim, imingest, extract, refmake), writes
# `refset report` and the `--since` report of the coadds, and for each page
#   - every file it references (img src, a href) exists, and
#   - headless Chromium loads it (in a frame of a harness page of this
#     script) with every image decoded (complete, natural width > 0).
# Prints TAP. Usage: sh tests/browser/report.sh   (needs build/bin: make)
# Installs the Debian package chromium when it is missing (as root).
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="${SK_BUILDDIR:-$HERE/build}/bin:$PATH"
export SKYSTACK_SHARE="$HERE/share/skystack"
if ! command -v chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
        { echo "1..0 # SKIP chromium cannot be installed"; exit 0; }
fi
W=$(mktemp -d /tmp/skbrowser-XXXXXX)
chmod 755 "$W"
export SKYSTACK_DB_DIR="$W/db" SKYSTACK_DATA="$W/data" SKYSTACK_CONFIG="$W/cfg.json"
unset SKYSTACK_DB
trap 'skydb -q stop >/dev/null 2>&1; rm -rf "$W"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
echo "1..8"
cd "$W" || exit 1
printf '{"extraction": {"astrometry": {"refcat": "%s/sim/refcat.fits"}}}\n' "$W" >cfg.json
skydb -q start >/dev/null 2>&1; ok $? "private cluster started"
mkdir -p sim
imsim -q --nexp 4 --size 256x256 --seed 7 --outdir sim --set simulation.cadence_days=1 >sim/list
xargs imingest -q <sim/list >/dev/null
imquery --filter r | extract -q - >/dev/null
refmake -q --refset br --target SIMFIELD --section S1 --filter r >/dev/null
ok $? "a reference made"
refset report br --outdir "$W/rep" >page1; ok $? "refset report br"
refset report --since 2000-01-01 --outdir "$W/since" >page2; ok $? "refset report --since"

# every referenced file exists
check_files() {
    dir=$(dirname "$1")
    grep -o '\(src\|href\)="[^"]*"' "$1" | sed 's/^[a-z]*="//; s/"$//' | sort -u | while read -r f; do
        [ -f "$dir/$f" ] || echo "missing: $f"
    done
}
for p in "$(cat page1)" "$(cat page2)"; do
    check_files "$p" >missing
    [ ! -s missing ] && grep -q '<img' "$p"; ok $? "$(basename "$(dirname "$p")"): every referenced file exists ($(grep -o 'src="' "$p" | wc -l) images)"
    sed 's/^/# /' missing
done

# the harness: the page in a frame; after it loads, every image decoded?
browse() {
    cat >"$W/harness.html" <<HTML
<!DOCTYPE html><html><body><pre id="out">not loaded</pre>
<iframe id="f" style="width:1400px;height:20000px" src="file://$1"></iframe>
<script>
const f = document.getElementById('f');
f.onload = () => {
  const d = f.contentDocument;
  if (!d) { document.getElementById('out').textContent = 'no access to the page'; return; }
  const imgs = [...d.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  setTimeout(() => {
    const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
    document.getElementById('out').textContent =
      'RESULT title=' + (d.title ? 1 : 0) + ' images=' + imgs.length + ' bad=' + bad.length + ' ' + bad.join(' ');
  }, 3000);
};
</script></body></html>
HTML
    timeout 120 chromium --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
        --virtual-time-budget=10000 --dump-dom "file://$W/harness.html" 2>/dev/null | grep -o 'id="out">RESULT[^<]*' | sed 's/^id="out">//'
}
for p in "$(cat page1)" "$(cat page2)"; do
    r=$(browse "$p")
    echo "# $r"
    echo "$r" | grep -q 'RESULT title=1 images=[1-9][0-9]* bad=0 '; ok $? "chromium: $(basename "$(dirname "$p")") loads, every image decoded"
done
