-- Usernames and emails are matched from their start and mobiles at their end: an
-- organization's users in the order of each, so that a selective one is read directly.
-- Byte-wise order (COLLATE "C"), as on SQLite, so that a prefix is a range.
ALTER TABLE users ADD COLUMN mobile_reversed TEXT COLLATE "C";
UPDATE users SET mobile_reversed = reverse(mobile_digits) WHERE mobile_digits IS NOT NULL;
CREATE INDEX users_org_username ON users (org_id, (username COLLATE "C"));
CREATE INDEX users_org_email ON users (org_id, (lower(email) COLLATE "C"));
CREATE INDEX users_org_mobile ON users (org_id, mobile_reversed);
