-- Spend per tenant, workflow and UTC day, kept up to date by a trigger on model_usage, so a
-- budget check reads a few buckets instead of summing every usage row of its period (a
-- month of a busy tenant is hundreds of thousands of rows).
-- Each connection (`writer` = its backend pid) updates buckets of its own: transactions of
-- different workers never wait on one bucket row, and never deadlock over two of them.
CREATE TABLE model_spend (
    tenant   TEXT NOT NULL,
    workflow TEXT NOT NULL,             -- '' for calls made outside any workflow
    day      DOUBLE PRECISION NOT NULL, -- start of the UTC day (epoch seconds)
    writer   INTEGER NOT NULL,
    cost     DOUBLE PRECISION NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (tenant, workflow, day, writer)
);

CREATE FUNCTION model_usage_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO model_spend (tenant, workflow, day, writer, cost, calls)
    VALUES (NEW.tenant, COALESCE(NEW.workflow, ''), floor(NEW.at / 86400) * 86400,
            pg_backend_pid(), NEW.cost, 1)
    ON CONFLICT (tenant, workflow, day, writer)
    DO UPDATE SET cost = model_spend.cost + EXCLUDED.cost, calls = model_spend.calls + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER model_usage_spend AFTER INSERT ON model_usage
FOR EACH ROW EXECUTE FUNCTION model_usage_spend();

INSERT INTO model_spend (tenant, workflow, day, writer, cost, calls)
SELECT tenant, COALESCE(workflow, ''), floor(at / 86400) * 86400, 0, SUM(cost), COUNT(*)
FROM model_usage
GROUP BY 1, 2, 3;
