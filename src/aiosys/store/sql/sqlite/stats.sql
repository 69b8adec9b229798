-- Issue 11: SQLite's own stats queries (see ../stats.sql). SQLite has no percentile
-- function: aiosys/observe/stats.py asks for each percentile as the nearest-rank order
-- statistic, the row at 0-based offset ceil(q * n) - 1 in value order (the *_at queries),
-- which an index on (group, value) answers by walking that many index entries; from the top
-- (the *_at_desc twins, offset n - ceil(q * n)) for the upper percentiles, so a p99 walks 1%.

-- name: stats_runs
-- Per workflow, the runs that ended in the window: counts by end, and the mean latency
-- (started -> finished) and time to resolution (created -> finished), in seconds.
SELECT workflow, COUNT(*) AS runs,
       SUM(status = 'succeeded') AS succeeded,
       SUM(status IN ('failed', 'dead')) AS failed,
       SUM(status = 'cancelled') AS cancelled,
       AVG(finished_at - COALESCE(started_at, created_at)) AS latency_mean,
       AVG(finished_at - created_at) AS resolution_mean
FROM runs
WHERE finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow ORDER BY workflow

-- name: stats_run_latency_at
-- One workflow's run latency at 0-based rank :offset among the runs that ended in the window
-- (index runs_latency).
SELECT finished_at - COALESCE(started_at, created_at) AS value
FROM runs
WHERE workflow = :workflow AND finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
ORDER BY finished_at - COALESCE(started_at, created_at) LIMIT 1 OFFSET :offset

-- name: stats_run_latency_at_desc
-- The same from the top: the value at 0-based rank :offset in descending order.
SELECT finished_at - COALESCE(started_at, created_at) AS value
FROM runs
WHERE workflow = :workflow AND finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
ORDER BY finished_at - COALESCE(started_at, created_at) DESC LIMIT 1 OFFSET :offset

-- name: stats_run_resolution_at
-- One workflow's time to resolution at 0-based rank :offset (index runs_resolution).
SELECT finished_at - created_at AS value
FROM runs
WHERE workflow = :workflow AND finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
ORDER BY finished_at - created_at LIMIT 1 OFFSET :offset

-- name: stats_run_resolution_at_desc
-- The same from the top: the value at 0-based rank :offset in descending order.
SELECT finished_at - created_at AS value
FROM runs
WHERE workflow = :workflow AND finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
ORDER BY finished_at - created_at DESC LIMIT 1 OFFSET :offset

-- name: stats_model_latency_at
-- One model's latency (ms) at 0-based rank :offset among its timed calls in the window
-- (index model_usage_latency).
SELECT latency_ms AS value
FROM model_usage
WHERE model = :model AND status = 'ok' AND latency_ms IS NOT NULL
  AND at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
ORDER BY latency_ms LIMIT 1 OFFSET :offset

-- name: stats_model_latency_at_desc
-- The same from the top: the value at 0-based rank :offset in descending order.
SELECT latency_ms AS value
FROM model_usage
WHERE model = :model AND status = 'ok' AND latency_ms IS NOT NULL
  AND at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
ORDER BY latency_ms DESC LIMIT 1 OFFSET :offset

-- name: stats_run_effects
-- Per workflow, the retried or failed effects of the runs that ended in the window (the
-- partial index effects_eventful: effects with neither are not read): retries (attempts
-- beyond the first, each after a transient failure) and the effects that ended in error,
-- transient (retries exhausted) or permanent, as the kernel classified them.
SELECT r.workflow AS workflow,
       SUM(e.attempt - 1) AS retries,
       SUM(e.status = 'error' AND json_extract(e.error, '$.transient') = 1) AS transient_errors,
       SUM(e.status = 'error' AND COALESCE(json_extract(e.error, '$.transient'), 0) = 0)
           AS permanent_errors
FROM effects e CROSS JOIN runs r ON r.id = e.run_id
WHERE (e.attempt > 1 OR e.status = 'error')
  AND r.finished_at >= :since AND r.finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR r.workflow = :workflow)
GROUP BY r.workflow

-- name: stats_usage
-- The model calls metered in the window, in one pass: per model, workflow, outcome and error
-- class (the text before the first ':' of model_usage.error), the calls, tokens, cost and the
-- sum and count of the latencies (ms) of the calls that reached a provider.
SELECT model, workflow, status,
       CASE WHEN instr(COALESCE(error, ''), ':') > 0
            THEN substr(error, 1, instr(error, ':') - 1) ELSE COALESCE(error, '') END
           AS error_type,
       COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
       SUM(cost) AS cost, SUM(latency_ms) AS latency_sum, COUNT(latency_ms) AS timed
FROM model_usage
WHERE at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY model, workflow, status, error_type

-- name: stats_human_reviews
-- Per workflow, the human tasks a person decided in the window (index human_tasks_decided):
-- how many, and how many were approved as they were (neither edited nor rejected). An
-- escalated task that ended with nobody deciding has no decided_by and is not counted.
SELECT workflow, COUNT(*) AS reviews,
       SUM(json_extract(decision, '$.action') = 'approve') AS approved
FROM human_tasks
WHERE decided_by IS NOT NULL AND decided_at >= :since AND decided_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow
