-- refset_fixture.sql: a hand-built database state for tests/prog/refset.t:
-- a coadd chain, three referencing provenances, three refsets (B with a
-- strict and a relaxed provenance; C and D sharing one) and four
-- references with their coadds and extraction products.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO code_versions (process, version) VALUES
    ('preprocessing', '1.0'), ('extraction', '1.0'), ('coaddition', '1.0'), ('referencing', '1.0')
    ON CONFLICT DO NOTHING;
INSERT INTO provenances (id, process, code_version, parameters) VALUES
    (rpad('PRE', 20, 'A'), 'preprocessing', '1.0', '{}'),
    (rpad('EXT', 20, 'A'), 'extraction', '1.0', '{}'),
    (rpad('COA', 20, 'A'), 'coaddition', '1.0', '{"method": "clipped"}'),
    (rpad('CEX', 20, 'A'), 'extraction', '1.0', '{}'),
    (rpad('STRICT', 20, 'A'), 'referencing', '1.0', '{"max_seeing": 1.2, "min_images": 5, "order": "quality"}'),
    (rpad('RELAXED', 20, 'A'), 'referencing', '1.0', '{"max_seeing": 2.5, "min_images": 2, "order": "quality"}'),
    (rpad('OTHER', 20, 'A'), 'referencing', '1.0', '{"min_images": 1, "order": "latest"}');
INSERT INTO provenance_upstreams (downstream_id, upstream_id) VALUES
    (rpad('EXT', 20, 'A'), rpad('PRE', 20, 'A')),
    (rpad('COA', 20, 'A'), rpad('EXT', 20, 'A')),
    (rpad('CEX', 20, 'A'), rpad('COA', 20, 'A')),
    (rpad('STRICT', 20, 'A'), rpad('COA', 20, 'A')), (rpad('STRICT', 20, 'A'), rpad('CEX', 20, 'A')),
    (rpad('RELAXED', 20, 'A'), rpad('COA', 20, 'A')), (rpad('RELAXED', 20, 'A'), rpad('CEX', 20, 'A')),
    (rpad('OTHER', 20, 'A'), rpad('COA', 20, 'A')), (rpad('OTHER', 20, 'A'), rpad('CEX', 20, 'A'));

-- A 0.2 x 0.2 degree coadd centred at (ra, dec) with all its products (ids = image id).
CREATE FUNCTION pg_temp.coadd(n bigint, cra float8, cdec float8, filt text, tgt text, sec text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE h float8 := 0.1;
BEGIN
    INSERT INTO images (id, filepath, md5, provenance_id, type, input_set_hash, instrument, filter,
        section_id, target, mjd, end_mjd, width, height, ra, dec,
        ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10,
        ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01,
        minra, maxra, mindec, maxdec, radius_deg)
    VALUES (n, 'coadds/c' || n || '.fits', md5('c' || n), rpad('COA', 20, 'A'), 'coadd',
        encode(sha256(('set' || n)::bytea), 'hex'), 'SIMCAM', filt, sec, tgt, 61000, 61007, 100, 100,
        cra, cdec, cra - h, cdec - h, cra + h, cdec - h, cra + h, cdec + h, cra - h, cdec + h,
        cra - h, cra + h, cdec - h, cdec + h, 0.15);
    INSERT INTO source_lists (id, image_id, provenance_id, filepath, md5)
        VALUES (n, n, rpad('CEX', 20, 'A'), 'coadds/c' || n || '.cat.fits', md5('s' || n));
    INSERT INTO psfs (id, image_id, provenance_id, filepath, md5)
        VALUES (n, n, rpad('CEX', 20, 'A'), 'coadds/c' || n || '.psf', md5('p' || n));
    INSERT INTO backgrounds (id, image_id, provenance_id, filepath, md5)
        VALUES (n, n, rpad('CEX', 20, 'A'), 'coadds/c' || n || '.bkg.fits', md5('b' || n));
    INSERT INTO world_coordinates (id, image_id, provenance_id, header)
        VALUES (n, n, rpad('CEX', 20, 'A'), 'CTYPE1  = ''RA---TAN''');
    INSERT INTO zero_points (id, image_id, provenance_id, zp, dzp)
        VALUES (n, n, rpad('CEX', 20, 'A'), 25.0, 0.01);
END $$;

CREATE FUNCTION pg_temp.ref(n bigint, coadd bigint, prov text, plc text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO refs (id, image_id, provenance_id, source_list_id, psf_id, background_id,
        world_coordinates_id, zero_point_id, place, target, section_id, filter, instrument, ra, dec,
        ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10,
        ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec)
    SELECT n, i.id, rpad(prov, 20, 'A'), i.id, i.id, i.id, i.id, i.id, plc, i.target, i.section_id,
        i.filter, i.instrument, i.ra, i.dec, i.ra_corner_00, i.dec_corner_00, i.ra_corner_10,
        i.dec_corner_10, i.ra_corner_11, i.dec_corner_11, i.ra_corner_01, i.dec_corner_01,
        i.minra, i.maxra, i.mindec, i.maxdec
    FROM images i WHERE i.id = coadd
$$;

SELECT pg_temp.coadd(101, 30.0, -10.0, 'r', 'F1', 'S1');
SELECT pg_temp.coadd(102, 30.0, -10.0, 'r', 'F1', 'S1');
SELECT pg_temp.coadd(103, 150.1, 2.2, 'g', NULL, NULL);
SELECT pg_temp.coadd(104, 60.0, 5.0, 'r', 'F2', 'S1');
SELECT pg_temp.ref(1, 101, 'STRICT', '{"section":"S1","target":"F1"}');
SELECT pg_temp.ref(2, 102, 'RELAXED', '{"section":"S1","target":"F1"}');
SELECT pg_temp.ref(3, 103, 'RELAXED', '{"dec":2.2,"ra":150.1}');
SELECT pg_temp.ref(4, 104, 'OTHER', '{"section":"S1","target":"F2"}');

INSERT INTO refsets (name, description, upstream_hash) VALUES
    ('B', 'strict then relaxed', rpad('UPHASH', 20, 'A')),
    ('C', 'shares a provenance with D', rpad('UPHASH', 20, 'A')),
    ('D', NULL, rpad('UPHASH', 20, 'A'));
INSERT INTO refset_provenances (refset_id, provenance_id, position)
    SELECT s.id, rpad(p.prov, 20, 'A'), p.pos FROM refsets s
    JOIN (VALUES ('B', 'STRICT', 0), ('B', 'RELAXED', 1), ('C', 'OTHER', 0), ('D', 'OTHER', 0))
        AS p(name, prov, pos) ON p.name = s.name;
COMMIT;
