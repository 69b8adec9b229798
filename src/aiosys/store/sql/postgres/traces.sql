-- name: span_record_many
-- A group commit's spans in one statement: `rows`, a JSON array of `span_record`'s
-- parameter objects.
INSERT INTO spans (run_id, span_id, trace_id, parent_id, seq, name, kind, start_ns, end_ns,
                   status, error, attributes, events)
SELECT r.run_id, r.span_id, r.trace_id, r.parent_id, r.seq, r.name, r.kind, r.start_ns,
       r.end_ns, r.status, r.error, r.attributes, r.events
FROM json_to_recordset(CAST(:rows AS json)) AS r(run_id TEXT, span_id TEXT, trace_id TEXT,
     parent_id TEXT, seq INTEGER, name TEXT, kind TEXT, start_ns BIGINT, end_ns BIGINT,
     status TEXT, error TEXT, attributes TEXT, events TEXT)
ON CONFLICT DO NOTHING
