-- The AI Act evidence (aiosys/governance/ai_act.py): the uses of a workflow in a period.
-- Both read the index runs_created (0001). :tenant NULL means every tenant (the operator's).

-- name: ai_act_runs
-- The runs of :workflow created from :since to before :until (seconds) in :tenant, oldest
-- first, after (:after_at, :after_id): keyset paging, :limit a page.
SELECT * FROM runs
WHERE workflow = :workflow
  AND created_at >= :since AND created_at < :until
  AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
  AND (created_at > :after_at OR (created_at = :after_at AND id > :after_id))
ORDER BY created_at, id
LIMIT :limit

-- name: ai_act_workflow_seen
-- Whether :workflow ever had a run in :tenant (a workflow the app does not declare is known
-- by its runs).
SELECT id FROM runs
WHERE workflow = :workflow AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
LIMIT 1
