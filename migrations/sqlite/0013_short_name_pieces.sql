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
