#!/bin/sh
# The EXIT STATUS sections of the manuals (man/man1/*.1), provoked: each
# code a program lists, at least once per program, for the codes that need
# no database (the codes that need one, and extract and coadd with the
# database, are provoked in exit_status_db.t); and the documented
# configuration behaviours of skystack.conf(5) that extract checks
# (detection.filter, psf.size_px, psf.oversampling).
. "$SK_SRCDIR/tests/prog/lib.sh"
plan 39

cd "$T_TMP" || exit 1
imsim -q -n 3 --size 200x200 --nstars 150 --seed 5 --set simulation.dither_arcsec=5 -o sim >/dev/null 2>"$T_TMP/err"
ok $? "imsim (exit 0)"
exit_is 1 "imsim: an unknown option: exit 1" imsim --no-such-option
exit_is 1 "imsim: a value out of range: exit 1" imsim -q -n 0 -o sim2
exit_is 1 "imsim: an output directory that is not one: exit 1" imsim -q -n 1 --size 64x64 -o sim/exp_000.fits
like "$(cat "$T_TMP/err")" "sim/exp_000\.fits" "the message names it"
# imsim's 2 is not used; 3: a product that cannot be written (a folder
# stands where the reference catalogue goes)
mkdir -p blocked/refcat.fits
exit_is 3 "imsim: a product that cannot be written: exit 3" imsim -q -n 1 --size 64x64 --nstars 20 -o blocked
like "$(cat "$T_TMP/err")" "blocked/refcat\.fits" "the message names the product"

# extract: 0, 1, 2 (a missing file, no astrometric/photometric solution), 3
exit_is 0 "extract: exit 0" extract -q --no-db -o e sim/exp_000.fits
exit_is 1 "extract: an unknown option: exit 1" extract --no-db --no-such-option sim/exp_000.fits
exit_is 1 "extract: an id with --no-db: exit 1" extract --no-db 12
exit_is 1 "extract: --update-header without a reference catalogue: exit 1" \
    extract --no-db --update-header sim/exp_000.fits
exit_is 2 "extract: an image that does not exist: exit 2" extract --no-db nope.fits
like "$(cat "$T_TMP/err")" "nope\.fits" "the message names it"
exit_is 2 "extract: a weight map that does not exist: exit 2" extract --no-db --weight nope-w.fits sim/exp_000.fits
like "$(cat "$T_TMP/err")" "nope-w\.fits" "the message names it"
imsim -q -n 2 --size 200x200 --nstars 100 --seed 5 -o few >/dev/null 2>&1
exit_is 2 "extract: too few stars for a zero point (calibration failed): exit 2" \
    extract --no-db -o f --refcat few/refcat.fits few/exp_000.fits
like "$(cat "$T_TMP/err")" "stars|matches" "the message says how many were found"
[ ! -e f ] || [ -z "$(ls f)" ]; ok $? "the image then gets no products at all"
# an unwritable output folder; as root every folder is writable, and a
# folder that cannot be made (below a regular file) stands for it
mkdir ro && chmod 500 ro
echo x >afile
if [ -w ro ]; then RO=afile/out; else RO=ro; fi
exit_is 3 "extract: an output folder it cannot write: exit 3" extract --no-db -o $RO sim/exp_000.fits
like "$(cat "$T_TMP/err")" "$RO[/:]" "the message names it"

# coadd: 0, 1, 2, 3
extract -q --no-db sim/exp_000.fits sim/exp_001.fits >/dev/null 2>&1
exit_is 0 "coadd: exit 0" coadd -q --no-db --no-extraction --zero-points 25,25 --outdir c sim/exp_000.fits sim/exp_001.fits
exit_is 1 "coadd: an unknown method: exit 1" coadd --no-db --method nope sim/exp_000.fits sim/exp_001.fits
exit_is 1 "coadd: a list that does not match the inputs: exit 1" \
    coadd --no-db --zero-points 25 sim/exp_000.fits sim/exp_001.fits
exit_is 1 "coadd: an input without its products: exit 1" coadd --no-db sim/exp_002.fits
exit_is 2 "coadd: an input that does not exist: exit 2" coadd --no-db nope.fits
exit_is 3 "coadd: an output it cannot write: exit 3" \
    coadd --no-db --no-extraction --zero-points 25,25 -o $RO/c.fits sim/exp_000.fits sim/exp_001.fits
like "$(cat "$T_TMP/err")" "$RO[/:]" "the message names it"

# imquery, imingest, refmake, refset, skydb: their usage errors (1); the
# database codes are provoked in exit_status_db.t
exit_is 1 "imquery: bad usage: exit 1" imquery --ra 10
exit_is 1 "imingest: bad usage: exit 1" imingest --no-such-option
exit_is 1 "refmake: bad usage: exit 1" refmake --no-such-option
exit_is 1 "refset: an unknown command: exit 1" refset no-such-command
exit_is 1 "skydb: an unknown command: exit 1" skydb no-such-command

# skystack.conf(5): detection.filter is gaussian or none (never the PSF)
exit_is 0 "detection.filter none is accepted" extract -q --no-db -o n --set extraction.detection.filter=none sim/exp_000.fits
exit_is 1 "detection.filter psf is refused: exit 1" extract --no-db -o n --set extraction.detection.filter=psf sim/exp_000.fits
like "$(cat "$T_TMP/err")" "detection.filter" "naming the key"
exit_is 1 "psf.size_px even: exit 1" extract --no-db -o n --set extraction.psf.size_px=20 sim/exp_000.fits
exit_is 1 "psf.size_px below 5: exit 1" extract --no-db -o n --set extraction.psf.size_px=3 sim/exp_000.fits
exit_is 1 "psf.oversampling between 0 and 1: exit 1" extract --no-db -o n --set extraction.psf.oversampling=0.5 sim/exp_000.fits
exit_is 1 "psf.oversampling above 8: exit 1" extract --no-db -o n --set extraction.psf.oversampling=9 sim/exp_000.fits
done_testing
