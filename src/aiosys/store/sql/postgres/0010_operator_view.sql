-- Issue 9 point 7: what an operator sees of workers, attempts and lease gaps.

-- Set by each claim: when it took the run over from a worker whose lease had expired (the
-- run was still `running`), that worker and when its lease expired; else NULL.
ALTER TABLE runs ADD COLUMN recovered_from TEXT;
ALTER TABLE runs ADD COLUMN lease_expired_at DOUBLE PRECISION;

-- The claim (runs.epoch) an effect was last recorded under: which attempt, so which worker.
ALTER TABLE effects ADD COLUMN epoch INTEGER;

-- One row per claim of a run (an attempt), written by the claim itself (the triggers below):
-- the worker that took it, when, and for a recovery the worker that lost it.
CREATE TABLE run_claims (
    run_id           TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    worker           TEXT NOT NULL,
    claimed_at       DOUBLE PRECISION NOT NULL,
    recovered_from   TEXT,
    lease_expired_at DOUBLE PRECISION,
    PRIMARY KEY (run_id, epoch)
);

-- On a claim, updated_at is the claim's time; on a run leased at creation it is created_at.
CREATE FUNCTION runs_claimed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_claims (run_id, epoch, worker, claimed_at, recovered_from,
                            lease_expired_at)
    VALUES (NEW.id, NEW.epoch, NEW.lease_owner, NEW.updated_at, NEW.recovered_from,
            NEW.lease_expired_at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_claimed AFTER UPDATE OF epoch ON runs
FOR EACH ROW WHEN (NEW.epoch > OLD.epoch AND NEW.lease_owner IS NOT NULL)
EXECUTE FUNCTION runs_claimed();

-- A run started in a worker's process is leased to it at creation (epoch 1): its first claim.
CREATE TRIGGER runs_leased_at_start AFTER INSERT ON runs
FOR EACH ROW WHEN (NEW.lease_owner IS NOT NULL)
EXECUTE FUNCTION runs_claimed();

-- Workers alive now: each upserts its row at start and with every heartbeat, and deletes it
-- when it stops. A row whose expires_at has passed is a worker that died or hung.
-- queues and wf_keys are JSON arrays of text.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT NOT NULL,
    wf_keys      TEXT NOT NULL,
    lease        DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL
);
