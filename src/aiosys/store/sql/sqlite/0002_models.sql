-- aiosys schema v2 (SQLite): the model data plane.

-- What interceptors attach to an effect: model, deployment, usage, cost, cache hit.
ALTER TABLE effects ADD COLUMN meta TEXT;

-- Model cards, loaded from files under models/ or registered in code.
CREATE TABLE model_cards (
    id         TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    card       TEXT NOT NULL,                   -- the whole card as JSON
    source     TEXT,                            -- the file it came from
    updated_at REAL NOT NULL
);

-- Cached model responses, shared by every worker of the store. An exact entry is keyed by
-- model version and normalized request; a semantic entry also holds the request's embedding.
CREATE TABLE model_cache (
    key        TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,                   -- model@version (and task) the entry answers
    response   TEXT NOT NULL,
    embedding  TEXT,                            -- JSON vector, semantic entries only
    created_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX model_cache_scope ON model_cache (scope);

-- One row per model call (cache hits included): tokens, cost and latency, for budgets and stats.
CREATE TABLE model_usage (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            REAL NOT NULL,
    tenant        TEXT NOT NULL,
    workflow      TEXT,
    run_id        TEXT,
    seq           INTEGER,
    task          TEXT,
    model         TEXT NOT NULL,
    deployment    TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost          REAL NOT NULL DEFAULT 0,
    latency_ms    REAL,
    status        TEXT NOT NULL,                -- ok, error, cached
    error         TEXT
);
CREATE INDEX model_usage_tenant ON model_usage (tenant, at);
CREATE INDEX model_usage_workflow ON model_usage (workflow, at);
CREATE INDEX model_usage_run ON model_usage (run_id);

-- Fixed-window counters for rate limits shared by every worker (requests and tokens).
CREATE TABLE rate_windows (
    key      TEXT NOT NULL,                     -- e.g. provider:openai-main
    window_start REAL NOT NULL,                     -- start of the window
    requests INTEGER NOT NULL DEFAULT 0,
    tokens   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);
