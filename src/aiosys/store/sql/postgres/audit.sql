-- name: audit_append
-- Append one record to the chain: the head row is locked (FOR UPDATE, held to COMMIT), so
-- concurrent transactions of any worker append one after the other and never fork it; a
-- transaction that waited reads the head its predecessor committed (READ COMMITTED).
WITH head AS (
    SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
), next AS (
    SELECT seq + 1 AS seq, hash AS prev_hash,
           encode(sha256(convert_to(hash || '|' || (seq + 1)::text || '|'
                                    || CAST(:digest AS text), 'UTF8')), 'hex') AS hash
    FROM head
), appended AS (
    INSERT INTO audit_log (seq, prev_hash, hash, digest, tenant, at, body)
    SELECT seq, prev_hash, hash, :digest, :tenant, :at, :body FROM next
)
UPDATE audit_head SET seq = next.seq, hash = next.hash FROM next WHERE audit_head.id = 1
