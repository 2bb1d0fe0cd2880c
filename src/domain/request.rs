//! Account requests: the changes that cost money or widen access, decided by an owner.

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    pub id: RequestId,
    pub org_id: OrgId,
    pub kind: RequestKind,
    pub status: RequestStatus,
    pub requested_by: UserId,
    /// The user the request is about (none for ADD_LICENSES).
    pub subject_id: Option<UserId>,
    pub justification: Option<String>,
    pub license_change: Option<LicenseChange>,
    pub permission_change: Option<PermissionChange>,
    /// Products to restore, for REACTIVATE_PROVIDER.
    pub products: Vec<Product>,
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
    /// Still waiting for someone: it may be cancelled.
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            RequestStatus::Submitted | RequestStatus::PendingApproval
        )
    }

    /// Whether an approver must authorize the addition to the invoice.
    pub fn needs_terms(&self) -> bool {
        needs_terms(self.kind)
    }

    /// Whether `user` is the requester or the subject, who may never decide it.
    pub fn involves(&self, user: UserId) -> bool {
        self.requested_by == user || self.subject_id == Some(user)
    }

    /// What the request asks, in a sentence, naming the subject when there is one.
    pub fn describe(&self, subject: Option<&str>) -> String {
        let subject = subject.unwrap_or("a user");
        match self.kind {
            RequestKind::AddLicenses => match self.license_change {
                Some(c) => format!(
                    "Add {} {} license{} for {} users",
                    c.quantity,
                    c.product,
                    if c.quantity == 1 { "" } else { "s" },
                    c.kind
                ),
                None => "Add licenses".to_owned(),
            },
            RequestKind::ChangePermissions => {
                let mut parts = Vec::new();
                if let Some(change) = &self.permission_change {
                    if !change.grant.is_empty() {
                        parts.push(format!("grant {}", list(&change.grant)));
                    }
                    if !change.revoke.is_empty() {
                        parts.push(format!("revoke {}", list(&change.revoke)));
                    }
                    if let Some(role) = change.role {
                        parts.push(format!("make {role}"));
                    }
                }
                format!("Change the permissions of {subject}: {}", parts.join(", "))
            }
            RequestKind::InactivateUser => format!("Inactivate {subject}"),
            RequestKind::ReactivateProvider => format!(
                "Reactivate provider {subject} with {}",
                list(&self.products)
            ),
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

/// The audit action of a request reaching `status`.
pub fn audit_action(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Submitted => "request.submitted",
        RequestStatus::PendingApproval => "request.pending_approval",
        RequestStatus::Approved => "request.approved",
        RequestStatus::Applied => "request.applied",
        RequestStatus::Rejected => "request.rejected",
        RequestStatus::Cancelled => "request.cancelled",
        RequestStatus::Expired => "request.expired",
        RequestStatus::Failed => "request.failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_dotted_audit_action() {
        for status in RequestStatus::ALL {
            assert_eq!(
                audit_action(*status),
                format!("request.{}", status.as_str().to_lowercase())
            );
        }
    }
}
