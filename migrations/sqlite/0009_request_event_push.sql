-- On SQLite the change feed is pushed in process: the store hands each status change
-- it committed to the feed (see src/store/sqlite.rs). Nothing to store; this version
-- keeps the two databases' migrations in step.
SELECT 1;
