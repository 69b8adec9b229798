-- Records written where taking the chain's head would serialize unrelated work (a start's
-- record, committed with its run: `audit_append_for_run`) wait here, unchained, until the
-- next append chains them first (`aiosys_audit_seal`): the next group commit of any worker,
-- a checkpoint, a verify or an export. Why: the head's row lock is held to COMMIT, through
-- the WAL flush, so a start that appended to the chain itself waited for the group commit
-- in flight and made the next one wait for its own flush: starts and group commits took
-- turns, one fsync each (bench/kernel.py --governance: 51% of the throughput without
-- governance in the PostgreSQL concurrent cell, 68% with starts' records out of the chain).
-- A pending record commits with what it records, as before; it is chained, and becomes
-- tamper-evident, at most one append or one checkpointer turn later.
CREATE TABLE audit_pending (
    id     BIGSERIAL PRIMARY KEY,  -- the order records are chained in
    digest TEXT NOT NULL,
    tenant TEXT NOT NULL,
    at     BIGINT NOT NULL,
    body   TEXT NOT NULL
);

-- Chain every pending record visible now, oldest first, after the head (whose lock it
-- takes and holds to COMMIT, as every append does); returns the head's position after.
-- Concurrent sealers take turns on the lock, and a record one of them moved is gone for
-- the next (READ COMMITTED: its DELETE skips rows deleted by a transaction it waited for).
CREATE FUNCTION aiosys_audit_seal() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_hash TEXT;
    v_prev TEXT;
    v_moved BOOLEAN := false;
    r RECORD;
BEGIN
    SELECT seq, hash, prev INTO v_seq, v_hash, v_prev FROM audit_head WHERE id = 1 FOR UPDATE;
    FOR r IN WITH gone AS (DELETE FROM audit_pending RETURNING id, digest, tenant, at, body)
             SELECT gone.digest, gone.tenant, gone.at, gone.body FROM gone ORDER BY gone.id LOOP
        v_prev := v_hash;
        v_seq := v_seq + 1;
        v_hash := encode(sha256(convert_to(v_prev || '|' || v_seq::text || '|' || r.digest,
                                           'UTF8')), 'hex');
        INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
        VALUES (v_seq, v_prev, v_hash, r.digest, r.tenant, r.at, r.body);
        v_moved := true;
    END LOOP;
    IF v_moved THEN
        UPDATE audit_head SET seq = v_seq, hash = v_hash, prev = v_prev WHERE id = 1;
    END IF;
    RETURN v_seq;
END
$$;

-- The appends of 0012/0015, each chaining the pending records first (when there are any:
-- one look at a table that is usually empty), so a record is never chained after one
-- written later by the same transaction's caller.
CREATE OR REPLACE FUNCTION aiosys_audit_append(p_digest TEXT, p_tenant TEXT, p_at BIGINT,
                                               p_body TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_hash TEXT;
    v_prev TEXT;
BEGIN
    IF EXISTS (SELECT 1 FROM audit_pending) THEN
        PERFORM aiosys_audit_seal();
    END IF;
    UPDATE audit_head
    SET prev = hash,
        seq = seq + 1,
        hash = encode(sha256(convert_to(hash || '|' || (seq + 1)::text || '|' || p_digest,
                                        'UTF8')), 'hex')
    WHERE id = 1
    RETURNING audit_head.seq, audit_head.hash, audit_head.prev INTO v_seq, v_hash, v_prev;
    INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
    VALUES (v_seq, v_prev, v_hash, p_digest, p_tenant, p_at, p_body);
    RETURN v_seq;
END
$$;

CREATE OR REPLACE FUNCTION aiosys_audit_append_many(p_rows JSON) RETURNS BIGINT
LANGUAGE plpgsql AS $$
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
    IF EXISTS (SELECT 1 FROM audit_pending) THEN
        PERFORM aiosys_audit_seal();
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
