-- Gatehouse data model (PostgreSQL). Kept in step with migrations/sqlite/0001_initial.sql.
-- Timestamps are timestamptz written by the application (UTC, microseconds).

CREATE TABLE organizations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  TIMESTAMPTZ NOT NULL,
    -- Head of the organization's audit chain: last sequence number and hash.
    audit_seq   BIGINT NOT NULL DEFAULT 0,
    audit_head  BYTEA NOT NULL
);

CREATE TABLE practices (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX practices_org_name_key ON practices (org_id, lower(name));

CREATE TABLE users (
    id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                   BIGINT NOT NULL REFERENCES organizations(id),
    username                 TEXT NOT NULL CHECK (username = lower(username)),
    email                    TEXT NOT NULL,
    first_name               TEXT NOT NULL,
    last_name                TEXT NOT NULL,
    mobile                   TEXT,
    kind                     TEXT NOT NULL CHECK (kind IN ('PROVIDER', 'STAFF')),
    role                     TEXT NOT NULL CHECK (role IN ('OWNER', 'CHAMPION', 'ADMIN', 'MEMBER')),
    status                   TEXT NOT NULL CHECK (status IN ('INVITED', 'ACTIVE', 'INACTIVE')),
    locked_until             TIMESTAMPTZ,
    failed_logins            INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    password_hash            TEXT,
    password_change_required BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_key           BYTEA NOT NULL,
    encryption_key_version   INTEGER NOT NULL DEFAULT 1,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL,
    last_login_at            TIMESTAMPTZ,
    deactivated_at           TIMESTAMPTZ
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_idx ON users (org_id, id);

CREATE TABLE user_products (
    user_id  BIGINT NOT NULL REFERENCES users(id),
    product  TEXT NOT NULL CHECK (product IN ('EHR', 'BILLING', 'PATIENT_PORTAL', 'TELEHEALTH')),
    PRIMARY KEY (user_id, product)
);

CREATE TABLE user_permissions (
    user_id     BIGINT NOT NULL REFERENCES users(id),
    permission  TEXT NOT NULL CHECK (permission IN ('SCHEDULING', 'CLINICAL_NOTES', 'PRESCRIBING', 'BILLING', 'REPORTING')),
    PRIMARY KEY (user_id, permission)
);

CREATE TABLE user_practices (
    user_id      BIGINT NOT NULL REFERENCES users(id),
    practice_id  BIGINT NOT NULL REFERENCES practices(id),
    PRIMARY KEY (user_id, practice_id)
);
CREATE INDEX user_practices_practice_idx ON user_practices (practice_id, user_id);

CREATE TABLE license_pools (
    org_id   BIGINT NOT NULL REFERENCES organizations(id),
    product  TEXT NOT NULL CHECK (product IN ('EHR', 'BILLING', 'PATIENT_PORTAL', 'TELEHEALTH')),
    kind     TEXT NOT NULL CHECK (kind IN ('PROVIDER', 'STAFF')),
    total    INTEGER NOT NULL CHECK (total >= 0),
    used     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, product, kind),
    CONSTRAINT license_pools_used_within_total CHECK (used >= 0 AND used <= total)
);

CREATE TABLE security_answers (
    user_id      BIGINT NOT NULL REFERENCES users(id),
    position     INTEGER NOT NULL,
    question     TEXT NOT NULL,
    answer_hash  TEXT NOT NULL,
    PRIMARY KEY (user_id, position)
);

CREATE TABLE sessions (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               BIGINT NOT NULL REFERENCES users(id),
    token_hash            BYTEA NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    last_seen_at          TIMESTAMPTZ NOT NULL,
    expires_at            TIMESTAMPTZ NOT NULL,
    user_agent            TEXT,
    ip                    TEXT,
    ended_at              TIMESTAMPTZ
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE ended_at IS NULL;

CREATE TABLE setup_tokens (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users(id),
    token_hash      BYTEA NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ('INVITATION', 'RESET')),
    self_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    voided_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX setup_tokens_token_hash_key ON setup_tokens (token_hash);
CREATE INDEX setup_tokens_user_idx ON setup_tokens (user_id, created_at);

CREATE TABLE requests (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           BIGINT NOT NULL REFERENCES organizations(id),
    kind             TEXT NOT NULL CHECK (kind IN ('ADD_LICENSES', 'CHANGE_PERMISSIONS', 'INACTIVATE_USER', 'REACTIVATE_PROVIDER')),
    status           TEXT NOT NULL CHECK (status IN ('SUBMITTED', 'PENDING_APPROVAL', 'APPROVED', 'APPLIED', 'REJECTED', 'CANCELLED', 'EXPIRED', 'FAILED')),
    requested_by     BIGINT NOT NULL REFERENCES users(id),
    subject_id       BIGINT REFERENCES users(id),
    justification    TEXT,
    -- ADD_LICENSES
    product          TEXT,
    user_kind        TEXT,
    quantity         INTEGER CHECK (quantity IS NULL OR quantity BETWEEN 1 AND 500),
    -- CHANGE_PERMISSIONS: JSON arrays of permission names
    grant_permissions   TEXT,
    revoke_permissions  TEXT,
    new_role            TEXT,
    -- REACTIVATE_PROVIDER: JSON array of product names
    products         TEXT,
    terms_accepted BOOLEAN NOT NULL DEFAULT FALSE,
    failure_reason   TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    reminded_at      TIMESTAMPTZ,
    decided_at       TIMESTAMPTZ,
    applied_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX requests_org_idx ON requests (org_id, id);
CREATE INDEX requests_open_idx ON requests (status, created_at) WHERE status IN ('SUBMITTED', 'PENDING_APPROVAL', 'APPROVED');
-- At most one open request of a kind for a subject.
CREATE UNIQUE INDEX requests_open_subject_key ON requests (org_id, kind, subject_id)
    WHERE subject_id IS NOT NULL AND status IN ('SUBMITTED', 'PENDING_APPROVAL', 'APPROVED');

CREATE TABLE request_approvers (
    request_id  BIGINT NOT NULL REFERENCES requests(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    PRIMARY KEY (request_id, user_id)
);
CREATE INDEX request_approvers_user_idx ON request_approvers (user_id, request_id);

CREATE TABLE request_decisions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      BIGINT NOT NULL REFERENCES requests(id),
    approver_id     BIGINT NOT NULL REFERENCES users(id),
    approved        BOOLEAN NOT NULL,
    comment         TEXT,
    terms_accepted BOOLEAN NOT NULL DEFAULT FALSE,
    decided_at      TIMESTAMPTZ NOT NULL
);
-- The first decision wins, exactly once.
CREATE UNIQUE INDEX request_decisions_request_key ON request_decisions (request_id);

CREATE TABLE request_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  BIGINT NOT NULL REFERENCES requests(id),
    at          TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL,
    actor_id    BIGINT REFERENCES users(id),
    note        TEXT
);
CREATE INDEX request_events_request_idx ON request_events (request_id, id);

CREATE TABLE idempotency_keys (
    requester_id  BIGINT NOT NULL REFERENCES users(id),
    key           TEXT NOT NULL,
    request_id    BIGINT NOT NULL REFERENCES requests(id),
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (requester_id, key)
);

CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organizations(id),
    seq         BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    action      TEXT NOT NULL,
    actor_id    BIGINT,
    subject_id  BIGINT,
    request_id  BIGINT,
    ip          TEXT,
    details     TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE UNIQUE INDEX audit_events_org_seq_key ON audit_events (org_id, seq);

-- Work to be handed to the job queue, written in the transaction that causes it.
CREATE TABLE job_outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    available_at  TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    relayed_at    TIMESTAMPTZ
);
CREATE INDEX job_outbox_pending_idx ON job_outbox (available_at, id) WHERE relayed_at IS NULL;

-- Emails sent, by unique key, so that a job that runs twice sends once.
CREATE TABLE email_deliveries (
    email_key   TEXT PRIMARY KEY,
    recipient   TEXT NOT NULL,
    template    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('SENT', 'FAILED')),
    error       TEXT,
    at          TIMESTAMPTZ NOT NULL
);
