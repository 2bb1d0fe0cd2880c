//! Who may do what: SPEC's role table, decided here and nowhere else.

use super::{Actor, AppError};
use crate::domain::{Role, UserId};

/// Everything the role table distinguishes. "Self" variants are the caller acting on
/// their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    InviteUser,
    SendSetupEmailToInvited,
    /// A reset for an ACTIVE user.
    SendSetupEmailToActive,
    /// unlockUser, reactivateUsers, setTemporaryPassword, resetEncryptionKey, and
    /// revokeSessions or updateUser on someone else.
    AdministerUser,
    CreatePractice,
    RevokeOwnSessions,
    UpdateSelf,
    RequestLicenses,
    RequestPermissionChange,
    RequestInactivation,
    RequestOwnInactivation,
    DecideRequest,
    CancelAnyRequest,
    CancelOwnRequest,
    SeeAllRequests,
    ReadAuditEvents,
    /// Sessions and security questions of another user.
    SeePrivateDetailsOfOthers,
    /// importUsers: a file's roles and permissions are granted as written, which only an
    /// OWNER may do without a request.
    ImportUsers,
}

/// Whether `role` may perform `action`.
pub fn permits(role: Role, action: Action) -> bool {
    use Action::*;
    use Role::*;
    match action {
        InviteUser
        | SendSetupEmailToInvited
        | RequestLicenses
        | RequestInactivation
        | SeeAllRequests => {
            matches!(role, Owner | Champion | Admin)
        }
        SendSetupEmailToActive
        | AdministerUser
        | CreatePractice
        | RequestPermissionChange
        | ReadAuditEvents
        | SeePrivateDetailsOfOthers => matches!(role, Owner | Admin),
        DecideRequest | CancelAnyRequest | ImportUsers => role == Owner,
        RevokeOwnSessions | UpdateSelf | RequestOwnInactivation | CancelOwnRequest => true,
    }
}

impl Actor {
    /// Passes when the caller's role allows `action`, else FORBIDDEN.
    pub fn require(&self, action: Action) -> Result<(), AppError> {
        if permits(self.user.role, action) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// For actions a member may take on their own account only: `own` when the target is
    /// the caller, else `other`.
    pub fn require_on(&self, target: UserId, own: Action, other: Action) -> Result<(), AppError> {
        self.require(if target == self.user.id { own } else { other })
    }

    /// Acting on another user's credentials or sessions (a temporary password, a key
    /// reset, ending their sessions, a reset email): an OWNER's are an owner's business
    /// alone, so that no admin can take over the account that approves spending.
    pub fn require_credentials_of(&self, target: &crate::domain::User) -> Result<(), AppError> {
        if target.role == Role::Owner && target.id != self.user.id && self.user.role != Role::Owner
        {
            return Err(AppError::Forbidden);
        }
        Ok(())
    }

    /// An invitation by anyone but an OWNER grants no more than a MEMBER with the default
    /// permissions; what else it asks for goes to the owners as a request.
    pub fn grants_directly(&self) -> bool {
        self.user.role == Role::Owner
    }

    pub fn may(&self, action: Action) -> bool {
        permits(self.user.role, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table_of_the_spec() {
        use Action::*;
        // (action, OWNER, CHAMPION, ADMIN, MEMBER)
        let table = [
            (InviteUser, true, true, true, false),
            (SendSetupEmailToInvited, true, true, true, false),
            (SendSetupEmailToActive, true, false, true, false),
            (AdministerUser, true, false, true, false),
            (CreatePractice, true, false, true, false),
            (RevokeOwnSessions, true, true, true, true),
            (UpdateSelf, true, true, true, true),
            (RequestLicenses, true, true, true, false),
            (RequestPermissionChange, true, false, true, false),
            (RequestInactivation, true, true, true, false),
            (RequestOwnInactivation, true, true, true, true),
            (DecideRequest, true, false, false, false),
            (CancelAnyRequest, true, false, false, false),
            (CancelOwnRequest, true, true, true, true),
            (SeeAllRequests, true, true, true, false),
            (ReadAuditEvents, true, false, true, false),
            (SeePrivateDetailsOfOthers, true, false, true, false),
            (ImportUsers, true, false, false, false),
        ];
        for (action, owner, champion, admin, member) in table {
            assert_eq!(permits(Role::Owner, action), owner, "OWNER {action:?}");
            assert_eq!(
                permits(Role::Champion, action),
                champion,
                "CHAMPION {action:?}"
            );
            assert_eq!(permits(Role::Admin, action), admin, "ADMIN {action:?}");
            assert_eq!(permits(Role::Member, action), member, "MEMBER {action:?}");
        }
    }
}
