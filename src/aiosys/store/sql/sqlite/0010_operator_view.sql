-- Issue 9 point 7: what an operator sees of workers, attempts and lease gaps.

-- Set by each claim: when it took the run over from a worker whose lease had expired (the
-- run was still `running`), that worker and when its lease expired; else NULL.
ALTER TABLE runs ADD COLUMN recovered_from TEXT;
ALTER TABLE runs ADD COLUMN lease_expired_at REAL;

-- The claim (runs.epoch: the run's attempt) an effect was last recorded under, and the
-- worker that held that claim, written with the effect's record.
ALTER TABLE effects ADD COLUMN epoch INTEGER;
ALTER TABLE effects ADD COLUMN worker TEXT;

-- One row per recovery (a claim that took a run over from a worker whose lease expired),
-- written by the claim itself (the trigger below; other claims write nothing more): the
-- worker that took it and when, the worker that lost it and when its lease expired.
CREATE TABLE run_recoveries (
    run_id           TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    worker           TEXT NOT NULL,
    claimed_at       REAL NOT NULL,
    recovered_from   TEXT,
    lease_expired_at REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;

CREATE TRIGGER runs_recovered AFTER UPDATE OF epoch ON runs
WHEN NEW.epoch > OLD.epoch AND OLD.status = 'running' AND NEW.recovered_from IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO run_recoveries (run_id, epoch, worker, claimed_at, recovered_from,
                                          lease_expired_at)
    VALUES (NEW.id, NEW.epoch, NEW.lease_owner, NEW.updated_at, NEW.recovered_from,
            NEW.lease_expired_at);
END;

-- Workers alive now: each upserts its row at start and with every heartbeat, and deletes it
-- when it stops. A row whose expires_at has passed is a worker that died or hung.
-- queues and wf_keys are JSON arrays of text.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT NOT NULL,
    wf_keys      TEXT NOT NULL,
    lease        REAL NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at   REAL NOT NULL
);
