-- 0004_refcats.sql: reference catalogues ingested by catingest(1). One row
-- per catalogue: its id (SHA-256 of name, version, row count, content hash
-- and column map), what it is, its bands in order, and the table holding its
-- rows (created by catingest: ra, dec double precision with a q3c index,
-- and r bytea, the row in the canonical encoding of catingest(1): ra, dec,
-- epoch as IEEE doubles, ra_err, dec_err, pmra, pmdec, parallax and per
-- band mag and err as IEEE floats, little-endian, NaN where the catalogue
-- has no value).
-- Applied once by `skydb migrate`; never edited after release.

CREATE TABLE refcats (
    catalog_id     text PRIMARY KEY CHECK (catalog_id ~ '^[0-9a-f]{64}$'),
    name           text NOT NULL CHECK (name <> ''),
    version        text NOT NULL DEFAULT '',
    nrows          bigint NOT NULL CHECK (nrows >= 0),
    content_sha256 text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    columns        text NOT NULL,
    bands          text[] NOT NULL,
    table_name     text NOT NULL UNIQUE CHECK (table_name ~ '^refcat_[0-9a-f]{16}$'),
    created        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
