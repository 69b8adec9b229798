-- Redaction (aiosys.governance.redaction): what each pseudonym of a run stands for, so that
-- the answers of its model calls can be restored, on replay too, for the callers allowed to
-- read them. Raw values are kept here only, scoped to the run and its tenant: effects, audit
-- records, spans and usage rows hold pseudonyms and counts. A prune of the run deletes them.
CREATE TABLE pseudonyms (
    run_id     TEXT NOT NULL,
    token      TEXT NOT NULL,     -- <PERSON_1>
    tenant     TEXT NOT NULL,
    entity     TEXT NOT NULL,     -- PERSON, EMAIL_ADDRESS, ...
    value      TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, token)
);
