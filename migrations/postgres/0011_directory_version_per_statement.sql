-- An organization's directory version moves once per statement that adds users or
-- changes their practices, not once per row: a batch of 200 users was 200 updates of one
-- row, and inside one transaction each update leaves a version of that row behind for
-- the next to walk past (an import of 100,000 users into one organization spent most of
-- its time there). Updates of users stay row by row: they name the columns a filter sees.
DROP TRIGGER users_directory_insert ON users;
DROP TRIGGER user_practices_directory_change ON user_practices;

CREATE FUNCTION directory_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        INSERT INTO directory_versions (org_id, version)
        SELECT DISTINCT org_id, 1 FROM changed_rows ORDER BY org_id
        ON CONFLICT (org_id) DO UPDATE SET version = directory_versions.version + 1;
    ELSE
        -- Each user looked up by key: joined, a users table whose statistics still say
        -- "empty" (it fills in the same transaction) was read whole.
        INSERT INTO directory_versions (org_id, version)
        SELECT DISTINCT changed.org_id, 1 FROM (
            SELECT (SELECT u.org_id FROM users u WHERE u.id = c.user_id) AS org_id FROM changed_rows c
        ) changed
        WHERE changed.org_id IS NOT NULL
        ORDER BY changed.org_id
        ON CONFLICT (org_id) DO UPDATE SET version = directory_versions.version + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_directory_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION directory_rows_changed();
CREATE TRIGGER user_practices_directory_insert AFTER INSERT ON user_practices
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION directory_rows_changed();
CREATE TRIGGER user_practices_directory_delete AFTER DELETE ON user_practices
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION directory_rows_changed();
