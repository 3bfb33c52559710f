# real-extract.py: one line of bench/real-extract's table: extract's source
# list against Source Extractor's LDAC catalogue and PSFEx's XML.
# Usage: real-extract.py --header | NAME DIR T_EXTRACT T_SE
import glob
import os
import re
import sys
import warnings

import numpy as np
from astropy.io import fits

warnings.filterwarnings("ignore")
FMT = "%-26s %6s %6s %12s %12s %9s %6s %6s %6s %7s %5s %7s %7s"
if sys.argv[1] == "--header":
    print(FMT % ("image", "n_sk", "n_se", "found", "found_pt", "split", "AUTO", "F_sk", "P_sk", "F_se", "PSF", "t_sk", "t_se"))
    sys.exit(0)
name, d, t_sk, t_se = sys.argv[1:5]


def load_ours():
    src = glob.glob(os.path.join(d, "sk", "*.sources.fits"))
    if not src:
        return None, None, float("nan"), False
    with fits.open(src[0]) as h:
        t = h["SOURCES"].data
        fwhm = h["SOURCES"].header.get("FWHM", float("nan"))
        psf_fwhm = h["SOURCES"].header.get("PSF_FWHM", float("nan"))
    psf = bool(glob.glob(os.path.join(d, "sk", "*.psf")))
    return t, fwhm, psf_fwhm, psf


def load_se():
    cat = os.path.join(d, "se.ldac")
    if not os.path.exists(cat):
        return None, float("nan"), False
    with fits.open(cat) as h:
        t = h["LDAC_OBJECTS"].data
    made, fwhm = False, float("nan")
    xml = os.path.join(d, "psfex.xml")
    psf = os.path.join(d, "se.psf")
    if os.path.exists(xml) and os.path.exists(psf):
        txt = open(xml).read()
        tab = txt[txt.index('<TABLE ID="PSF_Fields"'):]
        tab = tab[: tab.index("</TABLE>")]
        names = re.findall(r'<FIELD name="([^"]+)"', tab)
        row = re.findall(r"<TR>(.*?)</TR>", tab, re.S)
        vals = re.findall(r"<TD>(.*?)</TD>", row[0], re.S) if row else []
        if len(vals) == len(names):
            v = dict(zip(names, vals))
            try:
                fwhm = float(v["FWHM_Mean"])
                made = int(v["NStars_Accepted_Total"]) > 0
            except (KeyError, ValueError):
                pass
    return t, fwhm, made


ours, f_sk, p_sk, psf_sk = load_ours()
se, f_se, psf_se = load_se()
n_sk = len(ours) if ours is not None else 0
n_se = len(se) if se is not None else 0
found, found_pt, ratio, fse_txt, split = "-", "-", "-", "-", "-"
if se is not None and n_se:
    clean = (se["FLAGS"] == 0) & (se["SNR_WIN"] >= 20)
    if not psf_se or not np.isfinite(f_se):
        f_se = float("nan")
        st = clean & (se["ELONGATION"] < 1.3)
        if st.sum():
            r = se["FLUX_RADIUS"][st]
            lr = np.log(r[r > 0])
            h, e = np.histogram(lr, bins=30)
            k = np.argmax(h)
            peak = np.exp(0.5 * (e[k] + e[k + 1]))
            near = st & (np.abs(se["FLUX_RADIUS"] / peak - 1) < 0.15)
            f_se = np.median(se["FWHM_IMAGE"][near]) if near.sum() else float("nan")
        fse_txt = "%.2f*" % f_se if np.isfinite(f_se) else "-"
    else:
        fse_txt = "%.2f" % f_se
    j = np.nonzero(clean)[0]
    if len(j) and n_sk:
        ox, oy = ours["XWIN_IMAGE"].astype(float), ours["YWIN_IMAGE"].astype(float)
        got = np.zeros(len(j), bool)
        near = np.zeros(len(j), int)
        r_split = max(2.0, 2 * f_se) if np.isfinite(f_se) else 2.0
        rat = np.full(len(j), np.nan)
        order = np.argsort(ox)
        sx = ox[order]
        for n, k in enumerate(j):
            x, y = se["XWIN_IMAGE"][k], se["YWIN_IMAGE"][k]
            lo, hi = np.searchsorted(sx, x - r_split), np.searchsorted(sx, x + r_split)
            cand = order[lo:hi]
            if len(cand) == 0:
                continue
            dd = np.hypot(ox[cand] - x, oy[cand] - y)
            b = np.argmin(dd)
            if dd[b] > 1.0:
                near[n] = np.sum(dd <= r_split)
            if dd[b] <= 1.0:
                got[n] = True
                if se["FLUX_AUTO"][k] > 0:
                    rat[n] = ours["FLUX_AUTO"][cand[b]] / se["FLUX_AUTO"][k]
        found = "%5.1f%%/%d" % (100.0 * got.mean(), len(j))
        fw = se["FWHM_IMAGE"][j]
        pt = (fw < 1.5 * np.median(fw)) & (se["ELONGATION"][j] < 1.5)
        if pt.sum():
            found_pt = "%5.1f%%/%d" % (100.0 * got[pt].mean(), pt.sum())
        split = "%d/%d" % (np.sum(near >= 2), np.sum(~got))
        if np.isfinite(rat).any():
            ratio = "%.3f" % np.nanmedian(rat)
    elif not len(j):
        found = "-/0"
psf = ("y" if psf_sk else "n") + "/" + ("y" if psf_se else "n")
print(FMT % (name[:26], n_sk, n_se, found, found_pt, split, ratio,
             "%.2f" % f_sk if f_sk == f_sk else "-", "%.2f" % p_sk if p_sk == p_sk else "-", fse_txt, psf, t_sk, t_se))
