-- Finding users at scale: matching keys on each user, and a trigram posting table keyed
-- by organization, trigram and the directory's sort key, so that a search walks one
-- organization's postings in display order and stops after a page. Keys compare
-- byte-wise (COLLATE "C"), as on SQLite.
ALTER TABLE users ADD COLUMN sort_key TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN name_key TEXT;
ALTER TABLE users ADD COLUMN mobile_digits TEXT;
CREATE UNIQUE INDEX users_org_sort_key ON users (org_id, sort_key);

CREATE TABLE user_search_grams (
    org_id    BIGINT NOT NULL,
    gram      TEXT COLLATE "C" NOT NULL,
    sort_key  TEXT COLLATE "C" NOT NULL,
    user_id   BIGINT NOT NULL,
    PRIMARY KEY (org_id, gram, sort_key, user_id)
);
