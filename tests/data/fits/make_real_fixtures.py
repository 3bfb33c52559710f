#!/usr/bin/python3
"""Write real_fixtures.h: numbers read independently with astropy from the
real test images (tests/data/real), against which test_fits.c and
test_table.c check skystack's cfitsio reader. Run from the source root:
    /usr/bin/python3 tests/data/fits/make_real_fixtures.py > tests/data/fits/real_fixtures.h
"""
import numpy as np
from astropy.io import fits

D6 = 'tests/data/real/decam-legacysurvey/testcase6/c4d_181104_072440_%s_g_ls9.S4.fits'
D3 = 'tests/data/real/decam-legacysurvey/testcase3/c4d_140818_232043_%s_z_ls9.N12.fits'
M13 = 'tests/data/real/m13-orion/M13_blue_0001.fits.gz'
GAIA = 'tests/data/real/decam-legacysurvey/testcase3/gaia/chunk-04759.fits'

out = []
def define(name, value):
    if isinstance(value, str):
        out.append('#define %s "%s"' % (name, value))
    elif isinstance(value, (int, np.integer)):
        out.append('#define %s %dL' % (name, value))
    else:
        out.append('#define %s %.17g' % (name, value))

out.append('/* real_fixtures.h: numbers computed with astropy by make_real_fixtures.py; do not edit. */')

# DECam testcase6 g S4: image, inverse-variance weight, data-quality mask.
ooi, oow, ood = (fits.open(D6 % k) for k in ('ooi', 'oow', 'ood'))
sci = ooi[1].data.astype(np.float64)
wgt = oow[1].data.astype(np.float64)
dq = ood[1].data
h0, h1 = ooi[0].header, ooi[1].header
define('D6_PATH_OOI', D6 % 'ooi')
define('D6_PATH_OOW', D6 % 'oow')
define('D6_PATH_OOD', D6 % 'ood')
define('D6_EXTNAME', ooi[1].name)
define('D6_WIDTH', sci.shape[1])
define('D6_HEIGHT', sci.shape[0])
define('D6_FILTER', h0['FILTER'].strip())
define('D6_MJD_OBS', h0['MJD-OBS'])
define('D6_EXPTIME', h0['EXPTIME'])
define('D6_AIRMASS', h0['AIRMASS'])
define('D6_DATE_PRIMARY', h0['DATE'])
define('D6_DATE_EXT', h1['DATE'])
define('D6_SATURATE', h1['SATURATE'])
bad = dq != 0
sat = (sci >= h1['SATURATE'])
define('D6_N_MASKED', int(bad.sum()))
define('D6_N_SATURATED', int(sat.sum()))
define('D6_N_WEIGHT_ZERO', int(((wgt == 0) | bad).sum()))
define('D6_SUM_SCI', float(sci.sum()))
define('D6_SUM_WGT_UNMASKED', float(wgt[~bad].sum()))
# A few pixels (0-based x, y): one good, one masked, one saturated.
gy, gx = 50, 60
while bad[gy, gx] or sat[gy, gx]:
    gx += 1
my, mx = [int(v[0]) for v in np.nonzero(bad & ~sat)]
sy, sx = [int(v[0]) for v in np.nonzero(sat)]
for tag, (x, y) in (('GOOD', (gx, gy)), ('MASKED', (mx, my)), ('SAT', (sx, sy))):
    define('D6_%s_X' % tag, x)
    define('D6_%s_Y' % tag, y)
    define('D6_%s_SCI' % tag, float(np.float32(sci[y, x])))
    define('D6_%s_WGT' % tag, float(np.float32(wgt[y, x])))
    define('D6_%s_DQ' % tag, int(dq[y, x]))

# DECam testcase3 z N12 (41 x 51).
i3 = fits.open(D3 % 'ooi')
define('D3_PATH_OOI', D3 % 'ooi')
define('D3_PATH_OOW', D3 % 'oow')
define('D3_PATH_OOD', D3 % 'ood')
define('D3_WIDTH', i3[1].data.shape[1])
define('D3_HEIGHT', i3[1].data.shape[0])
define('D3_PIX_10_20', float(i3[1].data[20, 10]))
define('D3_FILTER', i3[0].header['FILTER'].strip())

# M13: int16 with BZERO 32768, gzipped, no WCS.
m = fits.open(M13)
md = m[0].data.astype(np.float64)
define('M13_PATH', M13)
define('M13_WIDTH', md.shape[1])
define('M13_HEIGHT', md.shape[0])
define('M13_BZERO', m[0].header['BZERO'])
for k, (x, y) in enumerate(((0, 0), (100, 200), (1391, 1039), (700, 520))):
    define('M13_X%d' % k, x)
    define('M13_Y%d' % k, y)
    define('M13_V%d' % k, float(md[y, x]))
define('M13_SUM', float(md.sum()))
define('M13_MAX', float(md.max()))

# Gaia chunk: a binary table with K, D, E, I, L columns.
g = fits.open(GAIA)[1].data
define('GAIA_PATH', GAIA)
define('GAIA_NROWS', len(g))
define('GAIA_NCOLS', len(g.columns))
define('GAIA_SOURCE_ID_0', int(g['source_id'][0]))
define('GAIA_RA_1', float(g['ra'][1]))
define('GAIA_DEC_1', float(g['dec'][1]))
define('GAIA_GMAG_0', float(g['phot_g_mean_mag'][0]))
define('GAIA_G_N_OBS_0', int(g['phot_g_n_obs'][0]))
define('GAIA_N_DUPLICATED', int(np.sum(g['duplicated_source'])))
define('GAIA_SUM_RA', float(np.sum(g['ra'])))
define('GAIA_N_AG_NAN', int(np.sum(np.isnan(g['a_g_val']))))

print('\n'.join(out))
