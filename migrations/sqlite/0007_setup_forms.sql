-- An opened setup link's short-lived form state. The browser keeps only a random handle
-- (stored here as its SHA-256), so the emailed token leaves the URL on the first request
-- and never sits in a cookie, history, a log or a Referer.
CREATE TABLE setup_forms (
    form_hash   BLOB PRIMARY KEY,
    token_id    INTEGER NOT NULL REFERENCES setup_tokens(id),
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX setup_forms_token_idx ON setup_forms (token_id);
CREATE INDEX setup_forms_expires_idx ON setup_forms (expires_at);
