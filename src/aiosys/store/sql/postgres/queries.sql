-- PostgreSQL's own versions of queries whose syntax differs from SQLite's.
-- Workers share the queue with FOR UPDATE SKIP LOCKED; lists are passed as arrays.

-- name: claim
-- Lease up to :limit claimable runs of a queue, highest priority first, skipping rows
-- another worker is claiming right now.
WITH c AS (
    SELECT id FROM runs
    WHERE queue = :queue AND available_at <= :now AND wf_key = ANY(:wf_keys)
    ORDER BY priority DESC, available_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE runs AS r
SET status = 'running', lease_owner = :owner, available_at = :expires, updated_at = :now,
    started_at = COALESCE(r.started_at, :now), claims = r.claims + 1
FROM c WHERE r.id = c.id
RETURNING r.*

-- name: lock_queue
-- Serialize claims of one queue that has a global concurrency limit.
SELECT pg_advisory_xact_lock(hashtext(:queue))

-- name: next_available
-- When the next run of these queues becomes claimable (a timer, an expiring lease).
SELECT min(available_at) AS t FROM runs WHERE available_at > :now AND queue = ANY(:queues)

-- name: list_runs
-- Newest runs first, optionally filtered.
SELECT * FROM runs
WHERE (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:workflow AS text) IS NULL OR workflow = :workflow)
  AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant)
ORDER BY created_at DESC, id DESC
LIMIT :limit

-- name: notify_work
-- Wake workers listening for new work.
SELECT pg_notify('aiosys_work', :queue)
