-- The audit log's queries (aiosys.governance.audit); `audit_append` is each dialect's own.

-- name: audit_head
-- The chain's head: the last record's position and hash.
SELECT seq, hash FROM audit_head WHERE id = 1

-- name: audit_head_counted
-- The head as verify reads it: `audit_head` and `checkpoints`, the number of the last
-- checkpoint written (a trigger moves it with each insert of one: 0023).
SELECT seq, hash, checkpoints FROM audit_head WHERE id = 1

-- name: audit_page
-- Records after position :after, up to :upto, in chain order (keyset paging).
SELECT seq, prev_hash, hash, digest, tenant, at, body FROM audit_log
WHERE seq > :after AND seq <= :upto
ORDER BY seq
LIMIT :limit

-- name: audit_span
-- The first and last positions of the records from :since to before :until (microseconds).
SELECT MIN(seq) AS first, MAX(seq) AS last FROM audit_log
WHERE at >= :since AND at < :until

-- name: audit_checkpoints
-- Every signed checkpoint, oldest first.
SELECT n, seq, at, payload, signature FROM audit_checkpoints ORDER BY n

-- name: audit_last_checkpoint
-- The newest signed checkpoint, if any.
SELECT n, seq, at, payload, signature FROM audit_checkpoints ORDER BY n DESC LIMIT 1

-- name: audit_insert_checkpoint
-- Add checkpoint :n; a checkpoint of that number another worker wrote first wins.
INSERT INTO audit_checkpoints (n, seq, at, payload, signature)
VALUES (:n, :seq, :at, :payload, :signature)
ON CONFLICT (n) DO NOTHING
