-- The head row counts the checkpoints written (`checkpoints`: the number of the last one),
-- moved by the insert of a checkpoint, in its transaction: a verify that finds fewer
-- checkpoints than the head counts names the missing ones (the last one, or all of them,
-- deleted), which the chain of checkpoints alone cannot show (each checkpoint signs the
-- one before it, not the one after). aiosys.governance.audit_verify says what this does
-- not cover. The trigger takes the head's row lock after the checkpoint's row: a
-- checkpoint (every 1,000 records or 60 s) waits for the append in flight, as an append
-- would; no writer takes the two the other way round.
ALTER TABLE audit_head ADD COLUMN checkpoints INTEGER NOT NULL DEFAULT 0;
UPDATE audit_head SET checkpoints = coalesce((SELECT max(n) FROM audit_checkpoints), 0);

CREATE FUNCTION aiosys_audit_checkpoint_counted() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET checkpoints = greatest(checkpoints, NEW.n) WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_checkpoints_head AFTER INSERT ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION aiosys_audit_checkpoint_counted();
