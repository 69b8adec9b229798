-- SQLite's human task listing: :roles is a JSON array (or NULL: any role).

-- name: human_task_list
-- Tasks of :tenant (NULL: any), most urgent first: with :status NULL the ones still to act on
-- (open or claimed, their run live), 'any' every one, else those of that status; with :roles
-- those for one of the roles or claimed by :who; of one run with :run_id.
SELECT t.*, r.status AS run_status
FROM human_tasks AS t JOIN runs AS r ON r.id = t.run_id
WHERE (:tenant IS NULL OR t.tenant = :tenant)
  AND (CASE WHEN :status IS NULL
            THEN t.status IN ('open', 'claimed') AND r.status IN ('pending', 'running', 'waiting')
            WHEN :status = 'any' THEN 1
            ELSE t.status = :status END)
  AND (:roles IS NULL OR t.role IN (SELECT value FROM json_each(:roles)) OR t.claimed_by = :who)
  AND (:run_id IS NULL OR t.run_id = :run_id)
ORDER BY t.due_at IS NULL, t.due_at, t.created_at, t.id
LIMIT :limit
