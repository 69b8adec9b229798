-- Issue 11: the queries behind `aiosys stats` and `aiosys slo check` (aiosys/observe/stats.py)
-- that both stores share; the percentile queries are each dialect's own (stats.sql there).
-- The window is [since, until) in epoch seconds; :tenant NULL means every tenant (the local
-- operator's), :workflow / :model NULL means every one.

-- name: stats_run_costs
-- Model cost of the runs that succeeded in the window, per workflow (cost per completed run).
SELECT r.workflow AS workflow, COUNT(DISTINCT r.id) AS runs, SUM(u.cost) AS cost
FROM runs r JOIN model_usage u ON u.run_id = r.id
WHERE r.finished_at >= :since AND r.finished_at < :until AND r.status = 'succeeded'
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR r.workflow = :workflow)
GROUP BY r.workflow

-- name: stats_dead_backlog
-- Runs dead-lettered now (kept for inspection and resume), per workflow; not windowed.
SELECT workflow, COUNT(*) AS dead
FROM runs
WHERE status = 'dead'
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow
