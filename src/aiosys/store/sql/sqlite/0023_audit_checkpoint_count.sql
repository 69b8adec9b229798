-- The head row counts the checkpoints written (`checkpoints`: the number of the last one),
-- moved by the insert of a checkpoint, in its transaction: a verify that finds fewer
-- checkpoints than the head counts names the missing ones (the last one, or all of them,
-- deleted), which the chain of checkpoints alone cannot show (each checkpoint signs the
-- one before it, not the one after). aiosys.governance.audit_verify says what this does
-- not cover.
ALTER TABLE audit_head ADD COLUMN checkpoints INTEGER NOT NULL DEFAULT 0;
UPDATE audit_head SET checkpoints = coalesce((SELECT max(n) FROM audit_checkpoints), 0);

CREATE TRIGGER audit_checkpoints_head AFTER INSERT ON audit_checkpoints
BEGIN
    UPDATE audit_head SET checkpoints = max(checkpoints, NEW.n) WHERE id = 1;
END;
