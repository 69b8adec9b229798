-- Issue 12, point 4: lineage. Which runs used model card X version Y (a recall when a model
-- turns out bad): an index on the `deployment` (id@version) that a model call's record keeps
-- in its `meta` (the model plane writes it), over the calls that succeeded. Partial: only
-- model effects pay for it when written; nothing else is written for it, and calls recorded
-- before this migration are indexed too. In the "C" collation: a card's every version is
-- the range ['id@', 'idA').

-- The text at `key` of the JSON object `meta`, or NULL when `meta` is not JSON (Python
-- writes NaN as a token JSON refuses; jsonb refuses \u0000): the index must never fail an
-- effect's write. IMMUTABLE: it reads nothing but its arguments.
CREATE FUNCTION aiosys_meta_text(meta TEXT, key TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN meta::jsonb ->> key;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE INDEX effects_model_deployment
    ON effects ((aiosys_meta_text(meta, 'deployment')) COLLATE "C", started_at)
    WHERE kind = 'model' AND status = 'ok';
