-- Wrong security answers given with a reset link: the link is void at the lockout threshold.
ALTER TABLE setup_tokens ADD COLUMN failed_answers INTEGER NOT NULL DEFAULT 0;

-- Whether the filer was an owner when filing: an owner's filing is their approval, by
-- the role they had then, not the one they have when the request is routed.
ALTER TABLE requests ADD COLUMN filed_by_owner INTEGER NOT NULL DEFAULT 0;

-- An email job claims its delivery before sending, so that two runs of one job at the
-- same moment send it once. A claim older than a few minutes is from a run that died.
CREATE TABLE email_claims (
    email_key   TEXT PRIMARY KEY,
    claimed_at  TEXT NOT NULL
);
