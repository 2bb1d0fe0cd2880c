-- What a search needs to plan and to count cheaply:
-- * how many users of an organization carry each trigram, so that a search walks the
--   rarest trigram's postings and checks the others against it;
-- * a version of each organization's directory, moved on by every change a filter can
--   see, so that a total counted once is reused until the directory changes;
-- * the users whose lock may be current, found without walking the directory.
CREATE TABLE user_search_gram_counts (
    org_id  BIGINT NOT NULL,
    gram    TEXT COLLATE "C" NOT NULL,
    users   BIGINT NOT NULL,
    PRIMARY KEY (org_id, gram)
);

INSERT INTO user_search_gram_counts (org_id, gram, users)
SELECT org_id, gram, COUNT(*) FROM user_search_grams GROUP BY org_id, gram;

CREATE TABLE directory_versions (
    org_id   BIGINT PRIMARY KEY,
    version  BIGINT NOT NULL
);

CREATE FUNCTION directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed_org BIGINT;
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        changed_org := NEW.org_id;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT org_id INTO changed_org FROM users WHERE id = OLD.user_id;
    ELSE
        SELECT org_id INTO changed_org FROM users WHERE id = NEW.user_id;
    END IF;
    INSERT INTO directory_versions (org_id, version) VALUES (changed_org, 1)
    ON CONFLICT (org_id) DO UPDATE SET version = directory_versions.version + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_directory_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION directory_changed();
CREATE TRIGGER users_directory_update
    AFTER UPDATE OF username, email, first_name, last_name, mobile, kind, status, sort_key ON users
    FOR EACH ROW EXECUTE FUNCTION directory_changed();
CREATE TRIGGER user_practices_directory_change AFTER INSERT OR DELETE ON user_practices
    FOR EACH ROW EXECUTE FUNCTION directory_changed();

CREATE INDEX users_org_locked ON users (org_id, locked_until) WHERE locked_until IS NOT NULL;
