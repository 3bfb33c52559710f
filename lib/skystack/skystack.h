/* skystack.h: the whole public API of libskystack in one include. */
#ifndef SKYSTACK_H
#define SKYSTACK_H

#include "error.h"
#include "log.h"
#include "hash.h"
#include "atomic.h"
#include "share.h"
#include "header.h"
#include "image.h"
#include "fits.h"
#include "table.h"
#include "wcs.h"
#include "provenance.h"
#include "config.h"
#include "cli.h"
#include "extract.h"
#include "psf.h"
#include "astrom.h"
#include "photcal.h"
#include "catalog.h"
#include "calib.h"
#include "sim.h"
#include "db.h"
#include "storage.h"
#include "query.h"
#include "ingest.h"
#include "coadd.h"
#include "coaddx.h"
#include "ref.h"

#endif
