#!/usr/bin/python3
"""Compute the WCS test fixtures of tests/unit/test_wcs.c independently of
skystack, with astropy (5.2) and numpy.

Writes into this folder:
  sip-2048x4096.hdr, tan-ra0.hdr, tan-pole.hdr, tan-rot45.hdr
      synthetic headers, one 80-character card per line (no END);
  <name>.pix2sky.csv
      x y ra dec: 0-based pixel -> sky from astropy all_pix2world(origin=0);
  footprints.csv
      name width height, centre, the four outer corners, bounding box
      (edges sampled densely, RA wrap), pole flag;
  scales.csv
      name x y pixel_area_arcsec2 pixel_scale_arcsec: the solid angle of the
      one-pixel quadrilateral (x +- 0.5, y +- 0.5) from its corners' unit
      vectors, a method independent of skystack's local Jacobian.

The DECam and DSS headers are those of tests/data/real (the DECam extension
merged with its primary header as INHERIT = T says). Run from anywhere:
    /usr/bin/python3 tests/data/wcs/make_fixtures.py
"""
import os
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "..", "real")
warnings.simplefilter("ignore", FITSFixedWarning)


def merged_header(path, ext):
    """The extension header with the primary's non-structural cards under it."""
    with fits.open(path) as hdul:
        h = hdul[ext].header.copy()
        if ext > 0 and h.get("INHERIT", False):
            for card in hdul[0].header.cards:
                key = card.keyword
                if key in ("SIMPLE", "BITPIX", "EXTEND", "COMMENT", "HISTORY", "") \
                        or key.startswith("NAXIS") or key in h:
                    continue
                h.append(card)
    return h


def write_hdr(name, header):
    with open(os.path.join(HERE, name + ".hdr"), "w") as f:
        for card in header.cards:
            f.write(str(card.image) + "\n")


def tan_header(ra, dec, width, height, scale_deg, rot_deg=0.0):
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"] = width
    h["NAXIS2"] = height
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CRPIX1"] = (width + 1) / 2.0
    h["CRPIX2"] = (height + 1) / 2.0
    h["CRVAL1"] = ra
    h["CRVAL2"] = dec
    # East to the left (RA decreasing with x) rotated by rot_deg.
    h["CD1_1"] = -scale_deg * c
    h["CD1_2"] = scale_deg * s
    h["CD2_1"] = scale_deg * s
    h["CD2_2"] = scale_deg * c
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    return h


def sip_header():
    """A 2048x4096 chip, 0.263"/px, TAN-SIP of order 3 with a few pixels of
    distortion at the corners, and the inverse AP/BP (order 4) fitted here
    by least squares as astrometric solvers do."""
    w, h = 2048, 4096
    s = 0.263 / 3600.0
    rot = np.radians(0.7)
    hdr = fits.Header()
    hdr["NAXIS"] = 2
    hdr["NAXIS1"] = w
    hdr["NAXIS2"] = h
    hdr["CTYPE1"] = "RA---TAN-SIP"
    hdr["CTYPE2"] = "DEC--TAN-SIP"
    hdr["CRPIX1"] = 1000.25
    hdr["CRPIX2"] = 2070.75
    hdr["CRVAL1"] = 150.1187
    hdr["CRVAL2"] = 2.2056
    hdr["CD1_1"] = -s * np.cos(rot)
    hdr["CD1_2"] = s * np.sin(rot)
    hdr["CD2_1"] = s * np.sin(rot)
    hdr["CD2_2"] = s * np.cos(rot)
    hdr["RADESYS"] = "ICRS"
    A = {(2, 0): 2.1e-7, (1, 1): -3.4e-7, (0, 2): 4.2e-7,
         (3, 0): -1.3e-10, (2, 1): 1.1e-10, (1, 2): -2.2e-10, (0, 3): 6.0e-11}
    B = {(2, 0): -1.7e-7, (1, 1): 2.9e-7, (0, 2): -3.1e-7,
         (3, 0): 9.0e-11, (2, 1): -1.6e-10, (1, 2): 1.2e-10, (0, 3): -8.0e-11}
    hdr["A_ORDER"] = 3
    for (p, q), v in sorted(A.items()):
        hdr["A_%d_%d" % (p, q)] = v
    hdr["B_ORDER"] = 3
    for (p, q), v in sorted(B.items()):
        hdr["B_%d_%d" % (p, q)] = v

    # Inverse: fit U -> u on a dense grid, u = U + AP(U, V).
    gx, gy = np.meshgrid(np.linspace(0.5, w + 0.5, 60), np.linspace(0.5, h + 0.5, 120))
    u = (gx - hdr["CRPIX1"]).ravel()
    v = (gy - hdr["CRPIX2"]).ravel()
    fu = u + sum(c * u ** p * v ** q for (p, q), c in A.items())
    fv = v + sum(c * u ** p * v ** q for (p, q), c in B.items())
    order = 4
    terms = [(p, q) for p in range(order + 1) for q in range(order + 1 - p)]
    M = np.array([fu ** p * fv ** q for p, q in terms]).T
    ap, *_ = np.linalg.lstsq(M, u - fu, rcond=None)
    bp, *_ = np.linalg.lstsq(M, v - fv, rcond=None)
    hdr["AP_ORDER"] = order
    for (p, q), c in zip(terms, ap):
        hdr["AP_%d_%d" % (p, q)] = float(c)
    hdr["BP_ORDER"] = order
    for (p, q), c in zip(terms, bp):
        hdr["BP_%d_%d" % (p, q)] = float(c)
    return hdr


def unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def pixel_area_arcsec2(wcs, x, y):
    """Solid angle of the quadrilateral of corners (x+-0.5, y+-0.5): two
    spherical triangles, tan(E/2) = |a.(b x c)| / (1 + a.b + b.c + c.a), the
    triple product taken on differences to keep its precision."""
    cx = np.array([x - 0.5, x + 0.5, x + 0.5, x - 0.5])
    cy = np.array([y - 0.5, y - 0.5, y + 0.5, y + 0.5])
    ra, dec = wcs.all_pix2world(cx, cy, 0)
    p = unit(ra, dec)
    total = 0.0
    for a, b, c in ((p[0], p[1], p[2]), (p[0], p[2], p[3])):
        triple = np.dot(a, np.cross(b - a, c - a))
        denom = 1.0 + np.dot(a, b) + np.dot(b, c) + np.dot(c, a)
        total += 2.0 * np.arctan2(abs(triple), denom)
    return total * (180.0 / np.pi * 3600.0) ** 2


def footprint(wcs, w, h, per_edge=20001):
    cra, cdec = wcs.all_pix2world([(w - 1) / 2.0], [(h - 1) / 2.0], 0)
    kx = np.array([-0.5, w - 0.5, w - 0.5, -0.5])
    ky = np.array([-0.5, -0.5, h - 0.5, h - 0.5])
    kra, kdec = wcs.all_pix2world(kx, ky, 0)
    t = np.linspace(0.0, 1.0, per_edge)[:-1]
    ex, ey = [], []
    for i in range(4):
        j = (i + 1) % 4
        ex.append(kx[i] + (kx[j] - kx[i]) * t)
        ey.append(ky[i] + (ky[j] - ky[i]) * t)
    ex, ey = np.concatenate(ex), np.concatenate(ey)
    ra, dec = wcs.all_pix2world(ex, ey, 0)
    # Pole inside: the pole maps to a pixel inside the outer edges.
    pole = 0
    for sign in (1, -1):
        with np.errstate(all="ignore"):
            try:
                px, py = wcs.all_world2pix([0.0], [90.0 * sign], 0)
            except Exception:
                continue
        if np.isfinite(px[0]) and -0.5 <= px[0] <= w - 0.5 and -0.5 <= py[0] <= h - 0.5:
            pole = sign
    if pole:
        minra, maxra = 0.0, 360.0
        mindec, maxdec = (dec.min(), 90.0) if pole > 0 else (-90.0, dec.max())
    else:
        # Unwrap RA along the closed edge path, then take its extent.
        step = (np.diff(ra) + 180.0) % 360.0 - 180.0
        unwrapped = ra[0] + np.concatenate([[0.0], np.cumsum(step)])
        lo, hi = unwrapped.min(), unwrapped.max()
        minra = lo % 360.0
        maxra = minra + (hi - lo)
        if maxra > 360.0:
            maxra -= 360.0
        mindec, maxdec = dec.min(), dec.max()
    return [cra[0], cdec[0]] + [v for k in range(4) for v in (kra[k], kdec[k])] + \
        [minra, maxra, mindec, maxdec, pole]


def grid_points(w, h, n):
    xs = np.linspace(-0.5, w - 0.5, n)
    ys = np.linspace(-0.5, h - 0.5, n)
    gx, gy = np.meshgrid(xs, ys)
    return gx.ravel(), gy.ravel()


def main():
    cases = []  # (name, header, width, height, grid n)
    decam = [("decam-n12", "decam-legacysurvey/testcase3/c4d_140818_232043_ooi_z_ls9.N12.fits"),
             ("decam-s4", "decam-legacysurvey/testcase6/c4d_150110_053718_ooi_z_ls9.S4.fits")]
    for name, rel in decam:
        h = merged_header(os.path.join(REAL, rel), 1)
        cases.append((name, h, h["NAXIS1"], h["NAXIS2"], 7))
    h = merged_header(os.path.join(REAL, "dss/HorseHead.fits.gz"), 0)
    cases.append(("horsehead", h, h["NAXIS1"], h["NAXIS2"], 7))

    synthetic = [("sip-2048x4096", sip_header()),
                 ("tan-ra0", tan_header(0.05, 10.0, 200, 200, 0.001)),
                 ("tan-pole", tan_header(30.0, 89.95, 200, 200, 0.001)),
                 ("tan-rot45", tan_header(120.0, -30.0, 300, 200, 0.5 / 3600.0, 45.0))]
    for name, h in synthetic:
        write_hdr(name, h)
        cases.append((name, h, h["NAXIS1"], h["NAXIS2"], 9))

    fp_rows, scale_rows = [], []
    for name, h, w, hh, n in cases:
        wcs = WCS(h)
        x, y = grid_points(w, hh, n)
        ra, dec = wcs.all_pix2world(x, y, 0)
        with open(os.path.join(HERE, name + ".pix2sky.csv"), "w") as f:
            f.write("# x y ra dec: 0-based pixel -> degrees, astropy %s all_pix2world origin 0\n"
                    % __import__("astropy").__version__)
            for row in zip(x, y, ra, dec):
                f.write("%.6f %.6f %.12f %.12f\n" % row)
        fp_rows.append([name, w, hh] + footprint(wcs, w, hh))
        for px, py in (((w - 1) / 2.0, (hh - 1) / 2.0), (0.0, 0.0), (w - 1.0, hh - 1.0)):
            area = pixel_area_arcsec2(wcs, px, py)
            scale_rows.append((name, px, py, area, np.sqrt(area)))

    with open(os.path.join(HERE, "footprints.csv"), "w") as f:
        f.write("# name width height ra dec ra1 dec1 ra2 dec2 ra3 dec3 ra4 dec4 "
                "minra maxra mindec maxdec pole\n")
        for r in fp_rows:
            f.write("%s %d %d " % (r[0], r[1], r[2]) +
                    " ".join("%.12f" % v for v in r[3:-1]) + " %d\n" % r[-1])
    with open(os.path.join(HERE, "scales.csv"), "w") as f:
        f.write("# name x y pixel_area_arcsec2 pixel_scale_arcsec\n")
        for r in scale_rows:
            f.write("%s %.3f %.3f %.12g %.12g\n" % r)


if __name__ == "__main__":
    main()
