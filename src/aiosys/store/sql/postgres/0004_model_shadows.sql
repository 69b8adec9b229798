-- What shadow models answered beside the model that served the caller (router.py, shadow
-- mode): kept for comparison, never part of a run.
CREATE TABLE model_shadows (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             DOUBLE PRECISION NOT NULL,
    tenant         TEXT NOT NULL,
    task           TEXT,
    run_id         TEXT,
    seq            INTEGER,
    primary_model  TEXT NOT NULL,    -- deployment (id@version) that answered the caller
    shadow_model   TEXT NOT NULL,    -- deployment that got the copy
    primary_output TEXT,             -- JSON
    output         TEXT,             -- JSON: the shadow's output, parsed as the task parses
    error          TEXT,
    same           INTEGER NOT NULL, -- 1: the shadow gave what the caller got
    latency_ms     DOUBLE PRECISION,
    cost           DOUBLE PRECISION
);
CREATE INDEX model_shadows_task ON model_shadows (tenant, task, at);
