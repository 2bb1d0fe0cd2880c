-- PostgreSQL moves an organization's directory version once per statement from here on
-- (its row-by-row updates of one row left row versions behind inside a transaction).
-- SQLite has only row triggers and updates that row in place: nothing to change.
SELECT 1;
