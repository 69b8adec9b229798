-- Issue 11: PostgreSQL's own stats queries (see ../stats.sql). Percentiles are
-- percentile_disc: the nearest-rank order statistic (the value at 1-based rank
-- ceil(q * n)), numpy's method="inverted_cdf" and what SQLite's queries compute.

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

-- name: stats_run_effects
-- Per workflow, the effects of the runs that ended in the window: how many, the retries
-- (attempts beyond the first: each follows a transient failure) and the effects that ended
-- in error, transient (retries exhausted) or permanent, as the kernel classified them.
SELECT r.workflow AS workflow, COUNT(*) AS effects,
       SUM(e.attempt - 1) AS retries,
       COUNT(*) FILTER (WHERE e.status = 'error'
                        AND (e.error::json ->> 'transient') = 'true') AS transient_errors,
       COUNT(*) FILTER (WHERE e.status = 'error'
                        AND COALESCE(e.error::json ->> 'transient', 'false') <> 'true')
           AS permanent_errors
FROM runs r JOIN effects e ON e.run_id = r.id
WHERE r.finished_at >= :since AND r.finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR r.workflow = :workflow)
GROUP BY r.workflow

-- name: stats_models
-- Per model, the calls metered in the window: counts by outcome, tokens, cost, and the
-- latency percentiles (ms) of the calls that reached a provider (status ok).
SELECT model, COUNT(*) AS calls,
       COUNT(*) FILTER (WHERE status = 'ok') AS ok,
       COUNT(*) FILTER (WHERE status = 'cached') AS cached,
       COUNT(*) FILTER (WHERE status = 'error') AS errors,
       COUNT(*) FILTER (WHERE status = 'denied') AS denied,
       SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
       SUM(cost) AS cost,
       percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE status = 'ok' AND latency_ms IS NOT NULL) AS latency,
       AVG(latency_ms) FILTER (WHERE status = 'ok') AS latency_mean
FROM model_usage
WHERE at >= :since AND at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
GROUP BY model ORDER BY model

-- name: stats_model_errors
-- Per model and error class (the text before the first ':' of model_usage.error), the calls
-- that failed or were denied in the window.
SELECT model, status, split_part(COALESCE(error, ''), ':', 1) AS error_type, COUNT(*) AS calls
FROM model_usage
WHERE at >= :since AND at < :until AND status IN ('error', 'denied')
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
GROUP BY model, status, split_part(COALESCE(error, ''), ':', 1)
