-- Named queries of human tasks (aiosys.humans): the `human_tasks` table (0020_human_tasks.sql).
-- The changes return the rows they changed: `Store.change` writes what goes with a change
-- (its audit record; a decision's wake-up of the run) only when there is one. A dialect's
-- own humans.sql holds the listing, which takes a list of roles.

-- name: human_task_insert
-- A new task, written when its effect first runs; a second write for the same effect (a
-- replay after a crash) changes nothing and returns nothing.
INSERT INTO human_tasks (id, tenant, run_id, seq, workflow, name, role, data, form, sla,
                         due_at, escalate_to, escalations, history, return_escalated, assignee,
                         claimed_by, claimed_at, status, created_at, updated_at)
VALUES (:id, :tenant, :run_id, :seq, :workflow, :name, :role, :data, :form, :sla,
        :due_at, :escalate_to, 0, '[]', :return_escalated, :assignee,
        :claimed_by, :claimed_at, :status, :now, :now)
ON CONFLICT DO NOTHING
RETURNING *

-- name: human_task_get
-- One task by id, with the status of its run.
SELECT t.*, r.status AS run_status
FROM human_tasks AS t LEFT JOIN runs AS r ON r.id = t.run_id
WHERE t.id = :id

-- name: human_task_of_effect
-- The task of a run's effect (the effect's executor reads it on every wake-up).
SELECT * FROM human_tasks WHERE run_id = :run_id AND seq = :seq

-- name: human_task_claim
-- Claim an open task for :who (claiming one's own claim again changes nothing else), as long
-- as it was not escalated since the caller's rights were checked (:escalations).
UPDATE human_tasks
SET status = 'claimed', claimed_by = :who, claimed_at = COALESCE(claimed_at, :now),
    updated_at = :now
WHERE id = :id AND tenant = :tenant AND escalations = :escalations
  AND (status = 'open' OR (status = 'claimed' AND claimed_by = :who))
RETURNING *

-- name: human_task_release
-- Give a claimed task back to its role: by the one who claimed it (:any_claim 1: anyone).
UPDATE human_tasks
SET status = 'open', claimed_by = NULL, claimed_at = NULL, updated_at = :now
WHERE id = :id AND tenant = :tenant AND status = 'claimed'
  AND (claimed_by = :who OR :any_claim = 1)
RETURNING *

-- name: human_task_complete
-- Record the decision of an open task (or one claimed by :who; :any_claim 1: by anyone)
-- whose run is still live, unless it was escalated since the caller's rights were checked.
-- Returns the task's run, which `Store.change` wakes in the same transaction.
UPDATE human_tasks
SET status = 'completed', decision = :decision, decided_by = :who, decided_at = :now,
    updated_at = :now
WHERE id = :id AND tenant = :tenant AND escalations = :escalations
  AND (status = 'open' OR (status = 'claimed' AND (claimed_by = :who OR :any_claim = 1)))
  AND EXISTS (SELECT 1 FROM runs WHERE runs.id = human_tasks.run_id
                                   AND runs.status IN ('pending', 'running', 'waiting'))
RETURNING id, run_id

-- name: human_task_escalate
-- An SLA passed: hand the task to :role with a new due time (claims dropped), or end it as
-- escalated (:status 'escalated', with the decision the workflow gets), or (:status
-- 'claimed': nobody left to hand it to) leave it with whoever holds it. Only the escalation
-- expected (:escalations) lands: a decision or another escalation meanwhile wins.
UPDATE human_tasks
SET role = :role, escalations = escalations + 1, due_at = :due_at, status = :status,
    claimed_by = CASE WHEN :status = 'claimed' THEN claimed_by END,
    claimed_at = CASE WHEN :status = 'claimed' THEN claimed_at END,
    history = :history, decision = :decision, decided_at = :decided_at, updated_at = :now
WHERE id = :id AND escalations = :escalations AND status IN ('open', 'claimed')
RETURNING *
