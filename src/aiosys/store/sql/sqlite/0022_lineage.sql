-- Issue 12, point 4: lineage. Which runs used model card X version Y (a recall when a model
-- turns out bad): an index on the `deployment` (id@version) that a model call's record keeps
-- in its `meta` (the model plane writes it), over the calls that succeeded. Partial: only
-- model effects pay for it when written; nothing else is written for it, and calls recorded
-- before this migration are indexed too. `json_valid` first, so that a meta that is not
-- JSON is indexed as NULL instead of failing the effect's write. `started_at` second: a
-- recall since a time reads only the calls from then on.
CREATE INDEX effects_model_deployment ON effects (
    (CASE WHEN json_valid(meta) THEN json_extract(meta, '$.deployment') END), started_at
) WHERE kind = 'model' AND status = 'ok';
