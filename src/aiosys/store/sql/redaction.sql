-- Named queries of redaction (aiosys.governance.redaction_gate): a run's pseudonyms.

-- name: pseudonym_put
-- Keep what a pseudonym of a run stands for (a side write of the model effect that used it,
-- committed with its record), only while the run is still held under :epoch (a write of an
-- execution that lost its claim is dropped, as its record is); one already kept stays.
INSERT INTO pseudonyms (run_id, token, tenant, entity, value, created_at)
SELECT :run_id, :token, :tenant, :entity, :value, :now
WHERE EXISTS (SELECT 1 FROM runs WHERE id = :run_id AND epoch = :epoch)
ON CONFLICT (run_id, token) DO NOTHING

-- name: pseudonyms_of_run
-- The pseudonyms of one run of :tenant, in the order they were kept.
SELECT token, entity, value FROM pseudonyms
WHERE run_id = :run_id AND tenant = :tenant
ORDER BY created_at, token
