-- The spans of runs' effects (aiosys.observe.tracing); `span_record_many` is PostgreSQL's.

-- name: span_record
-- One effect's span, a side write of its record (a second write of it changes nothing).
INSERT INTO spans (run_id, span_id, trace_id, parent_id, seq, name, kind, start_ns, end_ns,
                   status, error, attributes, events)
VALUES (:run_id, :span_id, :trace_id, :parent_id, :seq, :name, :kind, :start_ns, :end_ns,
        :status, :error, :attributes, :events)
ON CONFLICT DO NOTHING

-- name: spans_of_run
-- A run's stored spans, in the order they started.
SELECT run_id, span_id, trace_id, parent_id, seq, name, kind, start_ns, end_ns, status, error,
       attributes, events
FROM spans WHERE run_id = :run_id ORDER BY start_ns, seq, span_id
