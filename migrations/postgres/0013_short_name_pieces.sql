-- Names are also posted by their short pieces: the first two characters of each word
-- and each ideograph or syllable on its own, so that a query such as "o su" (of
-- "Ó Súilleabháin") or "王" walks postings instead of the whole directory. Users written
-- before this get those postings at start-up, in batches of users by ID: this row says
-- where the next batch starts and is deleted when all are done.
CREATE TABLE search_backfills (
    name      TEXT PRIMARY KEY,
    after_id  BIGINT NOT NULL
);
INSERT INTO search_backfills (name, after_id) VALUES ('short_name_pieces', 0);

-- Searches read the postings index-only, which skips the table only for pages that
-- vacuum has marked all-visible: vacuumed after 2% of its rows changed (instead of 20%),
-- a re-ranked neighbourhood or a day of renames does not leave the walks reading the
-- table for weeks.
ALTER TABLE user_search_postings SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02
);
