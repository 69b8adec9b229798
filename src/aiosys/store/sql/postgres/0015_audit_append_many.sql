-- Append several audit records with one statement (aiosys_audit_append_many): the head row
-- is locked once, the records chained in the order given, inserted together, and the head
-- moved once. The chain is the one as many aiosys_audit_append calls would make
-- (0012_audit.sql). `p_rows`: a JSON array of {digest, tenant, at, body} objects (JSON,
-- not text arrays: a record body is JSON, whose quotes an array literal would escape one
-- by one on the client).
CREATE FUNCTION aiosys_audit_append_many(p_rows JSON) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_hash TEXT;
    v_prev TEXT;
    v_row JSON;
    v_seqs BIGINT[] := '{}';
    v_prevs TEXT[] := '{}';
    v_hashes TEXT[] := '{}';
    v_digests TEXT[] := '{}';
    v_tenants TEXT[] := '{}';
    v_ats BIGINT[] := '{}';
    v_bodies TEXT[] := '{}';
BEGIN
    IF coalesce(json_array_length(p_rows), 0) = 0 THEN
        RETURN NULL;
    END IF;
    -- The lock, held to COMMIT, orders appends across workers; READ COMMITTED reads the
    -- head its predecessor committed once the lock is granted.
    SELECT seq, hash INTO v_seq, v_hash FROM audit_head WHERE id = 1 FOR UPDATE;
    FOR v_row IN SELECT e.value FROM json_array_elements(p_rows) WITH ORDINALITY AS e(value, i)
                 ORDER BY e.i LOOP
        v_prev := v_hash;
        v_seq := v_seq + 1;
        v_hash := encode(sha256(convert_to(v_prev || '|' || v_seq::text || '|'
                                           || (v_row->>'digest'), 'UTF8')), 'hex');
        v_seqs := v_seqs || v_seq;
        v_prevs := v_prevs || v_prev;
        v_hashes := v_hashes || v_hash;
        v_digests := v_digests || (v_row->>'digest');
        v_tenants := v_tenants || (v_row->>'tenant');
        v_ats := v_ats || (v_row->>'at')::bigint;
        v_bodies := v_bodies || (v_row->>'body');
    END LOOP;
    INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
    SELECT * FROM unnest(v_seqs, v_prevs, v_hashes, v_digests, v_tenants, v_ats, v_bodies);
    UPDATE audit_head SET seq = v_seq, hash = v_hash, prev = v_prev WHERE id = 1;
    RETURN v_seq;
END
$$;
