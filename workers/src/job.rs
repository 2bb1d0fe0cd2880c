//! Job payloads: what the outbox records and the queue carries, serialized as tagged JSON.

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

/// One unit of background work. The setup token is minted when the email is built, so
/// no usable token ever rests in the outbox or the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    AccountSetupEmail {
        user_id: i64,
        purpose: SetupPurpose,
        /// Asked for by the user themselves (a reset then needs a security answer).
        self_requested: bool,
    },
}

impl Job {
    /// The job kind, as used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::AccountSetupEmail { .. } => "account_setup_email",
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("job payloads are plain data")
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
