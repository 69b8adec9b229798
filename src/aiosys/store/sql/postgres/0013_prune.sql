-- Issue 9, retention: `aiosys runs prune` and App(retention=...) delete runs that ended long
-- ago with what belongs to them (store/prune.py).
-- The run that wrote a cached model answer (NULL: written outside a run, or before this
-- version), so a pruned run's answers go with it. A later run refreshing the entry takes it.
ALTER TABLE model_cache ADD COLUMN run_id TEXT;
CREATE INDEX model_cache_run ON model_cache (run_id) WHERE run_id IS NOT NULL;
-- What a prune finds and deletes by: ended runs oldest first, and every row of a run.
CREATE INDEX runs_finished ON runs (finished_at, id) WHERE finished_at IS NOT NULL;
CREATE INDEX signals_run ON signals (run_id);
CREATE INDEX model_shadows_run ON model_shadows (run_id) WHERE run_id IS NOT NULL;
