//! The store conformance suite: every case runs on SQLite and on PostgreSQL.

mod audit;
mod directory;
mod identity;
mod onboarding;
mod ranks;
mod requests;
mod search;
mod short_pieces;
use crate::common::{TestDb, find_by_name, miscounted_keys, seed_org, test_app};
use gatehouse::domain::{Permission, Product, Role, UserKind, UserStatus, now};
use gatehouse::store::{AuditEntry, NewUser, StoreError, UserCreation, UserSearch, UserUpdate};
use gatehouse_workers::{Job, SetupPurpose};

fn new_user(
    org: gatehouse::domain::OrgId,
    username: &str,
    email: &str,
    kind: UserKind,
) -> UserCreation {
    let at = now();
    UserCreation {
        user: NewUser {
            org_id: org,
            username: username.into(),
            email: email.into(),
            first_name: "Test".into(),
            last_name: "User".into(),
            mobile: None,
            kind,
            role: Role::Member,
            products: vec![Product::Ehr],
            permissions: vec![Permission::Scheduling],
            practice_ids: vec![],
            password_hash: None,
            encryption_key: vec![7; 32],
            created_at: at,
        },
        audit: AuditEntry::new(org, at, "user.invited"),
        setup_email: Some(gatehouse::app::jobs::invitation_email),
    }
}
