-- A lock set by the claim of the threshold-th secret check in a row while that check is
-- still being verified: it becomes a real lock when the secret proves wrong and ends when a
-- check claimed before it proves right. Attempts arriving meanwhile wait for the decision
-- instead of being refused as if the account were locked.
ALTER TABLE users ADD COLUMN lock_pending BOOLEAN NOT NULL DEFAULT FALSE;
