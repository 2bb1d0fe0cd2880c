-- A search index a fifth of the size: each posting is two integers, a key (the
-- organization, what is posted and its text, hashed) and the user's rank in directory
-- order, in a table that is its own index. Only the name is posted by trigram; usernames
-- and emails by their first three characters and mobiles by their last three digits,
-- since those fields are matched from their start (or end). Ranks and postings are
-- filled in at start (`reindex_users`), as for rows written before search existed.
DROP TABLE user_search_grams;
DROP TABLE user_search_gram_counts;

ALTER TABLE users ADD COLUMN search_rank INTEGER;
CREATE INDEX users_org_rank ON users (org_id, search_rank);
CREATE INDEX users_org_status_rank ON users (org_id, status, search_rank);

CREATE TABLE user_search_postings (
    key   INTEGER NOT NULL,
    rank  INTEGER NOT NULL,
    PRIMARY KEY (key, rank)
) WITHOUT ROWID;

CREATE TABLE user_search_counts (
    key    INTEGER PRIMARY KEY,
    users  INTEGER NOT NULL
);
