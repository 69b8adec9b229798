-- Issue 11: SQLite's own stats queries (see ../stats.sql). SQLite has no percentile
-- function: each percentile is the nearest-rank order statistic (the value at 1-based rank
-- ceil(q * n), at least 1; numpy's method="inverted_cdf", PostgreSQL's percentile_disc),
-- picked by row_number() over the group's values in order. ceil is spelled with CAST so
-- that a build without SQLite's math functions runs it too.

-- name: stats_runs
-- Per workflow, the runs that ended in the window: counts by end, latency (started -> finished)
-- and time to resolution (created -> finished) percentiles and means, in seconds.
WITH ended AS (
    SELECT workflow, status,
           finished_at - COALESCE(started_at, created_at) AS latency,
           finished_at - created_at AS resolution
    FROM runs
    WHERE finished_at >= :since AND finished_at < :until
      AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
      AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
), ranked AS (
    SELECT workflow, status, latency, resolution,
           row_number() OVER (PARTITION BY workflow ORDER BY latency) AS li,
           row_number() OVER (PARTITION BY workflow ORDER BY resolution) AS ri,
           COUNT(*) OVER (PARTITION BY workflow) AS n
    FROM ended
), ranks AS (
    SELECT workflow, status, latency, resolution, li, ri, n,
           MAX(1, CAST(n * 0.5 AS INTEGER) + (n * 0.5 > CAST(n * 0.5 AS INTEGER))) AS k50,
           MAX(1, CAST(n * 0.95 AS INTEGER) + (n * 0.95 > CAST(n * 0.95 AS INTEGER))) AS k95,
           MAX(1, CAST(n * 0.99 AS INTEGER) + (n * 0.99 > CAST(n * 0.99 AS INTEGER))) AS k99
    FROM ranked
)
SELECT workflow, n AS runs,
       SUM(status = 'succeeded') AS succeeded,
       SUM(status IN ('failed', 'dead')) AS failed,
       SUM(status = 'cancelled') AS cancelled,
       MAX(CASE WHEN li = k50 THEN latency END) AS latency_p50,
       MAX(CASE WHEN li = k95 THEN latency END) AS latency_p95,
       MAX(CASE WHEN li = k99 THEN latency END) AS latency_p99,
       AVG(latency) AS latency_mean,
       MAX(CASE WHEN ri = k50 THEN resolution END) AS resolution_p50,
       MAX(CASE WHEN ri = k95 THEN resolution END) AS resolution_p95,
       MAX(CASE WHEN ri = k99 THEN resolution END) AS resolution_p99,
       AVG(resolution) AS resolution_mean
FROM ranks GROUP BY workflow, n ORDER BY workflow

-- name: stats_run_effects
-- Per workflow, the effects of the runs that ended in the window: how many, the retries
-- (attempts beyond the first: each follows a transient failure) and the effects that ended
-- in error, transient (retries exhausted) or permanent, as the kernel classified them.
SELECT r.workflow AS workflow, COUNT(*) AS effects,
       SUM(e.attempt - 1) AS retries,
       SUM(CASE WHEN e.status = 'error' AND json_extract(e.error, '$.transient') = 1
                THEN 1 ELSE 0 END) AS transient_errors,
       SUM(CASE WHEN e.status = 'error' AND COALESCE(json_extract(e.error, '$.transient'), 0) = 0
                THEN 1 ELSE 0 END) AS permanent_errors
FROM runs r JOIN effects e ON e.run_id = r.id
WHERE r.finished_at >= :since AND r.finished_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR r.workflow = :workflow)
GROUP BY r.workflow

-- name: stats_models
-- Per model, the calls metered in the window: counts by outcome, tokens, cost, and the
-- latency percentiles (ms) of the calls that reached a provider (status ok).
WITH calls AS (
    SELECT model, status, latency_ms, cost, input_tokens, output_tokens
    FROM model_usage
    WHERE at >= :since AND at < :until
      AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
      AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
      AND (CAST(:model AS TEXT) IS NULL OR model = :model)
), timed AS (
    SELECT model, latency_ms,
           row_number() OVER (PARTITION BY model ORDER BY latency_ms) AS i,
           COUNT(*) OVER (PARTITION BY model) AS n
    FROM calls WHERE status = 'ok' AND latency_ms IS NOT NULL
), pct AS (
    SELECT model, n,
           MAX(CASE WHEN i = MAX(1, CAST(n * 0.5 AS INTEGER)
                                    + (n * 0.5 > CAST(n * 0.5 AS INTEGER)))
                    THEN latency_ms END) AS latency_p50,
           MAX(CASE WHEN i = MAX(1, CAST(n * 0.95 AS INTEGER)
                                    + (n * 0.95 > CAST(n * 0.95 AS INTEGER)))
                    THEN latency_ms END) AS latency_p95,
           MAX(CASE WHEN i = MAX(1, CAST(n * 0.99 AS INTEGER)
                                    + (n * 0.99 > CAST(n * 0.99 AS INTEGER)))
                    THEN latency_ms END) AS latency_p99,
           AVG(latency_ms) AS latency_mean
    FROM timed GROUP BY model, n
), sums AS (
    SELECT model, COUNT(*) AS calls,
           SUM(status = 'ok') AS ok, SUM(status = 'cached') AS cached,
           SUM(status = 'error') AS errors, SUM(status = 'denied') AS denied,
           SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
           SUM(cost) AS cost
    FROM calls GROUP BY model
)
SELECT s.*, p.latency_p50, p.latency_p95, p.latency_p99, p.latency_mean
FROM sums s LEFT JOIN pct p ON p.model = s.model ORDER BY s.model

-- name: stats_model_errors
-- Per model and error class (the text before the first ':' of model_usage.error), the calls
-- that failed or were denied in the window.
SELECT model, status,
       CASE WHEN instr(COALESCE(error, ''), ':') > 0
            THEN substr(error, 1, instr(error, ':') - 1) ELSE COALESCE(error, '') END AS error_type,
       COUNT(*) AS calls
FROM model_usage
WHERE at >= :since AND at < :until AND status IN ('error', 'denied')
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
GROUP BY model, status, error_type
