-- Lineage (aiosys/governance/lineage.py): which runs used a model card's version. Both read
-- the index effects_model_deployment (0022_lineage.sql) by the expression it is built on,
-- written here exactly as there. :tenant NULL means every tenant (the local operator's).

-- name: lineage_model_runs
-- The runs whose model calls the deployment :low (id@version; :high is the same) answered
-- since :since, newest use first: their calls, first and last use.
SELECT r.id, r.workflow, r.version, r.tenant, r.status, r.parent_id, r.created_at,
       string_agg(DISTINCT aiosys_meta_text(e.meta, 'deployment'), ',') AS models,
       COUNT(*) AS calls, MIN(e.started_at) AS first_at, MAX(e.started_at) AS last_at
FROM effects e JOIN runs r ON r.id = e.run_id
WHERE e.kind = 'model' AND e.status = 'ok'
  AND (aiosys_meta_text(e.meta, 'deployment') COLLATE "C") = CAST(:low AS TEXT)
  AND e.started_at >= :since
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
GROUP BY r.id
ORDER BY last_at DESC, r.id
LIMIT :limit

-- name: lineage_model_runs_any
-- As lineage_model_runs, for every version of a card: deployments in [:low, :high) ('id@'
-- up to 'idA', in the "C" collation).
SELECT r.id, r.workflow, r.version, r.tenant, r.status, r.parent_id, r.created_at,
       string_agg(DISTINCT aiosys_meta_text(e.meta, 'deployment'), ',') AS models,
       COUNT(*) AS calls, MIN(e.started_at) AS first_at, MAX(e.started_at) AS last_at
FROM effects e JOIN runs r ON r.id = e.run_id
WHERE e.kind = 'model' AND e.status = 'ok'
  AND (aiosys_meta_text(e.meta, 'deployment') COLLATE "C") >= CAST(:low AS TEXT)
  AND (aiosys_meta_text(e.meta, 'deployment') COLLATE "C") < CAST(:high AS TEXT)
  AND e.started_at >= :since
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
GROUP BY r.id
ORDER BY last_at DESC, r.id
LIMIT :limit
