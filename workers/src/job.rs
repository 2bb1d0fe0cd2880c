//! Job payloads: what the outbox records and the queue carries, serialized as tagged JSON.

use crate::templates::Email;
use serde::{Deserialize, Serialize};

/// Why an account-setup email is sent: a first invitation, or a reset of an active account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SetupPurpose {
    Invitation,
    Reset,
}

impl SetupPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupPurpose::Invitation => "INVITATION",
            SetupPurpose::Reset => "RESET",
        }
    }
}

/// One unit of background work.
// A job lives only between its outbox row and its handler (as JSON in between): the size
// of its largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// The setup token is minted when the email is built, so no usable token ever rests in
    /// the outbox or the queue.
    AccountSetupEmail {
        user_id: i64,
        purpose: SetupPurpose,
        /// Asked for by the user themselves (a reset then needs a security answer).
        self_requested: bool,
    },
    /// Computes who decides a newly filed request, and asks them (or approves it when its
    /// requester is an owner).
    RouteRequest { request_id: i64 },
    /// Applies an approved request and reports the outcome.
    ApplyRequest { request_id: i64 },
    /// A notification whose content is fully known when it is filed (never a secret).
    Email {
        /// The recipient's organization, named in the email (absent in jobs written
        /// before it was recorded).
        #[serde(default)]
        org_id: Option<i64>,
        to_name: String,
        to_address: String,
        email: Email,
    },
}

impl Job {
    /// Every job kind, as [`Job::kind`] names it.
    pub const KINDS: [&str; 4] = [
        "account_setup_email",
        "route_request",
        "apply_request",
        "email",
    ];

    /// The job kind, as used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::AccountSetupEmail { .. } => "account_setup_email",
            Job::RouteRequest { .. } => "route_request",
            Job::ApplyRequest { .. } => "apply_request",
            Job::Email { .. } => "email",
        }
    }

    /// Whether the job sends an email (which is then sent once, by its key).
    pub fn sends_email(&self) -> bool {
        matches!(self, Job::AccountSetupEmail { .. } | Job::Email { .. })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("job payloads are plain data")
    }
}

/// A job on the queue: the outbox row it came from (its identity, so that a job that runs
/// twice acts once) and its delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub outbox_id: i64,
    pub attempt: u32,
    /// Unix seconds of the first attempt, to bound retries in time.
    pub first_attempt_at: Option<i64>,
    pub job: Job,
    /// The HTTP request that caused the job, named in its log lines.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Envelope {
    pub fn new(outbox_id: i64, job: Job, request_id: Option<String>) -> Self {
        Self {
            outbox_id,
            attempt: 1,
            first_attempt_at: None,
            job,
            request_id,
        }
    }

    /// The unique key of the email this job sends.
    pub fn email_key(&self) -> String {
        format!("outbox-{}", self.outbox_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_tagged_json_that_round_trips() {
        let job = Job::AccountSetupEmail {
            user_id: 7,
            purpose: SetupPurpose::Invitation,
            self_requested: false,
        };
        let text = job.to_json();
        assert!(text.contains("\"kind\":\"account_setup_email\""), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }
}
