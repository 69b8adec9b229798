-- PostgreSQL's human task listing: :roles is a JSON array as text (or NULL: any role).

-- name: human_task_list
-- Tasks of :tenant (NULL: any), most urgent first: with :status NULL the ones still to act on
-- (open or claimed, their run live), 'any' every one, else those of that status; with :roles
-- those for one of the roles or claimed by :who; of one run with :run_id.
SELECT t.*, r.status AS run_status
FROM human_tasks AS t JOIN runs AS r ON r.id = t.run_id
WHERE (CAST(:tenant AS TEXT) IS NULL OR t.tenant = :tenant)
  AND (CASE WHEN CAST(:status AS TEXT) IS NULL
            THEN t.status IN ('open', 'claimed') AND r.status IN ('pending', 'running', 'waiting')
            WHEN :status = 'any' THEN TRUE
            ELSE t.status = :status END)
  AND (CAST(:roles AS TEXT) IS NULL
       OR t.role IN (SELECT json_array_elements_text(CAST(:roles AS json)))
       OR t.claimed_by = CAST(:who AS TEXT))
  AND (CAST(:run_id AS TEXT) IS NULL OR t.run_id = :run_id)
ORDER BY t.due_at NULLS LAST, t.created_at, t.id
LIMIT :limit
