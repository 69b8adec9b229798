-- name: audit_append
-- Append one record to the chain (the function is in 0012_audit.sql): the head row's lock,
-- held to COMMIT, makes concurrent transactions of any worker append one after the other.
SELECT aiosys_audit_append(CAST(:digest AS text), CAST(:tenant AS text), CAST(:at AS bigint),
                           CAST(:body AS text))
