-- JSON text as PostgreSQL's json, for the queries that read a field of a stored record (an
-- effect's error or meta, a task's decision). Text holding a NUL character is stored with
-- the JSON escape \u0000 (store/_text.py), which PostgreSQL's JSON parser refuses to turn
-- into text ("unsupported Unicode escape sequence"): one such record failed every stats and
-- metrics query that read it. Here each escaped NUL (a backslash-u0000 that is not itself
-- an escaped backslash followed by "u0000") reads as U+FFFD, the replacement character;
-- text without one is cast as it is (strpos first: the common case costs one scan).
-- IMMUTABLE, SQL: the planner inlines it.
CREATE FUNCTION aiosys_json(doc TEXT) RETURNS JSON
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN strpos(doc, '\u0000') = 0 THEN doc
                 ELSE regexp_replace(doc, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g')
            END)::json
$$;

-- The deployment lineage reads from a model call's record (0022) likewise: a record holding
-- an escaped NUL (a failed attempt's error, before the deployment that served) read as
-- NULL, so the call was missing from its model's recall list and from the index, which
-- is built again with the function.
CREATE OR REPLACE FUNCTION aiosys_meta_text(meta TEXT, key TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN aiosys_json(meta) ->> key;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

REINDEX INDEX effects_model_deployment;
