#!/usr/bin/env python3
"""skycheck.py: an independent check of skystack's products against imsim's
truth, written with numpy and astropy only (no skystack code, no skystack
conventions beyond the FITS files themselves), so that a mistake shared by
the library and its own tests cannot hide.

    skycheck.py zp SOURCES.fits TRUTH.fits [SOURCES.fits TRUTH.fits]...
        zero point: MAGZERO of each source list against its truth MAGZERO
        (zp_diff; with several pairs zp_diff_1, zp_diff_2, ... in their
        order, and --max zp_diff=LIMIT holds for each)
    skycheck.py noise COADD.fits TRUTH.fits...
        pixel noise against the WGT plane's prediction where every input
        overlaps, away from every true source
    skycheck.py flux COADD.fits TRUTH.fits...
        aperture fluxes (local sky annulus) of isolated true stars against
        10^(-0.4 (mag - MAGZERO)), and the FWHM of their stacked profile
    skycheck.py score COADD.fits TRUTH.fits...
        the SCORE plane's standard deviation on blank sky (1 when it is in
        units of its own noise)
    skycheck.py depth COADD.fits TRUTH.fits...
        5-sigma point-source depth of a matched filter: the empirical PSF of
        bright isolated stars, the filtered image's noise measured in
        source-free pixels (so correlated noise counts), MAGZERO
The coadd checks combine, comma-separated (noise,flux,depth COADD.fits
TRUTH.fits...), on one reading of the files. Each prints `name value`
lines; --max NAME=LIMIT (repeatable) makes the exit status 1 when |value|
exceeds LIMIT (for ratios: |value - 1|), with a line `# NAME = value
beyond LIMIT` (or `# NAME: not measured`) for each limit missed. The
truth tables are imsim's exp_NNN.truth.fits (HDU SOURCES: ra, dec, mag,
type, x, y, flux; header MAGZERO, PSFFWHM).
"""
import sys
import warnings

import numpy as np
from astropy.io import fits


def robust_std(v):
    v = v[np.isfinite(v)]
    return 1.4826 * np.median(np.abs(v - np.median(v)))


def clipped_std(v, k=5.0):
    """Standard deviation with iterative k-sigma clipping (few outliers
    removed, unlike a MAD: what noise a user measures)."""
    v = v[np.isfinite(v)]
    s = robust_std(v)
    m = np.median(v)
    for _ in range(10):
        keep = np.abs(v - m) < k * s
        m2, s2 = v[keep].mean(), v[keep].std()
        if abs(s2 - s) < 1e-4 * s:
            break
        m, s = m2, s2
    return s


def read_truth(paths):
    """Union of the truth tables: ra, dec, mag, type, one row per source id."""
    rows = {}
    fwhm = []
    for p in paths:
        t = fits.getdata(p, "SOURCES")
        h = fits.getheader(p, "SOURCES")
        fwhm.append(h["PSFFWHM"])
        # the columns read once (indexing the table row by row is slow)
        ids, ra, dec, mag, typ = (np.asarray(t[c]) for c in ("id", "ra", "dec", "mag", "type"))
        for i in range(len(ids)):
            rows.setdefault(int(ids[i]), (ra[i], dec[i], mag[i], typ[i]))
    a = np.array(list(rows.values()), dtype=float)
    return a[:, 0], a[:, 1], a[:, 2], a[:, 3].astype(int), max(fwhm)


def pairs_within(x, y, r):
    """For each point, the number of other points within r (grid hashing)."""
    cell = {}
    cx, cy = np.floor(x / r).astype(int), np.floor(y / r).astype(int)
    for i in range(len(x)):
        cell.setdefault((cx[i], cy[i]), []).append(i)
    near = [[] for _ in range(len(x))]
    for i in range(len(x)):
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in cell.get((cx[i] + dx, cy[i] + dy), ()):
                    if j != i and (x[j] - x[i]) ** 2 + (y[j] - y[i]) ** 2 < r * r:
                        near[i].append(j)
    return near


class Coadd:
    def __init__(self, path):
        h = fits.open(path)
        self.sci = h["SCI"].data.astype(float)
        self.wgt = h["WGT"].data.astype(float)
        self.hdr = h["SCI"].header
        self.nimg = h["NIMG"].data if "NIMG" in h else None
        from astropy.wcs import WCS  # (a slow import the zero-point check does without)
        self.wcs = WCS(self.hdr)
        self.zp = self.hdr["MAGZERO"]
        self.blank = None  # (good pixels, background): blank_pixels

    def pix(self, ra, dec):
        x, y = self.wcs.all_world2pix(ra, dec, 0)
        return x, y


def source_mask(shape, x, y, flux, fwhm, sigma_pix):
    """True within each source's reach: where a Gaussian of that FWHM and
    flux stays above 0.1 sigma of the pixel noise (doubled for the wings),
    at least 2 FWHM."""
    h, w = shape
    mask = np.zeros(shape, bool)
    s = fwhm / 2.3548
    peak = flux / (2 * np.pi * s * s) / sigma_pix
    r = np.where(peak > 0.1, s * np.sqrt(2 * np.log(np.maximum(peak / 0.1, 1.0))), 0.0)
    r = np.maximum(2.0 * r, 2.0 * fwhm)
    for xi, yi, ri in zip(x, y, r):
        if not (np.isfinite(xi) and np.isfinite(yi)) or xi < -ri or yi < -ri or xi > w + ri or yi > h + ri:
            continue
        x0, x1 = int(max(0, np.floor(xi - ri))), int(min(w, np.ceil(xi + ri) + 1))
        y0, y1 = int(max(0, np.floor(yi - ri))), int(min(h, np.ceil(yi + ri) + 1))
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (xx - xi) ** 2 + (yy - yi) ** 2 <= ri * ri
    return mask


def local_background(img, good, box=64):
    """Median per box of the good pixels, bilinearly interpolated."""
    h, w = img.shape
    ny, nx = (h + box - 1) // box, (w + box - 1) // box
    grid = np.full((ny, nx), np.nan)
    for j in range(ny):
        for i in range(nx):
            b = img[j * box:(j + 1) * box, i * box:(i + 1) * box]
            g = good[j * box:(j + 1) * box, i * box:(i + 1) * box]
            if g.sum() > 0.2 * g.size:
                grid[j, i] = np.median(b[g])
    if np.all(np.isnan(grid)):
        return np.zeros_like(img)
    grid[np.isnan(grid)] = np.nanmedian(grid)
    yc, xc = (np.arange(ny) + 0.5) * box - 0.5, (np.arange(nx) + 0.5) * box - 0.5
    ys, xs = np.arange(h), np.arange(w)
    rows = np.array([np.interp(xs, xc, grid[j]) for j in range(ny)])
    return np.array([np.interp(ys, yc, rows[:, i]) for i in range(w)]).T


def full_overlap(c):
    if c.nimg is not None:
        return (c.nimg == c.nimg.max()) & (c.wgt > 0)
    return c.wgt > 0


def truth_in_coadd(c, truth):
    ra, dec, mag, typ, fwhm = truth
    x, y = c.pix(ra, dec)
    flux = 10 ** (-0.4 * (mag - c.zp))
    return x, y, flux, typ, mag, fwhm


def blank_pixels(c, truth):
    """Full-overlap pixels away from every true source, their background and
    the pixel noise the weight map predicts there (computed once a coadd)."""
    if c.blank is None:
        c.blank = blank_pixels_of(c, truth)
    return c.blank


def blank_pixels_of(c, truth):
    x, y, flux, typ, mag, fwhm = truth_in_coadd(c, truth)
    full = full_overlap(c)
    sigma_pix = np.median(1 / np.sqrt(c.wgt[full]))
    reach = fwhm * 1.2
    mask = source_mask(c.sci.shape, x, y, flux * np.where(typ == 1, 1.5, 1.0), reach, sigma_pix)
    good = full & ~mask
    bg = local_background(c.sci, good)
    return good, bg


def cmd_noise(c, truth):
    good, bg = blank_pixels(c, truth)
    z = (c.sci - bg) * np.sqrt(np.where(c.wgt > 0, c.wgt, 0))
    v = z[good]
    return {"noise_ratio": clipped_std(v, 5.0), "noise_ratio_robust": robust_std(v),
            "noise_pixels": float(v.size)}


def isolated_stars(c, truth, mag_lo, mag_hi, radius, margin=None):
    margin = radius if margin is None else margin
    x, y, flux, typ, mag, fwhm = truth_in_coadd(c, truth)
    h, w = c.sci.shape
    near = pairs_within(x, y, radius)
    sel = []
    for i in range(len(x)):
        if typ[i] != 0 or not (mag_lo <= mag[i] <= mag_hi):
            continue
        if not (margin < x[i] < w - 1 - margin and margin < y[i] < h - 1 - margin):
            continue
        # the neighbours within the radius bring less than 0.3 % of its flux
        if sum(flux[j] for j in near[i]) > 3e-3 * flux[i]:
            continue
        # data (weight > 0) over the whole box the measurement uses
        m = int(np.ceil(margin))
        ix, iy = int(round(x[i])), int(round(y[i]))
        if not np.all(c.wgt[iy - m:iy + m + 1, ix - m:ix + m + 1] > 0):
            continue
        sel.append(i)
    return np.array(sel, int), x, y, flux, fwhm


def aperture(img, blank, x, y, r, rin, rout):
    """Sum within r of (x, y) (pixels sub-sampled 5x5), minus the sky: the
    5-sigma clipped mean of the annulus [rin, rout)'s pixels that no true
    source reaches (`blank`), so that faint neighbours do not raise it."""
    x0, x1 = int(np.floor(x - rout)), int(np.ceil(x + rout)) + 1
    y0, y1 = int(np.floor(y - rout)), int(np.ceil(y + rout)) + 1
    sub = img[y0:y1, x0:x1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(xx - x, yy - y)
    ann = (d >= rin) & (d < rout) & blank[y0:y1, x0:x1]
    v = sub[ann]
    sky = np.median(v)
    for _ in range(5):
        s = v.std()
        sky = v[np.abs(v - sky) < 5 * s].mean()
    o = (np.arange(5) + 0.5) / 5 - 0.5
    frac = np.zeros_like(d)
    for oy in o:
        for ox in o:
            frac += np.hypot(xx + ox - x, yy + oy - y) <= r
    frac /= 25.0
    return ((sub - sky) * frac).sum()


def stacked_fwhm(img, x, y, half):
    """FWHM of the stars' mean radial profile: each star's profile over
    its own flux, in 0.25 px bins of distance from its truth position, the
    half-maximum radius interpolated (the peak from a quadratic fit of the
    inner bins)."""
    rs, vs = [], []
    for xi, yi in zip(x, y):
        ix, iy = int(round(xi)), int(round(yi))
        sub = img[iy - half:iy + half + 1, ix - half:ix + half + 1]
        yy, xx = np.mgrid[iy - half:iy + half + 1, ix - half:ix + half + 1]
        d = np.hypot(xx - xi, yy - yi)
        sky = np.median(sub[d > 0.8 * half])
        tot = (sub - sky)[d < 0.8 * half].sum()
        if tot <= 0:
            continue
        rs.append(d.ravel())
        vs.append(((sub - sky) / tot).ravel())
    r, v = np.concatenate(rs), np.concatenate(vs)
    bins = np.arange(0, half, 0.25)
    idx = np.digitize(r, bins)
    prof = np.array([np.mean(v[idx == k]) if np.any(idx == k) else np.nan for k in range(1, len(bins))])
    rc = bins[:-1] + 0.125
    inner = np.isfinite(prof) & (rc < 1.0)
    a = np.polyfit(rc[inner] ** 2, prof[inner], 1)
    peak = a[1]
    below = np.where(np.isfinite(prof) & (prof < 0.5 * peak))[0]
    k = below[0]
    r0, r1, p0, p1 = rc[k - 1], rc[k], prof[k - 1], prof[k]
    return 2 * (r0 + (0.5 * peak - p0) * (r1 - r0) / (p1 - p0))


def cmd_flux(c, truth, mag_lo, mag_hi):
    fwhm = truth[4]
    rad = 5.0 * fwhm
    sel, x, y, flux, _ = isolated_stars(c, truth, mag_lo, mag_hi, rad + fwhm, rad + 4 * fwhm + 1)
    if len(sel) < 5:
        return {"flux_stars": float(len(sel))}
    good, _ = blank_pixels(c, truth)
    blank = good
    ratios = np.array([aperture(c.sci, blank, x[i], y[i], rad, rad + fwhm, rad + 4 * fwhm) / flux[i]
                       for i in sel])
    # a star whose sky annulus holds no blank pixel has no sky: left out
    ok = np.isfinite(ratios)
    sel, ratios = sel[ok], ratios[ok]
    if len(sel) < 5:
        return {"flux_stars": float(len(sel))}
    out = {"flux_stars": float(len(sel)), "flux_ratio": float(np.median(ratios))}
    out["fwhm_px"] = stacked_fwhm(c.sci, x[sel], y[sel], int(np.ceil(3 * fwhm)))
    return out


def empirical_psf(c, truth, half):
    fwhm = truth[4]
    sel, x, y, flux, _ = isolated_stars(c, truth, 14.0, 21.0, 2 * half, 2 * half + 1)
    if len(sel) < 5:
        return None
    sel = sel[np.argsort(-flux[sel])][:40]
    n = 2 * half + 1
    acc = np.zeros((n, n))
    for i in sel:
        ix, iy = int(round(x[i])), int(round(y[i]))
        sub = c.sci[iy - 2 * half:iy + 2 * half + 1, ix - 2 * half:ix + 2 * half + 1]
        # shift to the truth position by Fourier interpolation
        fy, fx = np.fft.fftfreq(sub.shape[0]), np.fft.fftfreq(sub.shape[1])
        ph = np.exp(2j * np.pi * (fx[None, :] * (x[i] - ix) + fy[:, None] * (y[i] - iy)))
        sh = np.real(np.fft.ifft2(np.fft.fft2(sub - np.median(sub)) * ph))
        st = sh[half:3 * half + 1, half:3 * half + 1]
        acc += st / flux[i]
    acc /= len(sel)
    return acc / acc.sum(), fwhm


def cmd_depth(c, truth):
    half = int(np.ceil(2.5 * truth[4]))
    ep = empirical_psf(c, truth, half)
    if ep is None:
        return {}
    psf, _ = ep
    good, bg = blank_pixels(c, truth)
    img = np.where(c.wgt > 0, c.sci - bg, 0.0)
    # matched filter: correlate with the PSF (FFT, zero-padded)
    H, W = img.shape
    k = np.zeros((H, W))
    n = psf.shape[0]
    k[:n, :n] = psf[::-1, ::-1]
    k = np.roll(k, (-(n // 2), -(n // 2)), axis=(0, 1))
    filt = np.real(np.fft.ifft2(np.fft.fft2(img) * np.fft.fft2(k)))
    # keep pixels whose filter footprint is blank
    m = np.pad(~good, half)
    from numpy.lib.stride_tricks import sliding_window_view
    touched = sliding_window_view(m, (n, n)).any(axis=(2, 3))
    sel = good & ~touched
    sigma_f = clipped_std(filt[sel], 5.0)
    resp = (psf * psf).sum()  # filtered peak of a unit-flux source
    flim = 5.0 * sigma_f / resp
    return {"depth_mag": c.zp - 2.5 * np.log10(flim), "depth_pixels": float(sel.sum())}


def cmd_score(path, c, truth):
    """The SCORE plane's spread on blank sky (pixels whose 5-FWHM
    neighbourhood no true source reaches): 1 for a noise-normalised
    matched filter."""
    score = fits.getdata(path, "SCORE").astype(float)
    good, _ = blank_pixels(c, truth)
    half = int(np.ceil(2.5 * truth[4]))
    n = 2 * half + 1
    from numpy.lib.stride_tricks import sliding_window_view
    touched = sliding_window_view(np.pad(~good, half, constant_values=True), (n, n)).any(axis=(2, 3))
    sel = good & ~touched
    return {"score_std_ratio": clipped_std(score[sel], 5.0), "score_pixels": float(sel.sum())}


def cmd_zp(src_path, truth_path):
    sh = fits.getheader(src_path, 1)
    th = fits.getheader(truth_path, "SOURCES")
    return {"zp_diff": sh["MAGZERO"] - th["MAGZERO"]}


def main(argv):
    warnings.simplefilter("ignore")
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    cmd = argv[1]
    limits = {}
    args = []
    mags = (14.0, 20.0)
    i = 2
    while i < len(argv):
        if argv[i] == "--max":
            k, v = argv[i + 1].split("=")
            limits[k] = float(v)
            i += 2
        elif argv[i] == "--mags":
            lo, hi = argv[i + 1].split(",")
            mags = (float(lo), float(hi))
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if cmd == "zp":
        if len(args) < 2 or len(args) % 2:
            sys.stderr.write("skycheck.py zp: SOURCES.fits TRUTH.fits pairs\n")
            return 2
        if len(args) == 2:
            out = cmd_zp(args[0], args[1])
        else:
            out = {}
            for k in range(0, len(args), 2):
                out["zp_diff_%d" % (k // 2 + 1)] = cmd_zp(args[k], args[k + 1])["zp_diff"]
    else:
        cmds = cmd.split(",")
        for k in cmds:
            if k not in ("noise", "flux", "depth", "score"):
                sys.stderr.write("skycheck.py: unknown command %s\n" % k)
                return 2
        c = Coadd(args[0])
        truth = read_truth(args[1:])
        out = {}
        for k in cmds:
            if k == "noise":
                out.update(cmd_noise(c, truth))
            elif k == "flux":
                out.update(cmd_flux(c, truth, *mags))
            elif k == "depth":
                out.update(cmd_depth(c, truth))
            else:
                out.update(cmd_score(args[0], c, truth))
    bad = 0
    for k, v in out.items():
        print("%s %.6g" % (k, v))
    for k, lim in limits.items():
        # a limit on NAME holds for NAME and for each numbered NAME_n
        keys = [o for o in out if o == k or (o.startswith(k + "_") and o[len(k) + 1:].isdigit())]
        if not keys:
            print("# %s: not measured" % k)
            bad = 1
            continue
        for o in keys:
            v = out[o]
            dev = abs(v - 1.0) if k.endswith("_ratio") else abs(v)
            if not dev <= lim:
                print("# %s = %.6g beyond %g" % (o, v, lim))
                bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
