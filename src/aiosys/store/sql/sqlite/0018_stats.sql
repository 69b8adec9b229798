-- Issue 11, stats and SLOs: the indexes their queries read by.

-- Runs that ended, by when (the window of `aiosys stats`); covering what the per-workflow
-- sums read, so a window is one index range scan with no lookup of the run's row.
CREATE INDEX runs_ended ON runs (finished_at, tenant, workflow, status, created_at, started_at)
    WHERE finished_at IS NOT NULL;
-- The dead-letter backlog, per workflow.
CREATE INDEX runs_dead ON runs (tenant, workflow) WHERE status = 'dead';
-- Model calls by time across tenants (the local operator's stats); one tenant's use
-- model_usage_tenant.
CREATE INDEX model_usage_at ON model_usage (at);
