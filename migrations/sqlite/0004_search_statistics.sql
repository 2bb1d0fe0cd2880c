-- What a search needs to plan and to count cheaply:
-- * how many users of an organization carry each trigram, so that a search walks the
--   rarest trigram's postings and checks the others against it;
-- * a version of each organization's directory, moved on by every change a filter can
--   see, so that a total counted once is reused until the directory changes;
-- * the users whose lock may be current, found without walking the directory.
CREATE TABLE user_search_gram_counts (
    org_id  INTEGER NOT NULL,
    gram    TEXT NOT NULL,
    users   INTEGER NOT NULL,
    PRIMARY KEY (org_id, gram)
) WITHOUT ROWID;

INSERT INTO user_search_gram_counts (org_id, gram, users)
SELECT org_id, gram, COUNT(*) FROM user_search_grams GROUP BY org_id, gram;

CREATE TABLE directory_versions (
    org_id   INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL
);

CREATE TRIGGER users_directory_insert AFTER INSERT ON users BEGIN
    INSERT INTO directory_versions (org_id, version) VALUES (NEW.org_id, 1)
    ON CONFLICT (org_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER users_directory_update
AFTER UPDATE OF username, email, first_name, last_name, mobile, kind, status, sort_key ON users BEGIN
    INSERT INTO directory_versions (org_id, version) VALUES (NEW.org_id, 1)
    ON CONFLICT (org_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER user_practices_directory_insert AFTER INSERT ON user_practices BEGIN
    INSERT INTO directory_versions (org_id, version)
    SELECT org_id, 1 FROM users WHERE id = NEW.user_id
    ON CONFLICT (org_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER user_practices_directory_delete AFTER DELETE ON user_practices BEGIN
    INSERT INTO directory_versions (org_id, version)
    SELECT org_id, 1 FROM users WHERE id = OLD.user_id
    ON CONFLICT (org_id) DO UPDATE SET version = version + 1;
END;

CREATE INDEX users_org_locked ON users (org_id, locked_until) WHERE locked_until IS NOT NULL;
