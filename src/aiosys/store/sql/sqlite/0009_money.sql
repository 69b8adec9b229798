-- Issue 9, costs and hard budgets.
-- Prompt-cache and reasoning tokens of each metered call (parts of input_tokens and
-- output_tokens, as the provider reported them).
ALTER TABLE model_usage ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
-- The budget reservation this call's row settles (NULL: none was made).
ALTER TABLE model_usage ADD COLUMN reservation TEXT;

-- A call's worst-case cost, reserved under its tenant's hard budgets before it is sent
-- (links/budget.py). Counted with the spend until the call's usage row lands (the trigger
-- below deletes it in that row's transaction) or until it expires (a crashed process).
CREATE TABLE model_reservations (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    workflow   TEXT,
    amount     REAL NOT NULL,
    at         REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX model_reservations_tenant ON model_reservations (tenant, expires_at);

CREATE TRIGGER model_usage_settles AFTER INSERT ON model_usage
WHEN NEW.reservation IS NOT NULL
BEGIN
    DELETE FROM model_reservations WHERE id = NEW.reservation;
END;
