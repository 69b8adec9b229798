-- name: metrics_effects
-- Effects that ended, by kind, name, status (ok, error) and, for errors, how retry classified
-- them (transient: 1, permanent: 0); with the failed attempts before them (retries).
SELECT kind, name, status,
       CASE WHEN status = 'error' THEN json_extract(error, '$.transient') END AS transient,
       count(*) AS n,
       sum(CASE WHEN meta IS NOT NULL
                THEN coalesce(json_array_length(meta, '$.retries'), 0) ELSE 0 END) AS retries
FROM effects
WHERE status IN ('ok', 'error')
  AND (CAST(:tenant AS TEXT) IS NULL OR run_id IN (SELECT id FROM runs WHERE tenant = :tenant))
GROUP BY kind, name, status, transient
