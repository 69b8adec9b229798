-- A run's recoveries (0010) go with the run when it is pruned (Store.prune deletes runs).
CREATE TRIGGER runs_pruned_recoveries AFTER DELETE ON runs
BEGIN
    DELETE FROM run_recoveries WHERE run_id = OLD.id;
END;
