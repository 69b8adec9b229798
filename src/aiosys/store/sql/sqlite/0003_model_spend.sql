-- Spend per tenant, workflow and UTC day, kept up to date by a trigger on model_usage, so a
-- budget check reads a few buckets instead of summing every usage row of its period (a
-- month of a busy tenant is hundreds of thousands of rows: ~30 ms a check, measured).
-- `writer` separates the buckets of concurrent writers; SQLite has one writer at a time.
CREATE TABLE model_spend (
    tenant   TEXT NOT NULL,
    workflow TEXT NOT NULL,             -- '' for calls made outside any workflow
    day      REAL NOT NULL,             -- start of the UTC day (epoch seconds)
    writer   INTEGER NOT NULL,
    cost     REAL NOT NULL,
    calls    INTEGER NOT NULL,
    PRIMARY KEY (tenant, workflow, day, writer)
);

CREATE TRIGGER model_usage_spend AFTER INSERT ON model_usage
BEGIN
    INSERT INTO model_spend (tenant, workflow, day, writer, cost, calls)
    VALUES (NEW.tenant, COALESCE(NEW.workflow, ''),
            CAST(NEW.at / 86400 AS INTEGER) * 86400.0, 0, NEW.cost, 1)
    ON CONFLICT (tenant, workflow, day, writer)
    DO UPDATE SET cost = cost + excluded.cost, calls = calls + 1;
END;

INSERT INTO model_spend (tenant, workflow, day, writer, cost, calls)
SELECT tenant, COALESCE(workflow, ''), CAST(at / 86400 AS INTEGER) * 86400.0, 0,
       SUM(cost), COUNT(*)
FROM model_usage
GROUP BY 1, 2, 3;
