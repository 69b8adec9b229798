-- Issue 10, point 3: the tamper-evident audit log (aiosys.governance.audit).
-- One hash chain: record `seq` (1, 2, ...) holds the hash of record seq - 1 (`prev_hash`;
-- 64 zeros before the first) and its own `hash` = SHA-256 of "prev_hash|seq|digest", where
-- `digest` = SHA-256 of "len(tenant):tenant|at|body" (body: the record's RFC 8785 JSON).
-- Records are only ever inserted (`audit_append`); nothing in aiosys updates or deletes them.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    at        INTEGER NOT NULL,  -- microseconds since the epoch (store clock)
    body      TEXT NOT NULL
);

-- The chain's head: the last record's position and hash. An append reads it and this
-- trigger moves it, in the appending transaction (SQLite's one writer serializes appends).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev TEXT NOT NULL  -- the hash before the last record's (its prev_hash)
);
INSERT INTO audit_head (id, seq, hash, prev)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', '');

CREATE TRIGGER audit_log_head AFTER INSERT ON audit_log
WHEN NEW.seq > (SELECT seq FROM audit_head WHERE id = 1)
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash, prev = NEW.prev_hash WHERE id = 1;
END;

-- Signed checkpoints (CloudTrail digest style): `payload` is the RFC 8785 JSON of
-- {n, seq, hash, at, prev, key}, `signature` its Ed25519 signature (base64).
CREATE TABLE audit_checkpoints (
    n         INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    payload   TEXT NOT NULL,
    signature TEXT NOT NULL
);
