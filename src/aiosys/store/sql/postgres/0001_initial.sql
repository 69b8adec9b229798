-- aiosys schema v1 (PostgreSQL). Times are seconds since the epoch; JSON is stored as text.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    version         TEXT NOT NULL,
    wf_key          TEXT NOT NULL,                  -- workflow@version: what a worker can run
    tenant          TEXT NOT NULL,
    queue           TEXT NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    input           TEXT NOT NULL,
    result          TEXT,
    error           TEXT,
    idempotency_key TEXT,
    parent_id       TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    started_at      DOUBLE PRECISION,
    finished_at     DOUBLE PRECISION,
    deadline_at     DOUBLE PRECISION,               -- per-run timeout
    available_at    DOUBLE PRECISION,               -- claimable from then on; NULL = not claimable
                                                    -- (pending: now; waiting: its timer; running:
                                                    -- its lease expiry; ended: NULL)
    lease_owner     TEXT,
    wake_seq        INTEGER NOT NULL DEFAULT 0,     -- bumped by every wake-up (signal, child end)
    failed_seq      INTEGER,                        -- the effect that killed a dead run
    cancel_reason   TEXT,
    claims          INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX runs_idempotency ON runs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_claimable ON runs (queue, priority DESC, available_at)
    WHERE available_at IS NOT NULL;
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE effects (
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,                  -- step, sleep, signal, child_start, child_result
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,                  -- ok, error, pending
    output      TEXT,
    error       TEXT,
    attempt     INTEGER NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE signals (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    consumed_seq INTEGER
);
CREATE INDEX signals_unconsumed ON signals (run_id) WHERE consumed_seq IS NULL;
