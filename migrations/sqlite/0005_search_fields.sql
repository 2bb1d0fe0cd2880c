-- Usernames and emails are matched from their start and mobiles at their end: an
-- organization's users in the order of each, so that a selective one is read directly.
-- The mobile's digits reversed (filled in by the application) turn its end into a start.
ALTER TABLE users ADD COLUMN mobile_reversed TEXT;
CREATE INDEX users_org_username ON users (org_id, username);
CREATE INDEX users_org_email ON users (org_id, lower(email));
CREATE INDEX users_org_mobile ON users (org_id, mobile_reversed);
