-- 0002_product_inputs.sql: the input files of an extraction (the image,
-- a weight, variance or rms map, a mask, the reference catalogues), each
-- with its role, path and md5, as its sidecars list them: what the reuse of
-- a registered extraction is checked against (extract(1)). NULL on the
-- rows registered before this migration: their inputs were not recorded.
-- Applied once by `skydb migrate`; never edited after release.

ALTER TABLE source_lists ADD COLUMN inputs jsonb
    CHECK (inputs IS NULL OR jsonb_typeof(inputs) = 'array');
