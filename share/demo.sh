#!/bin/sh
# demo.sh: the main job of skystack on the embedded default, end to end:
# start the private database, simulate two weeks of exposures of one field,
# ingest and extract them, query them, build the weekly coadd, make a
# reference with refmake, ask for it again (instant), summarise, and write
# the HTML report page of the reference set (refset report).
#
# Environment: SKYSTACK_DEMO_DIR (work folder, default ~/skystack-demo),
# the usual SKYSTACK_* variables (see skystack(7)). Run by `make demo`.
set -eu

work=${SKYSTACK_DEMO_DIR:-$HOME/skystack-demo}
mkdir -p "$work"
cd "$work"

say() { printf '\n== %s\n' "$*" >&2; }

say "1. start the private database (skydb start)"
skydb start
stop_db() { skydb -q stop || true; }
trap stop_db EXIT

# Two weeks of nightly exposures ending last night, so that "the last seven
# days" of the weekly coadd holds the second week.
today_mjd=$(( $(date -u +%s) / 86400 + 40587 ))
start_mjd=$(( today_mjd - 14 ))
say "2. simulate 14 nightly exposures of field SIMFIELD from MJD $start_mjd (imsim)"
mkdir -p sim
imsim -q --nexp 14 --size 512x512 --seed 7 --outdir sim \
      --set simulation.start_mjd=$start_mjd.1 --set simulation.cadence_days=1 >sim/list
wc -l <sim/list | xargs printf '   %s exposures simulated\n' >&2

# One configuration for every step, so that extract, coadd and refmake agree
# on the extraction provenance: the field's reference catalogue.
cat >demo-config.json <<JSON
{"extraction": {"astrometry": {"refcat": "$work/sim/refcat.fits"}}}
JSON
export SKYSTACK_CONFIG="$work/demo-config.json"

say "3. ingest them (imingest)"
xargs imingest <sim/list >ids
wc -l <ids | xargs printf '   %s images registered\n' >&2

say "4. extract sources, PSF, astrometry and zero point (extract)"
extract - <ids >/dev/null # the images just registered, by id

say "5. what the database knows (imquery --table)"
imquery --target SIMFIELD --filter r --order earliest --table

say "6. the weekly coadd: the last 7 days at this place (coadd)"
coadd --target SIMFIELD --section S1 --filter r >coadd.list
cat coadd.list

say "7. a reference for this place in reference set 'demo' (refmake)"
t0=$(date +%s%N)
refmake --refset demo --target SIMFIELD --section S1 --filter r >ref1
t1=$(date +%s%N)
refmake --refset demo --target SIMFIELD --section S1 --filter r >ref2
t2=$(date +%s%N)
cmp -s ref1 ref2 || { echo "demo: the second refmake returned another reference" >&2; exit 1; }

say "8. summary"
refset show demo
refset refs demo --target SIMFIELD --section S1 --filter r
imquery --target SIMFIELD --filter r --type coadd --order earliest --table
# Depth: the median 5-sigma limit of the single exposures against the coadds.
median_lim() { awk 'NR > 1 && $6 != "-" { print $6 }' | sort -n |
               awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "-" }'; }
single=$(imquery --target SIMFIELD --filter r --type science --table | median_lim)
weekly=$(imquery --target SIMFIELD --filter r --type coadd --order latest --limit 1 --table | median_lim)
refdepth=$(imquery --target SIMFIELD --filter r --type coadd --order earliest --limit 1 --table | median_lim)
printf '   5-sigma limiting magnitude: single exposures (median) %s, weekly coadd %s, reference %s\n' \
    "$single" "$weekly" "$refdepth" >&2
printf '   reference: %s\n' "$(cat ref1)" >&2
printf '   provenance sidecar: %s.json\n' "$(cat ref1)" >&2
printf '   refmake first run %d ms, second run %d ms (returned the existing reference)\n' \
    $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 )) >&2

say "9. the report page of reference set 'demo' (refset report)"
refset report demo --outdir "$work/report" >report.path
printf '   report page (open it in a browser): %s\n' "$(cat report.path)" >&2
cat report.path
