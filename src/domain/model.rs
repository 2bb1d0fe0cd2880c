//! Records as the rest of the system sees them: organizations, practices, users, pools.

use super::{OrgId, PracticeId, Product, Role, SessionId, Timestamp, UserId, UserKind, UserStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    pub id: PracticeId,
    pub org_id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePool {
    pub product: Product,
    pub kind: UserKind,
    pub total: i32,
    pub used: i32,
}

impl LicensePool {
    pub fn available(&self) -> i32 {
        self.total - self.used
    }
}

/// A user account, without any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub mobile: Option<String>,
    pub kind: UserKind,
    pub role: Role,
    pub status: UserStatus,
    pub locked_until: Option<Timestamp>,
    pub failed_logins: i32,
    pub password_change_required: bool,
    pub encryption_key_version: i32,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    pub deactivated_at: Option<Timestamp>,
}

impl User {
    /// Locked means a lock that has not yet run out.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// An open session as listed to its user and to admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The earlier of the absolute lifetime and the idle timeout.
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}
