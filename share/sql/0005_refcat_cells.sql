-- 0005_refcat_cells.sql: catalogue tables grouped by sky cell. A catalogue
-- with cell_nside set keeps its rows in a table of cells (created by
-- catingest): pix bigint, the HEALPix nested pixel at cell_nside holding
-- the rows, n integer, how many, and r bytea, those rows one after another
-- in the canonical encoding (uncompressed storage), b-tree indexed on pix;
-- a cell may span several table rows. A lookup reads the cells a field
-- touches, a few table rows instead of one per star. A catalogue without
-- cell_nside (loaded before) keeps one row per star with a q3c index.
-- Applied once by `skydb migrate`; never edited after release.

ALTER TABLE refcats ADD COLUMN cell_nside integer
    CHECK (cell_nside IS NULL OR (cell_nside > 0 AND cell_nside & (cell_nside - 1) = 0));
