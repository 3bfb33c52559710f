-- 0006_zero_point_colour_terms.sql: how a zero point was tied to the
-- reference catalogue. ref_band: the catalogue band the image's magnitudes
-- were compared with; with a colour term, colour_band1 - colour_band2 is the
-- colour x and the catalogue magnitude in the image's band is
-- ref_band + sum colour_coeffs[k+1] * x^k, stars outside
-- [colour_min, colour_max] left out, colour_reference its source;
-- scatter: rms (mag) of the stars' zero points about zp (num_stars of
-- them). NULL where not known (rows written before) or not used.
-- Applied once by `skydb migrate`; never edited after release.

ALTER TABLE zero_points
    ADD COLUMN ref_band         text,
    ADD COLUMN colour_band1     text,
    ADD COLUMN colour_band2     text,
    ADD COLUMN colour_coeffs    double precision[],
    ADD COLUMN colour_min       double precision,
    ADD COLUMN colour_max       double precision,
    ADD COLUMN colour_reference text,
    ADD COLUMN scatter          double precision CHECK (scatter >= 0),
    ADD CONSTRAINT zero_points_colour_range CHECK (colour_min <= colour_max),
    ADD CONSTRAINT zero_points_colour_term CHECK ((colour_band1 IS NULL) = (colour_coeffs IS NULL));
