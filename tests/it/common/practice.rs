//! A practice with its people, served with a real SMTP receiver: the organization
//! "Sunrise" with owners olivia and oscar, a champion (cam), an admin (adam) and a member
//! (mia), all ACTIVE. Nobody is signed in until a test says so.

use super::{OWNER_PASSWORD, ServerOptions, TestDb, TestServer, add_user, seed_org};
use crate::smtp::SmtpReceiver;
use gatehouse::domain::{OrgId, Role};
use serde_json::Value;

/// Everyone's password but olivia's (she has `OWNER_PASSWORD`).
pub const STAFF_PASSWORD: &str = "correct horse battery staple";

pub struct Practice {
    pub server: TestServer,
    pub smtp: SmtpReceiver,
    pub org: OrgId,
}

impl Practice {
    pub async fn start(db: &TestDb, env: Vec<(&'static str, String)>) -> Practice {
        let smtp = SmtpReceiver::start().await;
        let server = TestServer::start_with(
            db,
            ServerOptions {
                smtp_url: Some(smtp.url()),
                env,
                ..Default::default()
            },
        )
        .await;
        let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
        for (name, role) in [
            ("oscar", Role::Owner),
            ("cam", Role::Champion),
            ("adam", Role::Admin),
            ("mia", Role::Member),
        ] {
            add_user(&server, org.id, name, role, Some(STAFF_PASSWORD)).await;
        }
        Practice {
            server,
            smtp,
            org: org.id,
        }
    }

    /// Signs one of the practice's people in; returns the session token.
    pub async fn login(&self, username: &str) -> String {
        let password = if username == "olivia" {
            OWNER_PASSWORD
        } else {
            STAFF_PASSWORD
        };
        self.server.login(username, password).await
    }

    /// Sends a document (signed in or not); whatever it answers, never a 5xx.
    pub async fn send(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.server.graphql(token, query, variables).await;
        assert!(status < 500, "{status}: {body}");
        body
    }

    /// The global ID of one of the practice's people.
    pub async fn user_id(&self, username: &str) -> String {
        self.user(username).await.id.to_global()
    }

    /// The database ID of one of the practice's people.
    pub async fn user_id_number(&self, username: &str) -> i64 {
        self.user(username).await.id.0
    }

    /// One of the practice's people as stored now.
    pub async fn user(&self, username: &str) -> gatehouse::domain::User {
        self.server
            .store
            .credentials_by_username(username)
            .await
            .unwrap()
            .expect("a user")
            .0
    }

    /// Whether one of the practice's people is locked now.
    pub async fn is_locked(&self, username: &str) -> bool {
        self.user(username)
            .await
            .is_locked(gatehouse::domain::now())
    }

    /// Another writer's transaction holding `username`'s row until committed: sign-ins
    /// sent meanwhile arrive before any is counted and are then counted together, as on a
    /// busy server.
    pub async fn hold_row_of(&self, db: &TestDb, username: &str) -> crate::common::Writing {
        let id = self.user_id_number(username).await;
        db.begin_writing("UPDATE users SET updated_at = updated_at WHERE id = $1", id)
            .await
    }

    /// How many audit events of `action` mention `detail`.
    pub async fn audit_count(&self, action: &str, detail: &str) -> usize {
        let events = self
            .server
            .store
            .audit_chain_page(self.org, 0, 10_000)
            .await
            .unwrap();
        events
            .iter()
            .filter(|e| e.action == action && e.details.contains(detail))
            .count()
    }
}
