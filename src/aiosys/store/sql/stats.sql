-- Issue 11: the queries behind `aiosys stats` and `aiosys slo check` (aiosys/observe/stats.py)
-- that both stores share; each dialect's stats.sql holds its own (percentiles above all).
-- The window is [since, until) in epoch seconds; :tenant NULL means every tenant (the local
-- operator's), :workflow NULL every workflow.

-- name: stats_dead_backlog
-- Runs dead-lettered now (kept for inspection and resume), per workflow; not windowed.
SELECT workflow, COUNT(*) AS dead
FROM runs
WHERE status = 'dead'
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (CAST(:workflow AS TEXT) IS NULL OR workflow = :workflow)
GROUP BY workflow
