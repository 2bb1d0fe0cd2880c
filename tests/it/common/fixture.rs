//! The application with its store, an organization with its owner, users added directly.

use super::*;
use gatehouse::app::App;
use gatehouse::store::Store;
use std::sync::Arc;

/// The application alone (no server, no workers) on the test database, with the store
/// beneath it for tests that arrange data directly.
pub struct TestApp {
    pub app: App,
    pub store: Arc<dyn Store>,
}

impl std::ops::Deref for TestApp {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

pub async fn test_app(db: &TestDb) -> TestApp {
    let (app, store) = gatehouse::build_app_and_store(test_config(db, &[]))
        .await
        .expect("build app");
    TestApp { app, store }
}

impl Parts for TestApp {
    fn app(&self) -> &App {
        &self.app
    }
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

impl Parts for TestServer {
    fn app(&self) -> &App {
        &self.app
    }
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

pub const OWNER_PASSWORD: &str = "sunrise owner passphrase";

/// Creates an organization whose ACTIVE owner signs in with `OWNER_PASSWORD`.
pub async fn seed_org(
    app: &App,
    name: &str,
    owner: &str,
) -> (gatehouse::domain::Organization, gatehouse::domain::User) {
    use gatehouse::app::directory::organization::CreateOrganization;
    use gatehouse::domain::{Product, UserKind};
    app.directory()
        .create_organization(CreateOrganization {
            name: name.into(),
            owner_username: owner.into(),
            owner_email: format!("{owner}@{}.example", name.to_lowercase().replace(' ', "-")),
            owner_first_name: "Olivia".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![
                (Product::Ehr, UserKind::Provider, 5),
                (Product::Ehr, UserKind::Staff, 10),
            ],
            owner_password: Some(OWNER_PASSWORD.into()),
        })
        .await
        .expect("seed organization")
}

/// Adds a user to an organization directly through the store (the API for inviting users
/// belongs to the directory tests); with a password the user is ACTIVE.
pub async fn add_user(
    parts: &impl Parts,
    org: gatehouse::domain::OrgId,
    username: &str,
    role: gatehouse::domain::Role,
    password: Option<&str>,
) -> gatehouse::domain::User {
    use gatehouse::domain::{Product, UserKind, now};
    use gatehouse::store::{AuditEntry, NewUser, UserCreation};
    let password_hash = match password {
        Some(p) => Some(
            gatehouse::app::crypto::PasswordHasher::new(parts.app().config().argon2)
                .hash(p)
                .await
                .unwrap(),
        ),
        None => None,
    };
    let at = now();
    let creation = UserCreation {
        user: NewUser {
            org_id: org,
            username: username.into(),
            email: format!("{username}@staff.example"),
            first_name: "Sam".into(),
            last_name: username.into(),
            mobile: None,
            kind: UserKind::Staff,
            role,
            products: vec![Product::Ehr],
            permissions: vec![],
            practice_ids: vec![],
            password_hash,
            encryption_key: vec![1; 32],
            created_at: at,
        },
        audit: AuditEntry::new(org, at, "user.invited"),
        setup_email: None,
    };
    parts
        .store()
        .create_user(creation)
        .await
        .expect("user added")
}

/// One page of `limit` users of `org` whose name holds `name`, with the total, from the
/// store.
pub async fn find_by_name(
    app: &TestApp,
    org: gatehouse::domain::OrgId,
    name: &str,
    limit: i64,
) -> gatehouse::store::UserPage {
    app.store
        .search_users(gatehouse::store::UserSearch {
            org_id: org,
            name: Some(name.into()),
            limit,
            with_total: true,
            now: gatehouse::domain::now(),
            ..Default::default()
        })
        .await
        .expect("search users")
}

/// How many search keys are counted otherwise than they are posted (0 when the counts
/// the planner reads agree with the postings).
pub async fn miscounted_keys(db: &TestDb) -> i64 {
    db.count(
        "SELECT COUNT(*) FROM (SELECT key, COUNT(*) AS n FROM user_search_postings \
         GROUP BY key) p LEFT JOIN user_search_counts c \
         ON c.key = p.key WHERE COALESCE(c.users, -1) <> p.n",
    )
    .await
}
