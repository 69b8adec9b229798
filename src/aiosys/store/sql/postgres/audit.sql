-- name: audit_append
-- Append one record to the chain (the function is in 0012_audit.sql): the head row's lock,
-- held to COMMIT, makes concurrent transactions of any worker append one after the other.
SELECT aiosys_audit_append(CAST(:digest AS text), CAST(:tenant AS text), CAST(:at AS bigint),
                           CAST(:body AS text))

-- name: audit_append_for_run
-- The audit record of a start, committed in the transaction that inserts the run
-- (`create_run`'s `also`), written only if the run :run_id exists (it was created). It waits
-- in audit_pending, unchained, for the next append or `audit_seal` to chain it
-- (0019_audit_pending.sql says why): a start does not take the chain's head.
INSERT INTO audit_pending (digest, tenant, at, body)
SELECT :digest, :tenant, :at, :body FROM runs WHERE id = :run_id

-- name: audit_seal
-- Chain the pending records now (0019_audit_pending.sql); `seq`: the head's position after.
SELECT aiosys_audit_seal() AS seq

-- name: audit_append_many
-- Append several records, chained in the order given: :rows is a JSON array of
-- `audit_append`'s parameter objects (a group commit's side writes: _pgbatch.Batch.end).
SELECT aiosys_audit_append_many(CAST(:rows AS json))

-- name: record_effect_audited
-- `record_effect` (the same statement, verbatim) and its effect's one audit record
-- (`audit_append`'s parameters) as one statement: a lone record commits with its audit
-- record in one round trip, prepared, without BEGIN/COMMIT. The run is locked before the
-- audit head (the function is called on the row that counts the record), as every writer
-- orders them. `landed`: 1 if the record landed; the audit record is written either way.
WITH landed AS (
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
RETURNING 1
)
SELECT counted.n AS landed,
       aiosys_audit_append(CAST(:digest AS text), CAST(:tenant AS text), CAST(:at AS bigint),
                          CAST(:body AS text)) AS seq
FROM (SELECT count(*) AS n FROM landed) AS counted

-- name: record_effect_audited_many
-- `record_effect_audited` for an effect with several audit records (`audit_append_many`'s
-- :rows): the same statement, verbatim.
WITH landed AS (
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
RETURNING 1
)
SELECT counted.n AS landed,
       aiosys_audit_append_many(CAST(:rows AS json)) AS seq
FROM (SELECT count(*) AS n FROM landed) AS counted
