-- Issue 11: PostgreSQL's own stats queries (see ../stats.sql). Percentiles are
-- percentile_disc: the nearest-rank order statistic (the value at 1-based rank
-- ceil(q * n)), numpy's method="inverted_cdf" and what SQLite's offset queries pick.

-- name: stats_runs
-- Per workflow, the runs that ended in the window: counts by end, latency (started -> finished)
-- and time to resolution (created -> finished) percentiles and means, in seconds.
SELECT workflow, COUNT(*) AS runs,
       COUNT(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       COUNT(*) FILTER (WHERE status IN ('failed', 'dead')) AS failed,
       COUNT(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP
           (ORDER BY finished_at - COALESCE(started_at, created_at)) AS latency,
       AVG(finished_at - COALESCE(started_at, created_at)) AS latency_mean,
       percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP
           (ORDER BY finished_at - created_at) AS resolution,
       AVG(finished_at - created_at) AS resolution_mean
FROM runs
WHERE finished_at >= :since AND finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow ORDER BY workflow

-- name: stats_model_latency
-- Per model, the latency percentiles (ms) of its calls in the window that reached a provider.
SELECT model,
       percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY latency_ms)
           AS latency
FROM model_usage
WHERE status = 'ok' AND latency_ms IS NOT NULL AND at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY model

-- name: stats_run_effects
-- Per workflow, the retried or failed effects of the runs that ended in the window (the
-- partial index effects_eventful: effects with neither are not read): retries (attempts
-- beyond the first, each after a transient failure) and the effects that ended in error,
-- transient (retries exhausted) or permanent, as the kernel classified them.
SELECT r.workflow AS workflow,
       SUM(e.attempt - 1) AS retries,
       COUNT(*) FILTER (WHERE e.status = 'error'
                        AND (aiosys_json(e.error) ->> 'transient') = 'true') AS transient_errors,
       COUNT(*) FILTER (WHERE e.status = 'error'
                        AND COALESCE(aiosys_json(e.error) ->> 'transient', 'false') <> 'true')
           AS permanent_errors
FROM effects e JOIN runs r ON r.id = e.run_id
WHERE (e.attempt > 1 OR e.status = 'error')
  AND r.finished_at >= :since AND r.finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR r.workflow = :workflow)
GROUP BY r.workflow

-- name: stats_usage
-- The model calls metered in the window, in one pass: per model, workflow, outcome and error
-- class (the text before the first ':' of model_usage.error), the calls, tokens, cost and the
-- sum and count of the latencies (ms) of the calls that reached a provider.
SELECT model, workflow, status, split_part(COALESCE(error, ''), ':', 1) AS error_type,
       COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
       SUM(cost) AS cost, SUM(latency_ms) AS latency_sum, COUNT(latency_ms) AS timed
FROM model_usage
WHERE at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY model, workflow, status, split_part(COALESCE(error, ''), ':', 1)

-- name: stats_human_reviews
-- Per workflow, the human tasks a person decided in the window (index human_tasks_decided):
-- how many, and how many were approved as they were (neither edited nor rejected). An
-- escalated task that ended with nobody deciding has no decided_by and is not counted.
SELECT workflow, COUNT(*) AS reviews,
       COUNT(*) FILTER (WHERE aiosys_json(decision) ->> 'action' = 'approve') AS approved
FROM human_tasks
WHERE decided_by IS NOT NULL AND decided_at >= :since AND decided_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow
