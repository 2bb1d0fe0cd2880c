-- A search index a fifth of the size: each posting is two integers, a key (the
-- organization, what is posted and its text, hashed) and the user's rank in directory
-- order, read index-only from the primary key. Only the name is posted by trigram;
-- usernames and emails by their first three characters and mobiles by their last three
-- digits, since those fields are matched from their start (or end). Ranks and postings
-- are filled in at start (`reindex_users`), as for rows written before search existed.
DROP TABLE user_search_grams;
DROP TABLE user_search_gram_counts;

ALTER TABLE users ADD COLUMN search_rank BIGINT;
CREATE INDEX users_org_rank ON users (org_id, search_rank);
CREATE INDEX users_org_status_rank ON users (org_id, status, search_rank);

CREATE TABLE user_search_postings (
    key   BIGINT NOT NULL,
    rank  BIGINT NOT NULL,
    PRIMARY KEY (key, rank)
);

CREATE TABLE user_search_counts (
    key    BIGINT PRIMARY KEY,
    users  BIGINT NOT NULL
);
