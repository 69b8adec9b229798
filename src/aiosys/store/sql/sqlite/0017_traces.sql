-- Traces (aiosys.observe.tracing). A run's W3C traceparent, when it joined a caller's trace
-- (app.start(traceparent=...), a parent run's child_start span, a current OpenTelemetry
-- span); NULL: the run's trace and span ids are derived from its id.
ALTER TABLE runs ADD COLUMN traceparent TEXT;

-- The spans of a run's effects (and a model call's attempts), written in the same
-- transaction as the effect's record (EffectCall.also_write). The run's own span is not
-- stored: it is the runs row (created_at, finished_at, status, error).
CREATE TABLE spans (
    run_id      TEXT NOT NULL,
    span_id     TEXT NOT NULL,                  -- 16 hex digits
    trace_id    TEXT NOT NULL,                  -- 32 hex digits
    parent_id   TEXT,                           -- the parent span's id
    seq         INTEGER NOT NULL,               -- the effect's number
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,                  -- the effect's kind (step, model, sleep, ...)
    start_ns    INTEGER NOT NULL,               -- Unix time, nanoseconds
    end_ns      INTEGER NOT NULL,
    status      TEXT NOT NULL,                  -- ok, error
    error       TEXT,                           -- "Type: message" when status is error
    attributes  TEXT NOT NULL,                  -- JSON object
    events      TEXT,                           -- JSON array of {name, time_ns, attributes}
    PRIMARY KEY (run_id, span_id)
);

-- A pruned run's spans go with it (Store.prune deletes runs).
CREATE TRIGGER runs_pruned_spans AFTER DELETE ON runs
BEGIN
    DELETE FROM spans WHERE run_id = OLD.id;
END;
