-- SQLite's own versions of queries whose syntax differs from PostgreSQL's.
-- Lists are passed as a JSON array and read with json_each.

-- name: claim
-- Lease up to :limit claimable runs of a queue, highest priority first. Taking a running run
-- (its lease expired) is a recovery: counted, for the workflow's max_recoveries, and the
-- worker that lost it and its lease's expiry kept (SET reads the row as it was). :only (a JSON
-- list, or NULL for any run) keeps to those runs and their children.
UPDATE runs
SET status = 'running', lease_owner = :owner, available_at = :expires, updated_at = :now,
    started_at = COALESCE(started_at, :now), claims = claims + 1, epoch = epoch + 1,
    recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END,
    recovered_from = CASE WHEN status = 'running' THEN lease_owner END,
    lease_expired_at = CASE WHEN status = 'running' THEN available_at END
WHERE id IN (SELECT id FROM runs
             WHERE queue = :queue AND available_at <= :now
               AND wf_key IN (SELECT value FROM json_each(:wf_keys))
               AND id NOT IN (SELECT value FROM json_each(:exclude))
               AND (:only IS NULL OR id IN (SELECT value FROM json_each(:only))
                    OR parent_id IN (SELECT value FROM json_each(:only)))
             ORDER BY priority DESC, available_at
             LIMIT :limit)
RETURNING *

-- name: next_available
-- When the next run of these queues becomes claimable (a timer, an expiring lease).
SELECT min(available_at) AS t FROM runs
WHERE available_at > :now AND queue IN (SELECT value FROM json_each(:queues))

-- name: list_runs
-- Newest runs first, optionally filtered: created in [:since, :until), and after the
-- position (:after_at, :after_id) of a page's last run (keyset pagination).
SELECT * FROM runs
WHERE (:status IS NULL OR status = :status)
  AND (:workflow IS NULL OR workflow = :workflow)
  AND (:tenant IS NULL OR tenant = :tenant)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:after_at IS NULL OR created_at < :after_at
       OR (created_at = :after_at AND id < :after_id))
ORDER BY created_at DESC, id DESC
LIMIT :limit

-- name: ended
-- Which of the runs named have ended.
SELECT id FROM runs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('succeeded', 'failed', 'cancelled', 'dead')

-- name: heartbeat
-- Extend the leases a worker holds on the runs it names; returns them and any cancel request.
UPDATE runs SET available_at = :expires, updated_at = :now
WHERE lease_owner = :owner AND status = 'running' AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
RETURNING id, cancel_reason

-- name: stranded_runs
-- Claimable runs (what `claim` would take: pending, timer due, lease expired) that no live
-- worker serves (its workflow@version and queue), claimable since :before or earlier.
SELECT * FROM runs AS r
WHERE r.available_at <= :before
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
  AND (:workflow IS NULL OR r.workflow = :workflow)
  AND (:tenant IS NULL OR r.tenant = :tenant)
  AND NOT EXISTS (SELECT 1 FROM workers AS w
                  WHERE w.expires_at > :now
                    AND EXISTS (SELECT 1 FROM json_each(w.wf_keys) WHERE value = r.wf_key)
                    AND EXISTS (SELECT 1 FROM json_each(w.queues) WHERE value = r.queue))
ORDER BY r.available_at, r.id
LIMIT :limit
