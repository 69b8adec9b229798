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

-- name: stats_tenant_seen
-- Whether tenant :tenant exists here: it has a key (tenants), a run or a model call.
SELECT (EXISTS (SELECT 1 FROM tenants WHERE id = :tenant)
        OR EXISTS (SELECT 1 FROM runs WHERE tenant = :tenant)
        OR EXISTS (SELECT 1 FROM model_usage WHERE tenant = :tenant)) AS seen

-- name: stats_workflow_seen
-- Whether workflow :workflow ever had a run here (of :tenant; NULL: of any tenant). The
-- SLO check asks it once per SLO naming a workflow the app does not declare (a full scan
-- on PostgreSQL when it never ran: no index leads with the workflow).
SELECT EXISTS (SELECT 1 FROM runs
               WHERE workflow = :workflow
                 AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)) AS seen

-- name: stats_model_seen
-- Whether model :model was ever called here (of :tenant; NULL: of any tenant).
SELECT EXISTS (SELECT 1 FROM model_usage
               WHERE model = :model
                 AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)) AS seen
