-- Named queries of the model data plane (aiosys.models): catalog, cache, usage, rate limits.
-- Same conventions as queries.sql; a dialect's own file may override a block.

-- name: upsert_model_card
-- Insert or replace a model card.
INSERT INTO model_cards (id, version, card, source, updated_at)
VALUES (:id, :version, :card, :source, :now)
ON CONFLICT (id) DO UPDATE
SET version = excluded.version, card = excluded.card, source = excluded.source,
    updated_at = excluded.updated_at

-- name: get_model_card
-- One model card by id.
SELECT * FROM model_cards WHERE id = :id

-- name: delete_model_card
-- Remove a model card by id.
DELETE FROM model_cards WHERE id = :id

-- name: list_model_cards
-- Every model card, by id.
SELECT * FROM model_cards ORDER BY id

-- name: cache_get
-- A live cache entry by key.
SELECT response FROM model_cache
WHERE key = :key AND (expires_at IS NULL OR expires_at > :now)

-- name: cache_put
-- Store (or refresh) a cache entry, noting the run that wrote it (:run_id, NULL outside a
-- run): a prune of that run deletes it.
INSERT INTO model_cache (key, scope, response, embedding, created_at, expires_at, run_id)
VALUES (:key, :scope, :response, :embedding, :now, :expires_at, :run_id)
ON CONFLICT (key) DO UPDATE
SET response = excluded.response, embedding = excluded.embedding,
    created_at = excluded.created_at, expires_at = excluded.expires_at,
    run_id = excluded.run_id

-- name: cache_semantic_candidates
-- Live semantic entries of a scope, newest first (compared by embedding in Python).
SELECT key, response, embedding, created_at FROM model_cache
WHERE scope = :scope AND embedding IS NOT NULL AND (expires_at IS NULL OR expires_at > :now)
ORDER BY created_at DESC
LIMIT :limit

-- name: cache_delete
-- Drop one cache entry (an answer its caller rejected).
DELETE FROM model_cache WHERE key = :key

-- name: cache_purge_expired
-- Drop expired cache entries.
DELETE FROM model_cache WHERE expires_at IS NOT NULL AND expires_at <= :now

-- name: insert_usage
-- Meter one model call.
-- A row naming a budget reservation settles it: a trigger deletes the reservation.
INSERT INTO model_usage (at, tenant, workflow, run_id, seq, task, model, deployment,
                         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                         reasoning_tokens, cost, latency_ms, status, error, reservation)
VALUES (:at, :tenant, :workflow, :run_id, :seq, :task, :model, :deployment,
        :input_tokens, :output_tokens, :cache_read_tokens, :cache_write_tokens,
        :reasoning_tokens, :cost, :latency_ms, :status, :error, :reservation)

-- name: spent_by_tenant
-- Cost spent by a tenant since a time: the daily buckets from :full_from (the first UTC day
-- boundary at or after :since), plus the usage rows of the part day before it.
SELECT (SELECT COALESCE(SUM(cost), 0) FROM model_spend
        WHERE tenant = :tenant AND day >= :full_from)
     + (SELECT COALESCE(SUM(cost), 0) FROM model_usage
        WHERE tenant = :tenant AND at >= :since AND at < :full_from) AS cost

-- name: spent_by_workflow
-- Cost spent by a workflow (in a tenant) since a time, as spent_by_tenant.
SELECT (SELECT COALESCE(SUM(cost), 0) FROM model_spend
        WHERE tenant = :tenant AND workflow = :workflow AND day >= :full_from)
     + (SELECT COALESCE(SUM(cost), 0) FROM model_usage
        WHERE tenant = :tenant AND workflow = :workflow AND at >= :since
          AND at < :full_from) AS cost

-- name: usage_by_run
-- Tokens and cost of one run's model calls.
SELECT COALESCE(SUM(input_tokens), 0) AS input_tokens,
       COALESCE(SUM(output_tokens), 0) AS output_tokens,
       COALESCE(SUM(cost), 0) AS cost, COUNT(*) AS calls
FROM model_usage WHERE run_id = :run_id

-- name: rate_take
-- Count a request (and its tokens) in the current window of a limit; returns the totals.
INSERT INTO rate_windows (key, window_start, requests, tokens)
VALUES (:key, :window_start, 1, :tokens)
ON CONFLICT (key, window_start) DO UPDATE
SET requests = rate_windows.requests + 1, tokens = rate_windows.tokens + excluded.tokens
RETURNING requests, tokens

-- name: rate_purge
-- Drop windows that ended.
DELETE FROM rate_windows WHERE window_start < :before

-- name: usage_by_model
-- Calls, outcomes, tokens, cost and mean provider latency per model of a tenant since a time.
SELECT model,
       COUNT(*) AS calls,
       SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok,
       SUM(CASE WHEN status = 'cached' THEN 1 ELSE 0 END) AS cached,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(CASE WHEN status = 'denied' THEN 1 ELSE 0 END) AS denied,
       SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
       SUM(cost) AS cost,
       AVG(CASE WHEN status = 'ok' THEN latency_ms END) AS mean_latency_ms
FROM model_usage WHERE tenant = :tenant AND at >= :since
GROUP BY model ORDER BY model

-- name: usage_by_workflow
-- The same sums per workflow of a tenant since a time.
SELECT workflow,
       COUNT(*) AS calls,
       SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok,
       SUM(CASE WHEN status = 'cached' THEN 1 ELSE 0 END) AS cached,
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,
       SUM(CASE WHEN status = 'denied' THEN 1 ELSE 0 END) AS denied,
       SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
       SUM(cost) AS cost,
       AVG(CASE WHEN status = 'ok' THEN latency_ms END) AS mean_latency_ms
FROM model_usage WHERE tenant = :tenant AND at >= :since
GROUP BY workflow ORDER BY workflow IS NULL, workflow  -- calls outside workflows last, on both

-- name: rate_give_back
-- Uncount a request the limit turned away (it was never sent).
UPDATE rate_windows SET requests = requests - 1, tokens = tokens - :tokens
WHERE key = :key AND window_start = :window_start

-- name: rate_adjust
-- Correct a window's token count by the difference between the estimate and the usage.
UPDATE rate_windows SET tokens = tokens + :delta
WHERE key = :key AND window_start = :window_start

-- name: usage_rows_of_run
-- Every metered call of one run, in the order they ended (rows arrive in batches, and
-- batches of several processes interleave, so the id alone is not that order).
SELECT * FROM model_usage WHERE run_id = :run_id ORDER BY at, id

-- name: insert_shadow
-- Keep what a shadow model answered beside the caller's model.
INSERT INTO model_shadows (at, tenant, task, run_id, seq, primary_model, shadow_model,
                           primary_output, output, error, same, latency_ms, cost)
VALUES (:at, :tenant, :task, :run_id, :seq, :primary_model, :shadow_model,
        :primary_output, :output, :error, :same, :latency_ms, :cost)

-- name: list_shadows
-- A tenant's shadow outcomes, newest first, of one task or (task NULL) of all.
SELECT * FROM model_shadows
WHERE tenant = :tenant AND (CAST(:task AS TEXT) IS NULL OR task = :task)
ORDER BY at DESC, id DESC
LIMIT :limit

-- name: reserve_budget
-- Reserve a call's worst-case cost if it fits every budget of :budgets (a JSON array of
-- {"workflow", "since", "full_from", "room"}): spend + live reservations + :amount <= room.
-- One row (the reservation) if it fits, none if not. SQLite runs it in one write
-- transaction, so concurrent reservations queue on the file's lock.
INSERT INTO model_reservations (id, tenant, workflow, amount, at, expires_at)
SELECT :id, :tenant, :workflow, :amount, :at, :expires_at
WHERE NOT EXISTS (
    SELECT 1 FROM json_each(:budgets) AS b
    WHERE (SELECT COALESCE(SUM(cost), 0) FROM model_spend
           WHERE tenant = :tenant
             AND (json_extract(b.value, '$.workflow') IS NULL
                  OR workflow = json_extract(b.value, '$.workflow'))
             AND day >= json_extract(b.value, '$.full_from'))
        + (SELECT COALESCE(SUM(cost), 0) FROM model_usage
           WHERE tenant = :tenant
             AND (json_extract(b.value, '$.workflow') IS NULL
                  OR workflow = json_extract(b.value, '$.workflow'))
             AND at >= json_extract(b.value, '$.since')
             AND at < json_extract(b.value, '$.full_from'))
        + (SELECT COALESCE(SUM(amount), 0) FROM model_reservations
           WHERE tenant = :tenant
             AND (json_extract(b.value, '$.workflow') IS NULL
                  OR workflow = json_extract(b.value, '$.workflow'))
             AND expires_at > :at)
        + :amount > json_extract(b.value, '$.room')
)
RETURNING id

-- name: reserved_by_tenant
-- What a tenant's live reservations hold (calls in flight in any process).
SELECT COALESCE(SUM(amount), 0) AS amount FROM model_reservations
WHERE tenant = :tenant AND expires_at > :now

-- name: reserved_by_workflow
-- What the live reservations of a workflow (in a tenant) hold.
SELECT COALESCE(SUM(amount), 0) AS amount FROM model_reservations
WHERE tenant = :tenant AND workflow = :workflow AND expires_at > :now

-- name: release_reservation
-- Drop a reservation whose call was never metered (the caller went away).
DELETE FROM model_reservations WHERE id = :id

-- name: purge_reservations
-- Drop reservations that expired (their process died before the call was metered).
DELETE FROM model_reservations WHERE expires_at <= :now
