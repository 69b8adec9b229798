-- Prometheus metrics computed from the store at scrape time (aiosys.observe.metrics), so a
-- scrape from any process counts the work of every worker. :tenant NULL means every tenant.
-- Histograms are counted here, cumulatively as Prometheus writes them: `le_<i>` counts the
-- values at most aiosys.observe.metrics.BUCKETS[i] (seconds), `n` all of them (+Inf), `total`
-- their sum; one column per bound keeps the groups few (PostgreSQL aggregates them in its
-- parallel workers, no sort). tests/unit/test_metrics_sql.py checks every column, here and in
-- the dialects' own metrics.sql, against BUCKETS.

-- name: metrics_runs
-- Runs by workflow, tenant and status, and how many of them were ever claimed (started).
SELECT workflow, tenant, status, count(*) AS n,
       sum(CASE WHEN started_at IS NOT NULL THEN 1 ELSE 0 END) AS started
FROM runs
WHERE CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant
GROUP BY workflow, tenant, status

-- name: metrics_run_seconds
-- Histogram of the runs that ended: seconds from their first claim to their end, per workflow.
SELECT workflow,
       sum(CASE WHEN d <= 0.005 THEN 1 ELSE 0 END) AS le_0,
       sum(CASE WHEN d <= 0.01 THEN 1 ELSE 0 END) AS le_1,
       sum(CASE WHEN d <= 0.025 THEN 1 ELSE 0 END) AS le_2,
       sum(CASE WHEN d <= 0.05 THEN 1 ELSE 0 END) AS le_3,
       sum(CASE WHEN d <= 0.1 THEN 1 ELSE 0 END) AS le_4,
       sum(CASE WHEN d <= 0.25 THEN 1 ELSE 0 END) AS le_5,
       sum(CASE WHEN d <= 0.5 THEN 1 ELSE 0 END) AS le_6,
       sum(CASE WHEN d <= 1 THEN 1 ELSE 0 END) AS le_7,
       sum(CASE WHEN d <= 2.5 THEN 1 ELSE 0 END) AS le_8,
       sum(CASE WHEN d <= 5 THEN 1 ELSE 0 END) AS le_9,
       sum(CASE WHEN d <= 10 THEN 1 ELSE 0 END) AS le_10,
       sum(CASE WHEN d <= 30 THEN 1 ELSE 0 END) AS le_11,
       sum(CASE WHEN d <= 60 THEN 1 ELSE 0 END) AS le_12,
       sum(CASE WHEN d <= 300 THEN 1 ELSE 0 END) AS le_13,
       sum(CASE WHEN d <= 1800 THEN 1 ELSE 0 END) AS le_14,
       sum(CASE WHEN d <= 3600 THEN 1 ELSE 0 END) AS le_15,
       sum(CASE WHEN d <= 21600 THEN 1 ELSE 0 END) AS le_16,
       sum(CASE WHEN d <= 86400 THEN 1 ELSE 0 END) AS le_17,
       count(*) AS n, sum(d) AS total
FROM (SELECT workflow, finished_at - started_at AS d FROM runs
      WHERE finished_at IS NOT NULL AND started_at IS NOT NULL
        AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)) AS t
GROUP BY workflow

-- name: metrics_queue_wait_seconds
-- Histogram of the seconds runs waited in their queue, from creation to their first claim.
SELECT queue,
       sum(CASE WHEN d <= 0.005 THEN 1 ELSE 0 END) AS le_0,
       sum(CASE WHEN d <= 0.01 THEN 1 ELSE 0 END) AS le_1,
       sum(CASE WHEN d <= 0.025 THEN 1 ELSE 0 END) AS le_2,
       sum(CASE WHEN d <= 0.05 THEN 1 ELSE 0 END) AS le_3,
       sum(CASE WHEN d <= 0.1 THEN 1 ELSE 0 END) AS le_4,
       sum(CASE WHEN d <= 0.25 THEN 1 ELSE 0 END) AS le_5,
       sum(CASE WHEN d <= 0.5 THEN 1 ELSE 0 END) AS le_6,
       sum(CASE WHEN d <= 1 THEN 1 ELSE 0 END) AS le_7,
       sum(CASE WHEN d <= 2.5 THEN 1 ELSE 0 END) AS le_8,
       sum(CASE WHEN d <= 5 THEN 1 ELSE 0 END) AS le_9,
       sum(CASE WHEN d <= 10 THEN 1 ELSE 0 END) AS le_10,
       sum(CASE WHEN d <= 30 THEN 1 ELSE 0 END) AS le_11,
       sum(CASE WHEN d <= 60 THEN 1 ELSE 0 END) AS le_12,
       sum(CASE WHEN d <= 300 THEN 1 ELSE 0 END) AS le_13,
       sum(CASE WHEN d <= 1800 THEN 1 ELSE 0 END) AS le_14,
       sum(CASE WHEN d <= 3600 THEN 1 ELSE 0 END) AS le_15,
       sum(CASE WHEN d <= 21600 THEN 1 ELSE 0 END) AS le_16,
       sum(CASE WHEN d <= 86400 THEN 1 ELSE 0 END) AS le_17,
       count(*) AS n, sum(d) AS total
FROM (SELECT queue, started_at - created_at AS d FROM runs
      WHERE started_at IS NOT NULL
        AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)) AS t
GROUP BY queue

-- name: metrics_queues
-- Per queue, of the runs a claim could take now (pending, timer due, lease expired): how many
-- and since when the oldest; and the runs held by a worker's live lease (in flight). Reads
-- only the live runs (the partial index runs_claimable: available_at IS NOT NULL).
SELECT queue,
       sum(CASE WHEN available_at <= :now THEN 1 ELSE 0 END) AS ready,
       min(CASE WHEN available_at <= :now THEN available_at END) AS oldest,
       sum(CASE WHEN status = 'running' AND available_at > :now THEN 1 ELSE 0 END) AS in_flight
FROM runs
WHERE available_at IS NOT NULL AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
GROUP BY queue

-- name: metrics_models
-- Model calls (model_usage rows) by model, tenant and status (ok, error, cached, denied,
-- shadow), with their tokens and cost.
SELECT model, tenant, status, count(*) AS n,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(reasoning_tokens) AS reasoning_tokens, sum(cost) AS cost
FROM model_usage
WHERE CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant
GROUP BY model, tenant, status

-- name: metrics_model_seconds
-- Histogram of the latency of the model calls sent to a provider (not cache hits, not calls
-- a budget denied), per model, in seconds.
SELECT model,
       sum(CASE WHEN d <= 0.005 THEN 1 ELSE 0 END) AS le_0,
       sum(CASE WHEN d <= 0.01 THEN 1 ELSE 0 END) AS le_1,
       sum(CASE WHEN d <= 0.025 THEN 1 ELSE 0 END) AS le_2,
       sum(CASE WHEN d <= 0.05 THEN 1 ELSE 0 END) AS le_3,
       sum(CASE WHEN d <= 0.1 THEN 1 ELSE 0 END) AS le_4,
       sum(CASE WHEN d <= 0.25 THEN 1 ELSE 0 END) AS le_5,
       sum(CASE WHEN d <= 0.5 THEN 1 ELSE 0 END) AS le_6,
       sum(CASE WHEN d <= 1 THEN 1 ELSE 0 END) AS le_7,
       sum(CASE WHEN d <= 2.5 THEN 1 ELSE 0 END) AS le_8,
       sum(CASE WHEN d <= 5 THEN 1 ELSE 0 END) AS le_9,
       sum(CASE WHEN d <= 10 THEN 1 ELSE 0 END) AS le_10,
       sum(CASE WHEN d <= 30 THEN 1 ELSE 0 END) AS le_11,
       sum(CASE WHEN d <= 60 THEN 1 ELSE 0 END) AS le_12,
       sum(CASE WHEN d <= 300 THEN 1 ELSE 0 END) AS le_13,
       sum(CASE WHEN d <= 1800 THEN 1 ELSE 0 END) AS le_14,
       sum(CASE WHEN d <= 3600 THEN 1 ELSE 0 END) AS le_15,
       sum(CASE WHEN d <= 21600 THEN 1 ELSE 0 END) AS le_16,
       sum(CASE WHEN d <= 86400 THEN 1 ELSE 0 END) AS le_17,
       count(*) AS n, sum(d) AS total
FROM (SELECT model, latency_ms / 1000.0 AS d FROM model_usage
      WHERE latency_ms IS NOT NULL AND status IN ('ok', 'error', 'shadow')
        AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)) AS t
GROUP BY model

-- name: metrics_spend_since
-- Spend per tenant and workflow ('' outside a workflow) since a UTC midnight, from the daily
-- spend buckets (what budgets read).
SELECT tenant, workflow, sum(cost) AS cost
FROM model_spend
WHERE day >= :since AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
GROUP BY tenant, workflow
