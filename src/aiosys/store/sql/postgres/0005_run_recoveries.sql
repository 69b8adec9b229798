-- Recoveries: claims of a run whose previous claim neither ended nor parked it (its lease
-- expired under a worker that died or hung). A run recovered more often than its
-- workflow's max_recoveries ends dead instead of being executed again (poison pills).
ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
