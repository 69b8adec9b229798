-- name: audit_append
-- Append one record to the chain: its position and previous hash come from the head, read
-- in this transaction (SQLite's one writer serializes appends); a trigger moves the head.
-- aiosys_sha256(text) is the store connection's SHA-256 (hex) of the text's UTF-8 bytes.
INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
SELECT seq + 1, hash, aiosys_sha256(hash || '|' || (seq + 1) || '|' || :digest),
       :digest, :tenant, :at, :body
FROM audit_head WHERE id = 1

-- name: audit_append_for_run
-- `audit_append` only if the run :run_id exists: the audit record of a start, committed in
-- the transaction that inserts the run (`create_run`'s `also`), written only if it was created.
INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
SELECT seq + 1, hash, aiosys_sha256(hash || '|' || (seq + 1) || '|' || :digest),
       :digest, :tenant, :at, :body
FROM audit_head WHERE id = 1 AND EXISTS (SELECT 1 FROM runs WHERE id = :run_id)

-- name: audit_insert
-- One record whose position and hashes the store computed from the head it read in this
-- transaction (`SQLiteStore._append_audit`: a batch's records chained in Python, the same
-- formula as `audit_append`); the trigger moves the head. Positional parameters (seq,
-- prev_hash, hash, digest, tenant, at, body): the batch's rows as tuples.
INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body) VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: audit_seal
-- Chain the records waiting to be: on SQLite none ever wait (its one writer chains every
-- record as it is written; PostgreSQL's starts wait in audit_pending), so this only reads
-- the head's position, as PostgreSQL's returns it.
SELECT seq FROM audit_head WHERE id = 1
