-- Issue 10, identity and tenants (aiosys.governance.identity).
-- Who started each run: a JSON snapshot of the principal (id, tenant, kind, roles); NULL for
-- the embedded default's local principal. Child runs inherit their parent's.
ALTER TABLE runs ADD COLUMN principal TEXT;

-- Tenants: every run, usage row and key belongs to one.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL
);

-- Principals (users, services, agents) of a tenant.
CREATE TABLE principals (
    tenant     TEXT NOT NULL REFERENCES tenants (id),
    id         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- A principal's roles in its tenant (admin, operator, runner, viewer).
CREATE TABLE principal_roles (
    tenant    TEXT NOT NULL,
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    PRIMARY KEY (tenant, principal, role),
    FOREIGN KEY (tenant, principal) REFERENCES principals (tenant, id)
);

-- API keys: only the keyed hash (HMAC-SHA256 under the server's key secret) of the whole key
-- is kept; id is the key's public part, shown in listings and used to revoke it.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    FOREIGN KEY (tenant, principal) REFERENCES principals (tenant, id)
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
