-- Named queries shared by every dialect. A block starts with "-- name: <name>" and a line
-- saying what it does; parameters are written :name. A dialect's own queries.sql overrides
-- a block of the same name (see aiosys/store/_sql.py).

-- name: insert_run
-- A new run; its idempotency key (per tenant) makes a second start a no-op.
INSERT INTO runs (id, workflow, version, wf_key, tenant, queue, priority, status, input,
                  idempotency_key, parent_id, created_at, updated_at, started_at, deadline_at,
                  available_at, lease_owner, epoch, detached, principal, traceparent)
VALUES (:id, :workflow, :version, :wf_key, :tenant, :queue, :priority, :status, :input,
        :idempotency_key, :parent_id, :created_at, :created_at, :started_at, :deadline_at,
        :available_at, :lease_owner, :epoch, :detached, :principal, :traceparent)
ON CONFLICT DO NOTHING

-- name: schema_versions
-- The migrations the store has applied (readiness: is its schema this code's).
SELECT version FROM aiosys_schema ORDER BY version

-- name: get_run
-- One run by id.
SELECT * FROM runs WHERE id = :id

-- name: get_run_by_key
-- The run an idempotency key started.
SELECT * FROM runs WHERE tenant = :tenant AND idempotency_key = :idempotency_key

-- name: list_effects
-- A run's effects in call order.
SELECT * FROM effects WHERE run_id = :run_id ORDER BY seq

-- name: list_unconsumed_signals
-- Signals sent to a run that no wait_for has taken yet, oldest first.
SELECT * FROM signals WHERE run_id = :run_id AND consumed_seq IS NULL ORDER BY id

-- name: running_count
-- Runs of a queue that hold a live lease (for the queue's global concurrency limit).
SELECT count(*) AS n FROM runs
WHERE queue = :queue AND status = 'running' AND available_at > :now

-- name: cancel_requests
-- Cancel requests of the runs a worker holds.
SELECT id, cancel_reason FROM runs
WHERE lease_owner = :owner AND status = 'running' AND cancel_reason IS NOT NULL

-- name: record_effect
-- Insert (or complete a pending) effect, only while the writer's claim is the latest.
INSERT INTO effects (run_id, seq, kind, name, status, output, error, attempt, started_at,
                     finished_at, meta, epoch, worker)
SELECT :run_id, :seq, :kind, :name, :status, :output, :error, :attempt, :started_at,
       :finished_at, :meta, :epoch, :owner
WHERE EXISTS (SELECT 1 FROM runs
              WHERE id = :run_id AND epoch = :epoch AND status = 'running')
ON CONFLICT (run_id, seq) DO UPDATE
SET status = excluded.status, output = excluded.output, error = excluded.error,
    attempt = excluded.attempt, finished_at = excluded.finished_at, meta = excluded.meta,
    epoch = excluded.epoch, worker = excluded.worker

-- name: consume_signal
-- Mark a signal as taken by the wait_for effect at :seq.
UPDATE signals SET consumed_seq = :seq WHERE id = :id AND consumed_seq IS NULL

-- name: park
-- Park a run until :wake_at (NULL: until woken); lands only if nothing woke it meanwhile.
UPDATE runs
SET status = 'waiting', available_at = :wake_at, lease_owner = NULL, updated_at = :now
WHERE id = :run_id AND epoch = :epoch AND status = 'running'
  AND wake_seq = :wake_seq AND cancel_reason IS NULL

-- name: finish
-- End a run.
UPDATE runs
SET status = :status, result = :result, error = :error, failed_seq = :failed_seq,
    finished_at = :now, updated_at = :now, available_at = NULL, lease_owner = NULL
WHERE id = :run_id AND epoch = :epoch AND status = 'running'

-- name: finish_parked
-- End a run parked under this claim that nobody has claimed since (running or waiting).
UPDATE runs
SET status = :status, result = :result, error = :error, failed_seq = :failed_seq,
    finished_at = :now, updated_at = :now, available_at = NULL, lease_owner = NULL
WHERE id = :run_id AND epoch = :epoch AND status IN ('running', 'waiting')

-- name: release
-- Give a run back to the queue.
UPDATE runs SET status = 'pending', available_at = :now, lease_owner = NULL, updated_at = :now
WHERE id = :run_id AND epoch = :epoch AND status = 'running'

-- name: wake
-- Wake a run: a waiting run becomes claimable now; any run notes that something happened.
UPDATE runs
SET wake_seq = wake_seq + 1,
    status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END,
    available_at = CASE WHEN status = 'waiting' THEN :now ELSE available_at END,
    updated_at = :now
WHERE id = :run_id AND status IN ('pending', 'running', 'waiting')
RETURNING id

-- name: insert_signal
-- Store a signal for a run.
INSERT INTO signals (run_id, name, payload, created_at, consumed_seq)
VALUES (:run_id, :name, :payload, :now, NULL)

-- name: cancel
-- Cancel a run: ended at once if it holds no worker, else flagged for its worker.
UPDATE runs
SET cancel_reason = :reason,
    status = CASE WHEN status IN ('pending', 'waiting') THEN 'cancelled' ELSE status END,
    error = CASE WHEN status IN ('pending', 'waiting') THEN :error ELSE error END,
    finished_at = CASE WHEN status IN ('pending', 'waiting') THEN :now ELSE finished_at END,
    available_at = CASE WHEN status IN ('pending', 'waiting') THEN NULL ELSE available_at END,
    updated_at = :now
WHERE id = :id AND status IN ('pending', 'running', 'waiting')
RETURNING *

-- name: cancel_children
-- Cancel the live descendants of run :id that were not started detached, as `cancel` does
-- one run (a detached child and everything below it are left alone): ended at once if they
-- hold no worker, else flagged for their worker.
WITH RECURSIVE tree (id) AS (
    SELECT id FROM runs WHERE parent_id = :id AND detached = 0
    UNION
    SELECT r.id FROM runs AS r JOIN tree ON r.parent_id = tree.id WHERE r.detached = 0
)
UPDATE runs
SET cancel_reason = COALESCE(cancel_reason, :reason),
    status = CASE WHEN status IN ('pending', 'waiting') THEN 'cancelled' ELSE status END,
    error = CASE WHEN status IN ('pending', 'waiting') THEN :error ELSE error END,
    finished_at = CASE WHEN status IN ('pending', 'waiting') THEN :now ELSE finished_at END,
    available_at = CASE WHEN status IN ('pending', 'waiting') THEN NULL ELSE available_at END,
    updated_at = :now
WHERE id IN (SELECT id FROM tree) AND status IN ('pending', 'running', 'waiting')
RETURNING id

-- name: resume
-- Put a dead or failed run back in the queue, its count of recoveries reset.
UPDATE runs
SET status = 'pending', available_at = :now, error = NULL, result = NULL, failed_seq = NULL,
    finished_at = NULL, deadline_at = NULL, lease_owner = NULL, updated_at = :now,
    recoveries = 0
WHERE id = :id AND status IN ('dead', 'failed')
RETURNING *

-- name: delete_effect
-- Drop one effect's record (the failed effect of a resumed run).
DELETE FROM effects WHERE run_id = :run_id AND seq = :seq

-- name: list_recoveries
-- A run's recoveries (claims after an expired lease), oldest first.
SELECT * FROM run_recoveries WHERE run_id = :run_id ORDER BY epoch

-- name: upsert_worker
-- A worker says it is alive (at start and with each heartbeat), and what it serves.
INSERT INTO workers (id, host, pid, queues, wf_keys, lease, started_at, heartbeat_at,
                     expires_at)
VALUES (:id, :host, :pid, :queues, :wf_keys, :lease, :now, :now, :expires_at)
ON CONFLICT (id) DO UPDATE
SET queues = excluded.queues, wf_keys = excluded.wf_keys, lease = excluded.lease,
    heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at

-- name: delete_worker
-- A worker that stops says so.
DELETE FROM workers WHERE id = :id

-- name: forget_workers
-- Drop the rows of workers that died long ago (each crash leaves one).
DELETE FROM workers WHERE expires_at < :before

-- name: live_workers
-- The workers whose last heartbeat is recent enough, oldest first.
SELECT * FROM workers WHERE expires_at > :now ORDER BY started_at, id
