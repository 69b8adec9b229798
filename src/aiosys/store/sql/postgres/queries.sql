-- PostgreSQL's own versions of queries whose syntax differs from SQLite's.
-- Workers share the queue with FOR UPDATE SKIP LOCKED; lists are passed as arrays.

-- name: claim
-- Lease up to :limit claimable runs of a queue, highest priority first, skipping rows
-- another worker is claiming right now. Taking a running run (its lease expired) is a
-- recovery: counted, for the workflow's max_recoveries, and the worker that lost it and its
-- lease's expiry kept (SET reads the row as it was). :only (or NULL for any run) keeps to
-- those runs and their children.
WITH c AS (
    SELECT id FROM runs
    WHERE queue = :queue AND available_at <= :now AND wf_key = ANY(:wf_keys)
      AND NOT (id = ANY(:exclude))
      AND (CAST(:only AS text[]) IS NULL OR id = ANY(:only) OR parent_id = ANY(:only))
    ORDER BY priority DESC, available_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE runs AS r
SET status = 'running', lease_owner = :owner, available_at = :expires, updated_at = :now,
    started_at = COALESCE(r.started_at, :now), claims = r.claims + 1, epoch = r.epoch + 1,
    recoveries = r.recoveries + CASE WHEN r.status = 'running' THEN 1 ELSE 0 END,
    recovered_from = CASE WHEN r.status = 'running' THEN r.lease_owner END,
    lease_expired_at = CASE WHEN r.status = 'running' THEN r.available_at END
FROM c WHERE r.id = c.id
RETURNING r.*

-- name: lock_queue
-- Serialize claims of one queue that has a global concurrency limit.
SELECT pg_advisory_xact_lock(hashtext(:queue))

-- name: next_available
-- When the next run of these queues becomes claimable (a timer, an expiring lease).
SELECT min(available_at) AS t FROM runs WHERE available_at > :now AND queue = ANY(:queues)

-- name: list_runs
-- Newest runs first, optionally filtered: created in [:since, :until), and after the
-- position (:after_at, :after_id) of a page's last run (keyset pagination).
SELECT * FROM runs
WHERE (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:workflow AS text) IS NULL OR workflow = :workflow)
  AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant)
  AND (CAST(:since AS double precision) IS NULL OR created_at >= :since)
  AND (CAST(:until AS double precision) IS NULL OR created_at < :until)
  AND (CAST(:after_at AS double precision) IS NULL
       OR (created_at, id) < (CAST(:after_at AS double precision), CAST(:after_id AS text)))
ORDER BY created_at DESC, id DESC
LIMIT :limit

-- name: notify_work
-- Wake workers listening for new work.
SELECT pg_notify('aiosys_work', :queue)

-- name: record_effect
-- Insert (or complete a pending) effect, only while the writer holds the run's lease. The
-- lease check locks the run (FOR SHARE): a claim taking the run over waits until this
-- commits, and if the takeover committed first this sees it (READ COMMITTED re-reads a
-- locked row), so an effect never lands after its writer lost the lease.
INSERT INTO effects (run_id, seq, kind, name, status, output, error, attempt, started_at,
                     finished_at, meta, epoch, worker)
SELECT :run_id, :seq, :kind, :name, :status, :output, :error, :attempt, :started_at,
       :finished_at, :meta, :epoch, :owner
WHERE EXISTS (SELECT 1 FROM runs
              WHERE id = :run_id AND epoch = :epoch AND status = 'running'
              FOR SHARE)
ON CONFLICT (run_id, seq) DO UPDATE
SET status = excluded.status, output = excluded.output, error = excluded.error,
    attempt = excluded.attempt, finished_at = excluded.finished_at, meta = excluded.meta,
    epoch = excluded.epoch, worker = excluded.worker

-- name: lock_runs
-- Lock the runs a transaction will write, in id order, so that concurrent writers of
-- several runs (group commits, heartbeats) queue instead of deadlocking.
SELECT id FROM runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE

-- name: heartbeat
-- Extend the leases a worker holds on the runs it names; returns them and any cancel request.
-- Locks the rows in id order, as lock_runs does, so a heartbeat and a group commit never
-- deadlock.
WITH held AS (
    SELECT id FROM runs WHERE lease_owner = :owner AND status = 'running' AND (CAST(:ids AS text[]) IS NULL OR id = ANY(:ids))
    ORDER BY id
    FOR UPDATE
)
UPDATE runs AS r SET available_at = :expires, updated_at = :now
FROM held WHERE r.id = held.id
RETURNING r.id, r.cancel_reason

-- name: ended
-- Which of the runs named have ended.
SELECT id FROM runs
WHERE id = ANY(:ids) AND status IN ('succeeded', 'failed', 'cancelled', 'dead')

-- name: reserve_budget
-- As models.sql's, under the tenant's advisory lock (the model_reserve function, migration
-- 0009): READ COMMITTED alone would let two workers fit into the same room.
SELECT CAST(:id AS TEXT) AS id
WHERE model_reserve(CAST(:id AS TEXT), CAST(:tenant AS TEXT), CAST(:workflow AS TEXT),
                    CAST(:amount AS DOUBLE PRECISION), CAST(:at AS DOUBLE PRECISION),
                    CAST(:expires_at AS DOUBLE PRECISION), CAST(:budgets AS JSONB))

-- name: stranded_runs
-- Claimable runs (what `claim` would take: pending, timer due, lease expired) that no live
-- worker serves (its workflow@version and queue), claimable since :before or earlier.
SELECT * FROM runs AS r
WHERE r.available_at <= :before
  AND (CAST(:queues AS text[]) IS NULL OR r.queue = ANY(:queues))
  AND (CAST(:workflow AS text) IS NULL OR r.workflow = :workflow)
  AND (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant)
  AND NOT EXISTS (SELECT 1 FROM workers AS w
                  WHERE w.expires_at > :now
                    AND CAST(w.wf_keys AS jsonb) @> jsonb_build_array(r.wf_key)
                    AND CAST(w.queues AS jsonb) @> jsonb_build_array(r.queue))
ORDER BY r.available_at, r.id
LIMIT :limit
