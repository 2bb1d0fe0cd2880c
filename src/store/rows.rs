//! Row types shared by both backends, and their conversion into domain records.

use super::{OutboxJob, StoreError};
use crate::domain::audit::AuditRecord;
use crate::domain::{
    LicensePool, OrgId, Organization, Practice, PracticeId, Timestamp, User, UserId,
};
use std::str::FromStr;

fn parse<T: FromStr>(value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// The columns of a `UserRow`, for `concat!` into queries over `users u`.
macro_rules! user_columns {
    () => {
        "u.id, u.org_id, u.username, u.email, u.first_name, u.last_name, u.mobile, u.kind, \
         u.role, u.status, u.locked_until, u.failed_logins, u.password_change_required, \
         u.encryption_key_version, u.created_at, u.last_login_at, u.deactivated_at"
    };
}
pub(super) use user_columns;

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    org_id: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    mobile: Option<String>,
    kind: String,
    role: String,
    status: String,
    locked_until: Option<Timestamp>,
    failed_logins: i32,
    password_change_required: bool,
    encryption_key_version: i32,
    created_at: Timestamp,
    last_login_at: Option<Timestamp>,
    deactivated_at: Option<Timestamp>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId(r.id),
            org_id: OrgId(r.org_id),
            username: r.username,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            mobile: r.mobile,
            kind: parse(&r.kind)?,
            role: parse(&r.role)?,
            status: parse(&r.status)?,
            locked_until: r.locked_until,
            failed_logins: r.failed_logins,
            password_change_required: r.password_change_required,
            encryption_key_version: r.encryption_key_version,
            created_at: r.created_at,
            last_login_at: r.last_login_at,
            deactivated_at: r.deactivated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionUserRow {
    pub session_id: i64,
    pub session_seen: Timestamp,
    #[sqlx(flatten)]
    pub user: UserRow,
}

#[derive(sqlx::FromRow)]
pub(super) struct OrganizationRow {
    id: i64,
    name: String,
    created_at: Timestamp,
}

impl From<OrganizationRow> for Organization {
    fn from(r: OrganizationRow) -> Self {
        Organization {
            id: OrgId(r.id),
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PracticeRow {
    id: i64,
    org_id: i64,
    name: String,
    created_at: Timestamp,
}

impl From<PracticeRow> for Practice {
    fn from(r: PracticeRow) -> Self {
        Practice {
            id: PracticeId(r.id),
            org_id: OrgId(r.org_id),
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PoolRow {
    product: String,
    kind: String,
    total: i32,
    used: i32,
}

impl TryFrom<PoolRow> for LicensePool {
    type Error = StoreError;
    fn try_from(r: PoolRow) -> Result<Self, StoreError> {
        Ok(LicensePool {
            product: parse(&r.product)?,
            kind: parse(&r.kind)?,
            total: r.total,
            used: r.used,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    org_id: i64,
    seq: i64,
    at: Timestamp,
    action: String,
    actor_id: Option<i64>,
    subject_id: Option<i64>,
    request_id: Option<i64>,
    ip: Option<String>,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            id: r.id,
            org_id: r.org_id,
            seq: r.seq,
            at: r.at,
            action: r.action,
            actor_id: r.actor_id,
            subject_id: r.subject_id,
            request_id: r.request_id,
            ip: r.ip,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: i64,
    payload: String,
    created_at: Timestamp,
    attempts: i32,
}

impl TryFrom<OutboxRow> for OutboxJob {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        let job =
            serde_json::from_str(&r.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(OutboxJob {
            id: r.id,
            job,
            created_at: r.created_at,
            attempts: r.attempts,
        })
    }
}
