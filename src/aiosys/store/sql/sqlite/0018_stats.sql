-- Issue 11, stats and SLOs: the indexes their queries read by (sql/sqlite/stats.sql).
-- Partial on ended runs: written once, when a run ends, never on its hot path before.

-- Runs that ended, by when (the window of `aiosys stats`), covering the per-workflow sums.
CREATE INDEX runs_ended ON runs (finished_at, tenant, workflow, status, created_at, started_at)
    WHERE finished_at IS NOT NULL;
-- Percentiles by ORDER BY ... OFFSET: a workflow's runs in latency order, and in time to
-- resolution order (the expressions of stats_run_latency_at / stats_run_resolution_at).
CREATE INDEX runs_latency
    ON runs (workflow, (finished_at - COALESCE(started_at, created_at)), finished_at, tenant)
    WHERE finished_at IS NOT NULL;
CREATE INDEX runs_resolution ON runs (workflow, (finished_at - created_at), finished_at, tenant)
    WHERE finished_at IS NOT NULL;
-- A model's timed calls in latency order.
CREATE INDEX model_usage_latency ON model_usage (model, latency_ms, at, tenant, workflow)
    WHERE status = 'ok' AND latency_ms IS NOT NULL;
-- Effects retried or failed: the only ones the failure and retry counts read.
CREATE INDEX effects_eventful ON effects (run_id) WHERE attempt > 1 OR status = 'error';
-- The dead-letter backlog, per workflow.
CREATE INDEX runs_dead ON runs (tenant, workflow) WHERE status = 'dead';
-- Model calls by time across tenants (the local operator's stats); one tenant's use
-- model_usage_tenant.
CREATE INDEX model_usage_at ON model_usage (at);
