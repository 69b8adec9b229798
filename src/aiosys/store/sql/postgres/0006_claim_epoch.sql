-- Fencing by claim epoch: every claim of a run increments it, and every write for the run
-- (record, park, finish, release) carries the epoch it was claimed under.
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
