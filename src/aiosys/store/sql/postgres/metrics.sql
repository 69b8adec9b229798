-- name: metrics_effects
-- Effects that ended (ok or error), in one pass, by kind, name and status: how many, how many
-- of the errors retry classified transient (the others are permanent), the failed attempts
-- before them (retries), and the histogram of their durations (seconds from start to the
-- recorded outcome: le_<i>, n, total as in ../metrics.sql). Grouped by plain columns only, so
-- an index on (kind, name, status) would spare SQLite its sort.
SELECT kind, name, status,
       sum(CASE WHEN d <= 0.005 THEN 1 ELSE 0 END) AS le_0,
       sum(CASE WHEN d <= 0.01 THEN 1 ELSE 0 END) AS le_1,
       sum(CASE WHEN d <= 0.025 THEN 1 ELSE 0 END) AS le_2,
       sum(CASE WHEN d <= 0.05 THEN 1 ELSE 0 END) AS le_3,
       sum(CASE WHEN d <= 0.1 THEN 1 ELSE 0 END) AS le_4,
       sum(CASE WHEN d <= 0.25 THEN 1 ELSE 0 END) AS le_5,
       sum(CASE WHEN d <= 0.5 THEN 1 ELSE 0 END) AS le_6,
       sum(CASE WHEN d <= 1 THEN 1 ELSE 0 END) AS le_7,
       sum(CASE WHEN d <= 2.5 THEN 1 ELSE 0 END) AS le_8,
       sum(CASE WHEN d <= 5 THEN 1 ELSE 0 END) AS le_9,
       sum(CASE WHEN d <= 10 THEN 1 ELSE 0 END) AS le_10,
       sum(CASE WHEN d <= 30 THEN 1 ELSE 0 END) AS le_11,
       sum(CASE WHEN d <= 60 THEN 1 ELSE 0 END) AS le_12,
       sum(CASE WHEN d <= 300 THEN 1 ELSE 0 END) AS le_13,
       sum(CASE WHEN d <= 1800 THEN 1 ELSE 0 END) AS le_14,
       sum(CASE WHEN d <= 3600 THEN 1 ELSE 0 END) AS le_15,
       sum(CASE WHEN d <= 21600 THEN 1 ELSE 0 END) AS le_16,
       sum(CASE WHEN d <= 86400 THEN 1 ELSE 0 END) AS le_17,
       count(*) AS n, sum(d) AS total, sum(transient) AS transient, sum(retries) AS retries
FROM (SELECT kind, name, status, finished_at - started_at AS d,
             CASE WHEN status = 'error' AND (aiosys_json(error) ->> 'transient') = 'true'
                  THEN 1 ELSE 0 END AS transient,
             CASE WHEN meta IS NOT NULL THEN coalesce(json_array_length(aiosys_json(meta) -> 'retries'), 0)
                  ELSE 0 END AS retries
      FROM effects
      WHERE status IN ('ok', 'error')
        AND (CAST(:tenant AS TEXT) IS NULL
             OR run_id IN (SELECT id FROM runs WHERE tenant = :tenant))) AS t
GROUP BY kind, name, status
