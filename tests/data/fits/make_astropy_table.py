#!/usr/bin/python3
"""Write astropy_table.fits: a binary table written by astropy with the
column kinds other writers produce (unsigned integers via TZERO, a TDIM
vector, strings), read by test_table.c. Run from the source root:
    /usr/bin/python3 tests/data/fits/make_astropy_table.py
"""
import numpy as np
from astropy.io import fits

cols = [
    fits.Column(name='U16', format='I', bzero=32768, array=np.array([0, 1, 65535], dtype=np.uint16)),
    fits.Column(name='U32', format='J', bzero=2147483648, array=np.array([0, 7, 4294967295], dtype=np.uint32)),
    fits.Column(name='MAT', format='6E', dim='(3,2)', unit='adu',
                array=np.arange(18, dtype=np.float32).reshape(3, 2, 3)),
    fits.Column(name='LABEL', format='8A', array=np.array(['alpha', 'beta', 'gamma-ray'])),
]
hdu = fits.BinTableHDU.from_columns(cols, name='KINDS')
hdu.header['ORIGIN'] = 'astropy'
fits.HDUList([fits.PrimaryHDU(), hdu]).writeto('tests/data/fits/astropy_table.fits', overwrite=True)
