-- Issue 10, point 3: the tamper-evident audit log (aiosys.governance.audit).
-- One hash chain: record `seq` (1, 2, ...) holds the hash of record seq - 1 (`prev_hash`;
-- 64 zeros before the first) and its own `hash` = SHA-256 of "prev_hash|seq|digest", where
-- `digest` = SHA-256 of "len(tenant):tenant|at|body" (body: the record's RFC 8785 JSON).
-- Records are only ever inserted (`audit_append`); nothing in aiosys updates or deletes them.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    at        BIGINT NOT NULL,  -- microseconds since the epoch (store clock)
    body      TEXT NOT NULL
);

-- The chain's head: the last record's position and hash. An append moves it with one
-- UPDATE (aiosys_audit_append), whose row lock, held to COMMIT, orders appends across
-- workers: one chain, never forked.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL,
    prev TEXT NOT NULL  -- the hash before the last record's (its prev_hash)
);
INSERT INTO audit_head (id, seq, hash, prev)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', '');

-- Append one record: move the head (the UPDATE locks it; a transaction that waited for the
-- lock computes from the head its predecessor committed, READ COMMITTED re-reading the
-- row), then insert the record at the new position. A function, so its plans are cached
-- per connection however the call is sent.
CREATE FUNCTION aiosys_audit_append(p_digest TEXT, p_tenant TEXT, p_at BIGINT, p_body TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_hash TEXT;
    v_prev TEXT;
BEGIN
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

-- Signed checkpoints (CloudTrail digest style): `payload` is the RFC 8785 JSON of
-- {n, seq, hash, at, prev, key}, `signature` its Ed25519 signature (base64).
CREATE TABLE audit_checkpoints (
    n         INTEGER PRIMARY KEY,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    payload   TEXT NOT NULL,
    signature TEXT NOT NULL
);
