-- Children started detached (ctx.start_child(..., detached=True)) are left alone when their
-- parent is cancelled or times out; every other child is cancelled with it. 0 or 1.
ALTER TABLE runs ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;
