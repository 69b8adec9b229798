-- Issue 12, human tasks (aiosys.humans): one row per `ctx.human_task` effect, the inbox's
-- unit. Written when the effect first runs (before its run parks), changed by claims,
-- releases, escalations and the decision, which wakes the run in the same transaction.
-- Times are seconds since the epoch (the store's clock); JSON is stored as text.
CREATE TABLE human_tasks (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    seq              INTEGER NOT NULL,          -- the run's effect that waits for it
    workflow         TEXT NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,             -- who may act on it now (escalation moves it)
    data             TEXT,                      -- JSON shown to the reviewer
    form             TEXT,                      -- JSON {"ref", "schema"} of the edit's form
    sla              REAL,                      -- seconds each role has; NULL: no SLA
    due_at           REAL,                      -- when the current role's SLA passes; NULL: never
    escalate_to      TEXT NOT NULL,             -- JSON list of roles, in order
    escalations      INTEGER NOT NULL DEFAULT 0,-- how often its SLA passed
    history          TEXT NOT NULL,             -- JSON list of escalations {at, from, to}
    return_escalated INTEGER NOT NULL DEFAULT 0,-- 1: an escalation ends it (the run reacts)
    assignee         TEXT,                      -- the principal id the workflow named
    claimed_by       TEXT,                      -- principal id
    claimed_at       REAL,
    status           TEXT NOT NULL,             -- open, claimed, completed, escalated
    decision         TEXT,                      -- JSON of the Decision, once there is one
    decided_by       TEXT,                      -- principal id
    decided_at       REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    UNIQUE (run_id, seq)
);
-- The inbox: a tenant's open tasks by role.
CREATE INDEX human_tasks_inbox ON human_tasks (tenant, status, role);
