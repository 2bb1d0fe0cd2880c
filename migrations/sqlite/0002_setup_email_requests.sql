-- Account-setup emails asked for by users themselves, to allow at most a few an hour.
CREATE TABLE setup_email_requests (
    user_id       INTEGER NOT NULL REFERENCES users(id),
    requested_at  TEXT NOT NULL
);
CREATE INDEX setup_email_requests_user_idx ON setup_email_requests (user_id, requested_at);
