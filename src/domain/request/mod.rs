//! Account requests: the changes that cost money or widen access, decided by an owner.

pub mod workflow;

pub use workflow::{NotApplicable, NotDecidable, Step, UNFINISHED, audit_action, may_decide};

use super::{
    OrgId, Permission, Product, RequestId, RequestKind, RequestStatus, Role, Timestamp, UserId,
    UserKind,
};

/// ADD_LICENSES: more licenses of a product for a user kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseChange {
    pub product: Product,
    pub kind: UserKind,
    pub quantity: i32,
}

/// CHANGE_PERMISSIONS: permissions to grant and revoke, and optionally a new role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionChange {
    pub grant: Vec<Permission>,
    pub revoke: Vec<Permission>,
    pub role: Option<Role>,
}

/// What a request asks for: one type for the API, the use cases and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// ADD_LICENSES.
    Licenses(LicenseChange),
    /// CHANGE_PERMISSIONS of the subject.
    Permissions(PermissionChange),
    /// INACTIVATE_USER: the subject.
    Inactivation,
    /// REACTIVATE_PROVIDER: the subject, with these products.
    Reactivation { products: Vec<Product> },
}

impl Change {
    pub fn kind(&self) -> RequestKind {
        match self {
            Change::Licenses(_) => RequestKind::AddLicenses,
            Change::Permissions(_) => RequestKind::ChangePermissions,
            Change::Inactivation => RequestKind::InactivateUser,
            Change::Reactivation { .. } => RequestKind::ReactivateProvider,
        }
    }

    pub fn licenses(&self) -> Option<LicenseChange> {
        match self {
            Change::Licenses(change) => Some(*change),
            _ => None,
        }
    }

    pub fn permissions(&self) -> Option<&PermissionChange> {
        match self {
            Change::Permissions(change) => Some(change),
            _ => None,
        }
    }

    /// Products restored by a reactivation (none for other changes).
    pub fn products(&self) -> &[Product] {
        match self {
            Change::Reactivation { products } => products,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    pub id: RequestId,
    pub org_id: OrgId,
    pub status: RequestStatus,
    pub requested_by: UserId,
    /// The user the request is about (none for ADD_LICENSES).
    pub subject_id: Option<UserId>,
    pub justification: Option<String>,
    pub change: Change,
    /// The requester accepted the terms when filing (an owner adding licenses).
    pub terms_accepted: bool,
    /// The requester was an owner when filing: the filing is their approval.
    pub filed_by_owner: bool,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub reminded_at: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
    pub applied_at: Option<Timestamp>,
}

impl AccountRequest {
    pub fn kind(&self) -> RequestKind {
        self.change.kind()
    }

    /// Still waiting for a decision: it may be cancelled.
    pub fn may_be_cancelled(&self) -> bool {
        Step::Cancel.allows(self.status)
    }

    /// Whether an approver must authorize the addition to the invoice.
    pub fn needs_terms(&self) -> bool {
        needs_terms(self.kind())
    }

    /// Whether `user` is the requester or the subject, who may never decide it.
    pub fn involves(&self, user: UserId) -> bool {
        self.requested_by == user || self.subject_id == Some(user)
    }

    /// What the request asks, in a sentence, naming the subject when there is one.
    pub fn describe(&self, subject: Option<&str>) -> String {
        let subject = subject.unwrap_or("a user");
        match &self.change {
            Change::Licenses(c) => format!(
                "Add {} {} license{} for {} users",
                c.quantity,
                c.product,
                if c.quantity == 1 { "" } else { "s" },
                c.kind
            ),
            Change::Permissions(change) => {
                let mut parts = Vec::new();
                if !change.grant.is_empty() {
                    parts.push(format!("grant {}", list(&change.grant)));
                }
                if !change.revoke.is_empty() {
                    parts.push(format!("revoke {}", list(&change.revoke)));
                }
                if let Some(role) = change.role {
                    parts.push(format!("make {role}"));
                }
                format!("Change the permissions of {subject}: {}", parts.join(", "))
            }
            Change::Inactivation => format!("Inactivate {subject}"),
            Change::Reactivation { products } => {
                format!("Reactivate provider {subject} with {}", list(products))
            }
        }
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// ADD_LICENSES and REACTIVATE_PROVIDER add to the invoice: approving them needs the terms.
pub fn needs_terms(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::AddLicenses | RequestKind::ReactivateProvider
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDecision {
    pub approver_id: UserId,
    pub approved: bool,
    pub comment: Option<String>,
    pub terms_accepted: bool,
    pub decided_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    pub id: i64,
    pub at: Timestamp,
    pub status: RequestStatus,
    pub actor_id: Option<UserId>,
    pub note: Option<String>,
}
