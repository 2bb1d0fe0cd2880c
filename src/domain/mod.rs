//! Pure types and rules of Gatehouse: identifiers, account values, enums, audit chaining, errors.

pub mod audit;
pub mod clock;
pub mod enums;
pub mod error;
pub mod id;
pub mod model;
pub mod outbox;
pub mod password;
pub mod request;
pub mod search;
pub mod values;

pub use enums::{
    Permission, Product, RequestKind, RequestStatus, Role, SetupPurpose, UserKind, UserStatus,
};
pub use error::{DomainError, ErrorCode};
pub use id::{OrgId, PracticeId, RequestId, SessionId, UserId};
pub use model::{LicensePool, Organization, Practice, SessionRecord, User};
pub use outbox::{OutboxFor, OutboxMessage};
pub use request::{
    AccountRequest, Change, LicenseChange, PermissionChange, RequestDecision, RequestEvent,
};
pub use values::{EmailAddress, Mobile, PersonName, Username};

use chrono::{DateTime, SubsecRound, Utc};

/// Time as Gatehouse stores it: UTC, truncated to microseconds so that both databases
/// round-trip the same value.
pub type Timestamp = DateTime<Utc>;

/// The current time at storage precision.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}
