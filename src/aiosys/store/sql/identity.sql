-- Identity and tenants (aiosys.governance.identity_keys): tenants, principals, their roles
-- per tenant, and API keys kept only as a keyed hash.

-- name: upsert_tenant
-- Record a tenant (nothing if it exists).
INSERT INTO tenants (id, created_at) VALUES (:id, :now)
ON CONFLICT DO NOTHING

-- name: upsert_principal
-- Record a principal of a tenant (nothing if it exists: its kind stays).
INSERT INTO principals (tenant, id, kind, created_at) VALUES (:tenant, :id, :kind, :now)
ON CONFLICT DO NOTHING

-- name: get_principal
-- One principal of a tenant.
SELECT tenant, id, kind, created_at FROM principals WHERE tenant = :tenant AND id = :id

-- name: add_role
-- Grant a role to a principal in its tenant (nothing if it holds it).
INSERT INTO principal_roles (tenant, principal, role) VALUES (:tenant, :principal, :role)
ON CONFLICT DO NOTHING

-- name: roles_of_principal
-- A principal's roles in its tenant.
SELECT role FROM principal_roles WHERE tenant = :tenant AND principal = :principal
ORDER BY role

-- name: insert_api_key
-- A new API key: its public id and the keyed hash of the whole key, never the key.
INSERT INTO api_keys (id, tenant, principal, hash, created_at, expires_at)
VALUES (:id, :tenant, :principal, :hash, :now, :expires_at)

-- name: get_api_key
-- One API key with its principal's kind.
SELECT k.id, k.tenant, k.principal, k.hash, k.created_at, k.expires_at, k.revoked_at, p.kind
FROM api_keys k JOIN principals p ON p.tenant = k.tenant AND p.id = k.principal
WHERE k.id = :id

-- name: list_api_keys
-- API keys (of a tenant, or all), oldest first, without their hash.
SELECT k.id, k.tenant, k.principal, p.kind, k.created_at, k.expires_at, k.revoked_at
FROM api_keys k JOIN principals p ON p.tenant = k.tenant AND p.id = k.principal
WHERE CAST(:tenant AS TEXT) IS NULL OR k.tenant = :tenant
ORDER BY k.created_at, k.id

-- name: revoke_api_key
-- Revoke a key (once: a revoked key keeps its first revocation time).
UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL

-- name: count_api_keys
-- How many API keys exist (none: the app runs without identity).
SELECT COUNT(*) AS n FROM api_keys
