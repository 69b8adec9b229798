-- Issue 11, stats and SLOs: the indexes their queries read by (sql/postgres/stats.sql).

-- Runs that ended, by when (the window of `aiosys stats`), covering what the per-workflow
-- sums and percentiles read (an index-only scan where the visibility map allows). Partial:
-- written once, when a run ends.
CREATE INDEX runs_ended ON runs (finished_at)
    INCLUDE (tenant, workflow, status, created_at, started_at)
    WHERE finished_at IS NOT NULL;
-- Effects retried or failed: the only ones the failure and retry counts read.
CREATE INDEX effects_eventful ON effects (run_id) WHERE attempt > 1 OR status = 'error';
-- The dead-letter backlog, per workflow.
CREATE INDEX runs_dead ON runs (tenant, workflow) WHERE status = 'dead';
-- Model calls by time across tenants (the local operator's stats); one tenant's use
-- model_usage_tenant.
CREATE INDEX model_usage_at ON model_usage (at);
