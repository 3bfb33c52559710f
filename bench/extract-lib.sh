# extract-lib.sh: shared by bench/extract and bench/extract-compare: run
# Source Extractor 2.25 with settings matched to extract's configuration.
#
# se_config DIR FWHM_PX THRESH_SIGMA : writes DIR/se.conv (the Gaussian
# filter extract uses: 1-D taps exp(-j^2/2s^2), |j| <= ceil(3s), outer
# product, unit sum), DIR/se.param, and prints the DETECT_THRESH that
# equals extract's threshold in filtered-noise sigmas (THRESH * sum g^2,
# since Source Extractor thresholds the unit-sum filtered image in per-pixel
# sigmas).
se_config() {
    awk -v f="$2" -v t="$3" -v dir="$1" 'BEGIN {
        s = f / 2.3548200450309493; r = int(3 * s); if (r < 3 * s) r++; if (r < 1) r = 1
        for (j = -r; j <= r; j++) { g[j] = exp(-0.5 * j * j / (s * s)); sum += g[j] }
        for (j = -r; j <= r; j++) { g[j] /= sum; s2 += g[j] * g[j] }
        conv = dir "/se.conv"
        printf "CONV NORM\n# Gaussian FWHM %.4f px, as extract filters\n", f > conv
        for (y = -r; y <= r; y++) {
            line = ""
            for (x = -r; x <= r; x++) line = line sprintf("%.8f ", g[x] * g[y])
            print line > conv
        }
        printf "%.6f\n", t * s2
    }'
    cat >"$1/se.param" <<'EOF'
NUMBER
X_IMAGE
Y_IMAGE
XWIN_IMAGE
YWIN_IMAGE
FLUX_APER(4)
FLUXERR_APER(4)
FLUX_AUTO
FLUXERR_AUTO
FWHM_IMAGE
FLAGS
EOF
}

# se_run IMAGE WEIGHT|- CATALOG DIR FWHM_PX DETECT_THRESH GAIN APERTURE_DIAMETERS
se_run() {
    # (sh has no local variables: se_ names keep the caller's intact)
    se_img=$1; se_wgt=$2; se_cat=$3; se_dir=$4; se_fwhm=$5; se_thr=$6; se_gain=$7; se_apers=$8
    if [ "$se_wgt" = "-" ]; then se_wopt="-WEIGHT_TYPE NONE"
    else se_wopt="-WEIGHT_TYPE MAP_WEIGHT -WEIGHT_IMAGE $se_wgt"; fi
    # shellcheck disable=SC2086
    source-extractor "$se_img" -c /dev/null -CATALOG_NAME "$se_cat" -CATALOG_TYPE ASCII_HEAD \
        -PARAMETERS_NAME "$se_dir/se.param" -FILTER Y -FILTER_NAME "$se_dir/se.conv" \
        -DETECT_THRESH "$se_thr" -ANALYSIS_THRESH "$se_thr" -THRESH_TYPE RELATIVE -DETECT_MINAREA 5 \
        -DEBLEND_NTHRESH 32 -DEBLEND_MINCONT 0.005 -CLEAN N -MASK_TYPE CORRECT \
        -BACK_TYPE AUTO -BACK_SIZE 128 -BACK_FILTERSIZE 3 -BACKPHOTO_TYPE GLOBAL \
        -PHOT_APERTURES "$se_apers" -PHOT_AUTOPARAMS 2.5,3.5 -GAIN "$se_gain" -SATUR_KEY SATURATE \
        -PIXEL_SCALE 1 -SEEING_FWHM "$se_fwhm" -STARNNW_NAME /usr/share/source-extractor/default.nnw \
        -NTHREADS 1 -VERBOSE_TYPE QUIET $se_wopt
}

# Median of numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Wall time of a command in seconds.
wall() {
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }'
}

# "wall cpu" seconds of a command (cpu = user + system of the process and
# its children: on a shared machine the fairer figure).
timed() {
    t0=$(date +%s.%N)
    c0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    t1=$(date +%s.%N)
    c1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
    tck=$(getconf CLK_TCK)
    echo "$t0 $t1 $c0 $c1 $tck" | awk '{ printf "%.4f %.4f\n", $2 - $1, ($4 - $3) / $5 }'
}

# se_psfex_run IMAGE WEIGHT|- DIR FWHM_PX DETECT_THRESH GAIN APERTURE_DIAMETERS:
# Source Extractor as se_run, writing an LDAC catalogue with 35x35 vignets
# (DIR/se.ldac), then PSFEx on it (/usr/share/psfex/default.psfex, one
# thread, no check plots or images): the peer of extract with its PSF.
se_psfex_run() {
    sp_img=$1; sp_wgt=$2; sp_dir=$3
    { cat "$sp_dir/se.param"; echo "FLUX_RADIUS"; echo "ELONGATION"; echo "SNR_WIN"; echo "VIGNET(35,35)"; } \
        >"$sp_dir/se-psf.param"
    if [ "$sp_wgt" = "-" ]; then sp_wopt="-WEIGHT_TYPE NONE"
    else sp_wopt="-WEIGHT_TYPE MAP_WEIGHT -WEIGHT_IMAGE $sp_wgt"; fi
    # shellcheck disable=SC2086
    source-extractor "$sp_img" -c /dev/null -CATALOG_NAME "$sp_dir/se.ldac" -CATALOG_TYPE FITS_LDAC \
        -PARAMETERS_NAME "$sp_dir/se-psf.param" -FILTER Y -FILTER_NAME "$sp_dir/se.conv" \
        -DETECT_THRESH "$5" -ANALYSIS_THRESH "$5" -THRESH_TYPE RELATIVE -DETECT_MINAREA 5 \
        -DEBLEND_NTHRESH 32 -DEBLEND_MINCONT 0.005 -CLEAN N -MASK_TYPE CORRECT \
        -BACK_TYPE AUTO -BACK_SIZE 128 -BACK_FILTERSIZE 3 -BACKPHOTO_TYPE GLOBAL \
        -PHOT_APERTURES "$7" -PHOT_AUTOPARAMS 2.5,3.5 -GAIN "$6" -SATUR_KEY SATURATE \
        -PIXEL_SCALE 1 -SEEING_FWHM "$4" -STARNNW_NAME /usr/share/source-extractor/default.nnw \
        -NTHREADS 1 -VERBOSE_TYPE QUIET $sp_wopt &&
    psfex "$sp_dir/se.ldac" -c /usr/share/psfex/default.psfex -PSF_DIR "$sp_dir" \
        -CHECKPLOT_TYPE NONE -CHECKIMAGE_TYPE NONE -WRITE_XML N -NTHREADS 1 -VERBOSE_TYPE QUIET
}
