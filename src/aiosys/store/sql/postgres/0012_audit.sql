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

-- The chain's head: the last record's position and hash. An append locks it (FOR
-- UPDATE), reads it and moves it in the appending transaction: one chain across workers.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints (CloudTrail digest style): `payload` is the RFC 8785 JSON of
-- {n, seq, hash, at, prev, key}, `signature` its Ed25519 signature (base64).
CREATE TABLE audit_checkpoints (
    n         INTEGER PRIMARY KEY,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    payload   TEXT NOT NULL,
    signature TEXT NOT NULL
);
