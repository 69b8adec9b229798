-- PostgreSQL's pruning statements: the runs of a batch are passed as an array (:ids).

-- name: prune_lock
-- Lock the runs of a batch in id order (as lock_runs does) and read them as they are now:
-- one resumed, or pruned by another process, since the batch was chosen is seen.
SELECT id, parent_id, status, finished_at FROM runs WHERE id = ANY(:ids) ORDER BY id FOR UPDATE

-- name: prune_runs
-- Delete the runs named that have ended (a run resumed meanwhile stays).
DELETE FROM runs WHERE id = ANY(:ids) AND status IN ('succeeded', 'failed', 'cancelled', 'dead')

-- name: prune_effects
-- Delete the effects of the runs named.
DELETE FROM effects WHERE run_id = ANY(:ids)

-- name: prune_signals
-- Delete the signals sent to the runs named.
DELETE FROM signals WHERE run_id = ANY(:ids)

-- name: prune_usage
-- Delete the model usage rows of the runs named (the daily spend buckets stay).
DELETE FROM model_usage WHERE run_id = ANY(:ids)

-- name: prune_shadows
-- Delete the shadow-model outcomes of the runs named.
DELETE FROM model_shadows WHERE run_id = ANY(:ids)

-- name: prune_cache
-- Delete the cached model answers the runs named wrote.
DELETE FROM model_cache WHERE run_id = ANY(:ids)

-- name: prune_tasks
-- Delete the human tasks of the runs named.
DELETE FROM human_tasks WHERE run_id = ANY(:ids)

-- name: prune_pseudonyms
-- Delete what the pseudonyms of the runs named stood for (redaction).
DELETE FROM pseudonyms WHERE run_id = ANY(:ids)

-- name: prune_counts
-- How many rows of each table belong to the runs named (a dry run).
SELECT
    (SELECT count(*) FROM effects WHERE run_id = ANY(:ids)) AS effects,
    (SELECT count(*) FROM signals WHERE run_id = ANY(:ids)) AS signals,
    (SELECT count(*) FROM model_usage WHERE run_id = ANY(:ids)) AS usage,
    (SELECT count(*) FROM model_shadows WHERE run_id = ANY(:ids)) AS shadows,
    (SELECT count(*) FROM model_cache WHERE run_id = ANY(:ids)) AS cache,
    (SELECT count(*) FROM human_tasks WHERE run_id = ANY(:ids)) AS tasks,
    (SELECT count(*) FROM pseudonyms WHERE run_id = ANY(:ids)) AS pseudonyms
