-- 0007_zero_point_star_selection.sql: what the calibration star selection
-- did for a zero point. num_candidates: the matched stars with clean flags
-- and enough SNR before the selection and the clipping; num_rejected_chi2,
-- num_rejected_aperture, num_rejected_neighbour: those of them it left out
-- for their PSF fit's chi^2, for aperture light beyond the PSF fit's, and
-- for a bright listed neighbour (a star may count under several); noise:
-- the rms (mag) of the expected errors of the num_stars stars of the zero
-- point, the scatter their errors alone would give (to set against
-- scatter). NULL where not known (rows written before).
-- Applied once by `skydb migrate`; never edited after release.

ALTER TABLE zero_points
    ADD COLUMN num_candidates         integer CHECK (num_candidates >= 0),
    ADD COLUMN num_rejected_chi2      integer CHECK (num_rejected_chi2 >= 0),
    ADD COLUMN num_rejected_aperture  integer CHECK (num_rejected_aperture >= 0),
    ADD COLUMN num_rejected_neighbour integer CHECK (num_rejected_neighbour >= 0),
    ADD COLUMN noise                  double precision CHECK (noise >= 0),
    ADD CONSTRAINT zero_points_selection CHECK (num_stars <= num_candidates
        AND num_rejected_chi2 <= num_candidates AND num_rejected_aperture <= num_candidates
        AND num_rejected_neighbour <= num_candidates);
