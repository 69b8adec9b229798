-- Issue 9, costs and hard budgets.
-- Prompt-cache and reasoning tokens of each metered call (parts of input_tokens and
-- output_tokens, as the provider reported them).
ALTER TABLE model_usage ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_usage ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_usage ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
-- The budget reservation this call's row settles (NULL: none was made).
ALTER TABLE model_usage ADD COLUMN reservation TEXT;

-- A call's worst-case cost, reserved under its tenant's hard budgets before it is sent
-- (links/budget.py). Counted with the spend until the call's usage row lands (the trigger
-- below deletes it in that row's transaction) or until it expires (a crashed process).
CREATE TABLE model_reservations (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    workflow   TEXT,
    amount     DOUBLE PRECISION NOT NULL,
    at         DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX model_reservations_tenant ON model_reservations (tenant, expires_at);

CREATE FUNCTION model_usage_settles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM model_reservations WHERE id = NEW.reservation;
    RETURN NULL;
END
$$;

CREATE TRIGGER model_usage_settles AFTER INSERT ON model_usage
FOR EACH ROW WHEN (NEW.reservation IS NOT NULL) EXECUTE FUNCTION model_usage_settles();

-- Reserve atomically across workers: the tenant's advisory lock serializes the reservations
-- of one tenant, and each statement below reads a snapshot taken after the lock (READ
-- COMMITTED, a VOLATILE function), so two workers never both fit into the same room.
-- :budgets is a JSON array of {"workflow", "since", "full_from", "room"}: the call is
-- reserved only if, for each, spend + live reservations + amount <= room.
CREATE FUNCTION model_reserve(p_id TEXT, p_tenant TEXT, p_workflow TEXT, p_amount DOUBLE PRECISION,
                              p_at DOUBLE PRECISION, p_expires_at DOUBLE PRECISION,
                              p_budgets JSONB) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('aiosys-budget'), hashtext(p_tenant));
    INSERT INTO model_reservations (id, tenant, workflow, amount, at, expires_at)
    SELECT p_id, p_tenant, p_workflow, p_amount, p_at, p_expires_at
    WHERE NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_budgets) AS b
        WHERE (SELECT COALESCE(SUM(cost), 0) FROM model_spend
               WHERE tenant = p_tenant
                 AND (b->>'workflow' IS NULL OR workflow = b->>'workflow')
                 AND day >= (b->>'full_from')::DOUBLE PRECISION)
            + (SELECT COALESCE(SUM(cost), 0) FROM model_usage
               WHERE tenant = p_tenant
                 AND (b->>'workflow' IS NULL OR workflow = b->>'workflow')
                 AND at >= (b->>'since')::DOUBLE PRECISION
                 AND at < (b->>'full_from')::DOUBLE PRECISION)
            + (SELECT COALESCE(SUM(amount), 0) FROM model_reservations
               WHERE tenant = p_tenant
                 AND (b->>'workflow' IS NULL OR workflow = b->>'workflow')
                 AND expires_at > p_at)
            + p_amount > (b->>'room')::DOUBLE PRECISION
    );
    RETURN FOUND;
END
$$;
