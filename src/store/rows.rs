//! Row types shared by both backends, and their conversion into domain records.

use super::{OutboxJob, StoreError};
use crate::domain::Change;
use crate::domain::audit::AuditRecord;
use crate::domain::{
    AccountRequest, LicenseChange, LicensePool, OrgId, Organization, PermissionChange, Practice,
    PracticeId, RequestDecision, RequestEvent, RequestId, RequestKind, Timestamp, User, UserId,
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

/// `"p.a, p.b, …"` for a prefix `p` and the columns `a, b, …`, for `concat!` into queries.
macro_rules! columns {
    ($p:literal; $first:ident $(, $column:ident)*) => {
        concat!($p, stringify!($first) $(, ", ", $p, stringify!($column))*)
    };
}
pub(super) use columns;

/// The columns of a `UserRow`, for `concat!` into queries over `users u`; with a prefix
/// of `""`, for the `RETURNING` of a write to `users`.
macro_rules! user_columns {
    () => {
        user_columns!("u.")
    };
    ($p:literal) => {
        $crate::store::rows::columns!($p; id, org_id, username, email, first_name, last_name, mobile, kind,
            role, status, locked_until, failed_logins, password_change_required,
            encryption_key_version, created_at, last_login_at, deactivated_at)
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
    kind: String,
    payload: String,
    created_at: Timestamp,
    attempts: i32,
}

impl TryFrom<OutboxRow> for OutboxJob {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        Ok(OutboxJob {
            id: r.id,
            message: crate::domain::OutboxMessage {
                kind: r.kind,
                payload: r.payload,
            },
            created_at: r.created_at,
            attempts: r.attempts,
        })
    }
}

/// The columns of a `RequestRow`, for `concat!` into queries over `requests r`; with a
/// prefix of `""`, for the `RETURNING` of a write to `requests`.
macro_rules! request_columns {
    () => {
        request_columns!("r.")
    };
    ($p:literal) => {
        $crate::store::rows::columns!($p; id, org_id, kind, status, requested_by, subject_id, justification,
            product, user_kind, quantity, grant_permissions, revoke_permissions, new_role,
            products, terms_accepted, filed_by_owner, failure_reason, created_at, expires_at,
            reminded_at, decided_at, applied_at)
    };
}
pub(super) use request_columns;

/// The statuses of a request not yet final (`domain::request::UNFINISHED`), as an SQL
/// list written exactly as the partial indexes over open requests name them: a query
/// with the same list can use those indexes, one with bound statuses cannot.
macro_rules! unfinished_statuses {
    () => {
        "('SUBMITTED', 'PENDING_APPROVAL', 'APPROVED')"
    };
}
pub(super) use unfinished_statuses;

#[derive(sqlx::FromRow)]
pub(super) struct RequestRow {
    id: i64,
    org_id: i64,
    kind: String,
    status: String,
    requested_by: i64,
    subject_id: Option<i64>,
    justification: Option<String>,
    product: Option<String>,
    user_kind: Option<String>,
    quantity: Option<i32>,
    grant_permissions: Option<String>,
    revoke_permissions: Option<String>,
    new_role: Option<String>,
    products: Option<String>,
    terms_accepted: bool,
    filed_by_owner: bool,
    failure_reason: Option<String>,
    created_at: Timestamp,
    expires_at: Timestamp,
    reminded_at: Option<Timestamp>,
    decided_at: Option<Timestamp>,
    applied_at: Option<Timestamp>,
}

/// A JSON array of enum names, as the request columns store lists.
pub(crate) fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = items.into_iter().collect();
    serde_json::to_string(&names).expect("a list of names")
}

fn parse_names<T: FromStr>(text: Option<&str>) -> Result<Vec<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let names: Vec<String> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    names.iter().map(|n| parse(n)).collect()
}

impl TryFrom<RequestRow> for AccountRequest {
    type Error = StoreError;
    fn try_from(r: RequestRow) -> Result<Self, StoreError> {
        let change = match parse::<RequestKind>(&r.kind)? {
            RequestKind::AddLicenses => match (&r.product, &r.user_kind, r.quantity) {
                (Some(product), Some(user_kind), Some(quantity)) => {
                    Change::Licenses(LicenseChange {
                        product: parse(product)?,
                        kind: parse(user_kind)?,
                        quantity,
                    })
                }
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "request {} without its licenses",
                        r.id
                    )));
                }
            },
            RequestKind::ChangePermissions => Change::Permissions(PermissionChange {
                grant: parse_names(r.grant_permissions.as_deref())?,
                revoke: parse_names(r.revoke_permissions.as_deref())?,
                role: r.new_role.as_deref().map(parse).transpose()?,
            }),
            RequestKind::InactivateUser => Change::Inactivation,
            RequestKind::ReactivateProvider => Change::Reactivation {
                products: parse_names(r.products.as_deref())?,
            },
        };
        Ok(AccountRequest {
            id: RequestId(r.id),
            org_id: OrgId(r.org_id),
            status: parse(&r.status)?,
            requested_by: UserId(r.requested_by),
            subject_id: r.subject_id.map(UserId),
            justification: r.justification,
            change,
            terms_accepted: r.terms_accepted,
            filed_by_owner: r.filed_by_owner,
            failure_reason: r.failure_reason,
            created_at: r.created_at,
            expires_at: r.expires_at,
            reminded_at: r.reminded_at,
            decided_at: r.decided_at,
            applied_at: r.applied_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DecisionRow {
    request_id: i64,
    approver_id: i64,
    approved: bool,
    comment: Option<String>,
    terms_accepted: bool,
    decided_at: Timestamp,
}

impl From<DecisionRow> for (RequestId, RequestDecision) {
    fn from(r: DecisionRow) -> Self {
        (
            RequestId(r.request_id),
            RequestDecision {
                approver_id: UserId(r.approver_id),
                approved: r.approved,
                comment: r.comment,
                terms_accepted: r.terms_accepted,
                decided_at: r.decided_at,
            },
        )
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    request_id: i64,
    at: Timestamp,
    status: String,
    actor_id: Option<i64>,
    note: Option<String>,
}

impl TryFrom<EventRow> for (RequestId, RequestEvent) {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok((
            RequestId(r.request_id),
            RequestEvent {
                id: r.id,
                at: r.at,
                status: parse(&r.status)?,
                actor_id: r.actor_id.map(UserId),
                note: r.note,
            },
        ))
    }
}

/// A row of the change feed: event, organization, request, status.
pub(crate) type ChangeRow = (i64, i64, i64, String);

pub(crate) fn request_change(
    (event_id, org, request, status): ChangeRow,
) -> Result<super::RequestChange, StoreError> {
    Ok(super::RequestChange {
        event_id,
        org_id: OrgId(org),
        request_id: RequestId(request),
        status: parse(&status)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unfinished_statuses_in_sql_are_the_domains() {
        let listed: Vec<String> = crate::domain::request::UNFINISHED
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(unfinished_statuses!(), format!("({})", listed.join(", ")));
        for backend in ["sqlite", "postgres"] {
            let initial = std::fs::read_to_string(format!(
                "{}/migrations/{backend}/0001_initial.sql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert!(
                initial.contains(&format!("status IN {}", unfinished_statuses!())),
                "the {backend} partial indexes name another list"
            );
        }
    }
}
