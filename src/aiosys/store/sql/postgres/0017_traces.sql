-- Traces (aiosys.observe). A run's W3C traceparent, when it joined a caller's trace
-- (app.start(traceparent=...), a parent run's child_start span, a current OpenTelemetry
-- span); NULL: the run's trace id is derived from its id. Nothing else is stored for
-- traces: the run's span is its runs row, each effect's span its effects row (meta "span").
ALTER TABLE runs ADD COLUMN traceparent TEXT;
