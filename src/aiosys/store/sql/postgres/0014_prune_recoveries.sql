-- A run's recoveries (0010) go with the run when it is pruned (Store.prune deletes runs).
DELETE FROM run_recoveries AS r WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = r.run_id);
ALTER TABLE run_recoveries ADD CONSTRAINT run_recoveries_run_fk
    FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
