-- Issue 12, stats: the human tasks a person decided, by when (the window of `aiosys stats`:
-- the share of reviews approved without an edit, sql/postgres/stats.sql stats_human_reviews).
-- Partial: a task enters it once, when it is decided.
CREATE INDEX human_tasks_decided ON human_tasks (decided_at) INCLUDE (tenant, workflow)
    WHERE decided_by IS NOT NULL;
