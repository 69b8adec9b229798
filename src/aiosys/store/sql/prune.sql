-- Named queries of pruning (Store.prune, store/prune.py): deleting runs that ended long ago
-- with what belongs to them. A dialect's own prune.sql holds the statements that take a
-- list of run ids (:ids), which the dialects pass differently.

-- name: prune_tree
-- One batch of what a prune may delete: up to :limit roots, that is runs of :tenant (NULL:
-- any) that ended before :before, after the cursor (:after_t, :after_id) in (finished_at,
-- id) order, whose parent is gone or never was; and their descendants in the same tenant
-- reached through ended runs only (a live child, and what is below it, stays). root_n
-- numbers the roots in cursor order (NULL for a descendant).
WITH RECURSIVE roots AS (
    SELECT id, tenant, row_number() OVER (ORDER BY finished_at, id) AS n
    FROM (SELECT r.id, r.tenant, r.finished_at FROM runs AS r
          WHERE r.finished_at IS NOT NULL AND r.finished_at < :before
            AND r.status IN ('succeeded', 'failed', 'cancelled', 'dead')
            AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
            AND (r.finished_at, r.id) > (:after_t, :after_id)
            AND (r.parent_id IS NULL
                 OR NOT EXISTS (SELECT 1 FROM runs AS p WHERE p.id = r.parent_id))
          ORDER BY r.finished_at, r.id
          LIMIT :limit) AS oldest
),
tree (id, tenant) AS (
    SELECT id, tenant FROM roots
    UNION
    SELECT c.id, c.tenant FROM runs AS c JOIN tree ON c.parent_id = tree.id
    WHERE c.tenant = tree.tenant AND c.status IN ('succeeded', 'failed', 'cancelled', 'dead')
)
SELECT r.id, r.parent_id, r.status, r.finished_at, roots.n AS root_n
FROM tree JOIN runs AS r ON r.id = tree.id LEFT JOIN roots ON roots.id = tree.id

-- name: prune_roots
-- How many roots a prune of runs ended before :before (in :tenant, NULL: any) has to go
-- through (its progress bar's length).
SELECT count(*) AS n FROM runs AS r
WHERE r.finished_at IS NOT NULL AND r.finished_at < :before
  AND r.status IN ('succeeded', 'failed', 'cancelled', 'dead')
  AND (CAST(:tenant AS TEXT) IS NULL OR r.tenant = :tenant)
  AND (r.parent_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS p WHERE p.id = r.parent_id))

-- name: prune_reservations
-- Drop budget reservations of :tenant (NULL: any) that expired before :before: no budget
-- counts them any more (a reservation names no run; a live one is never touched).
DELETE FROM model_reservations
WHERE expires_at < :before AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)

-- name: prune_count_reservations
-- How many reservations prune_reservations would drop.
SELECT count(*) AS n FROM model_reservations
WHERE expires_at < :before AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant)
