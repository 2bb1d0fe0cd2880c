//! Emails: what each one of the spec says (its data), and their templates — a subject, a
//! plain-text body and an HTML body each, built in and overridable per email from a
//! directory. Every value that came from a user is escaped in the HTML.

mod render;

pub use render::{Brand, TemplateError, Templates};
use serde::{Deserialize, Serialize};

/// A rendered email, ready for the mailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// How a request ended, for the outcome email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Applied,
    Rejected,
    Failed,
    Expired,
}

/// What a request asks, in words, with its ID for the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The request's global ID, used in `{PUBLIC_URL}/requests/<id>`.
    pub id: String,
    /// A sentence such as "Add 3 EHR licenses for PROVIDER users".
    pub description: String,
    pub requested_by: String,
    pub organization: String,
}

/// Every email Gatehouse sends, with the data it needs. Setup emails carry their token
/// only in memory: it is minted when the email is built and never stored readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Email {
    AccountSetupInvitation {
        name: String,
        username: String,
        organization: String,
        #[serde(skip)]
        token: String,
        valid_hours: u64,
    },
    AccountSetupReset {
        name: String,
        username: String,
        #[serde(skip)]
        token: String,
        valid_hours: u64,
    },
    AccountLocked {
        name: String,
        username: String,
        /// When the lock ends by itself, as shown to the user (e.g. "2026-11-23 14:05 UTC").
        locked_until: String,
        /// Whom to ask for an earlier unlock.
        help_contact: String,
    },
    ApprovalNeeded {
        name: String,
        request: RequestSummary,
    },
    ApprovalReminder {
        name: String,
        request: RequestSummary,
        waiting_days: u64,
    },
    RequestOutcome {
        name: String,
        request: RequestSummary,
        outcome: Outcome,
        /// The approver's reason for a rejection, the cause of a failure.
        reason: Option<String>,
    },
    PasswordChanged {
        name: String,
        username: String,
        /// "you changed it" or "an administrator set a temporary password".
        how: String,
    },
    EncryptionKeyReset {
        name: String,
        username: String,
        new_version: i32,
    },
}

impl Email {
    /// The template's name, for records and metrics, and the stem of its files.
    pub fn template(&self) -> &'static str {
        match self {
            Email::AccountSetupInvitation { .. } => "account_setup_invitation",
            Email::AccountSetupReset { .. } => "account_setup_reset",
            Email::AccountLocked { .. } => "account_locked",
            Email::ApprovalNeeded { .. } => "approval_needed",
            Email::ApprovalReminder { .. } => "approval_reminder",
            Email::RequestOutcome { .. } => "request_outcome",
            Email::PasswordChanged { .. } => "password_changed",
            Email::EncryptionKeyReset { .. } => "encryption_key_reset",
        }
    }

    /// The link the email leads to, built on `base` (the public URL without a trailing
    /// slash).
    fn link(&self, base: &str) -> Option<String> {
        match self {
            Email::AccountSetupInvitation { token, .. }
            | Email::AccountSetupReset { token, .. } => {
                Some(format!("{base}/account/setup?token={token}"))
            }
            Email::ApprovalNeeded { request, .. }
            | Email::ApprovalReminder { request, .. }
            | Email::RequestOutcome { request, .. } => {
                Some(format!("{base}/requests/{}", request.id))
            }
            _ => None,
        }
    }

    /// One email of each kind (and each outcome) with sample data: what `email preview`
    /// shows, and what every template is tried on when loaded.
    pub fn samples() -> Vec<Email> {
        let request = RequestSummary {
            id: "QWNjb3VudFJlcXVlc3Q6Nw".into(),
            description: "Add 3 EHR licenses for PROVIDER users".into(),
            requested_by: "Dana Whitfield".into(),
            organization: "Sunrise Family Practice".into(),
        };
        let name = "Ana García".to_owned();
        let mut samples = vec![
            Email::AccountSetupInvitation {
                name: name.clone(),
                username: "agarcia".into(),
                organization: "Sunrise Family Practice".into(),
                token: "sample-token".into(),
                valid_hours: 72,
            },
            Email::AccountSetupReset {
                name: name.clone(),
                username: "agarcia".into(),
                token: "sample-token".into(),
                valid_hours: 72,
            },
            Email::AccountLocked {
                name: name.clone(),
                username: "agarcia".into(),
                locked_until: "2026-11-23 14:05 UTC".into(),
                help_contact: "an administrator or owner of your practice, who can unlock it"
                    .into(),
            },
            Email::ApprovalNeeded {
                name: name.clone(),
                request: request.clone(),
            },
            Email::ApprovalReminder {
                name: name.clone(),
                request: request.clone(),
                waiting_days: 3,
            },
        ];
        for (outcome, reason) in [
            (Outcome::Applied, None),
            (Outcome::Rejected, Some("Budget frozen until March")),
            (Outcome::Failed, Some("no license available")),
            (Outcome::Expired, None),
        ] {
            samples.push(Email::RequestOutcome {
                name: name.clone(),
                request: request.clone(),
                outcome,
                reason: reason.map(str::to_owned),
            });
        }
        samples.push(Email::PasswordChanged {
            name: name.clone(),
            username: "agarcia".into(),
            how: "you changed it".into(),
        });
        samples.push(Email::EncryptionKeyReset {
            name,
            username: "agarcia".into(),
            new_version: 2,
        });
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://gatehouse.example/";

    trait RenderForTest {
        fn render(&self, url: &str) -> Rendered;
    }

    impl RenderForTest for Email {
        fn render(&self, url: &str) -> Rendered {
            let brand = Brand {
                organization: "Sunrise & Co".into(),
                support: "help@vendor.example".into(),
            };
            Templates::built_in(url).render(self, &brand).unwrap()
        }
    }

    fn request() -> RequestSummary {
        RequestSummary {
            id: "QWNjb3VudFJlcXVlc3Q6Nw".into(),
            description: "Add 3 EHR licenses for PROVIDER users".into(),
            requested_by: "Dana <script>".into(),
            organization: "Sunrise".into(),
        }
    }

    fn every_email() -> Vec<Email> {
        let name = "Ana <b>García</b>".to_owned();
        vec![
            Email::AccountSetupInvitation {
                name: name.clone(),
                username: "ana".into(),
                organization: "Sunrise & Co".into(),
                token: "tok123".into(),
                valid_hours: 72,
            },
            Email::AccountSetupReset {
                name: name.clone(),
                username: "ana".into(),
                token: "tok456".into(),
                valid_hours: 72,
            },
            Email::AccountLocked {
                name: name.clone(),
                username: "ana".into(),
                locked_until: "2026-11-23 14:05 UTC".into(),
                help_contact: "your practice administrator".into(),
            },
            Email::ApprovalNeeded {
                name: name.clone(),
                request: request(),
            },
            Email::ApprovalReminder {
                name: name.clone(),
                request: request(),
                waiting_days: 3,
            },
            Email::RequestOutcome {
                name: name.clone(),
                request: request(),
                outcome: Outcome::Applied,
                reason: None,
            },
            Email::RequestOutcome {
                name: name.clone(),
                request: request(),
                outcome: Outcome::Rejected,
                reason: Some("Budget <frozen>".into()),
            },
            Email::RequestOutcome {
                name: name.clone(),
                request: request(),
                outcome: Outcome::Failed,
                reason: Some("no license available".into()),
            },
            Email::RequestOutcome {
                name: name.clone(),
                request: request(),
                outcome: Outcome::Expired,
                reason: None,
            },
            Email::PasswordChanged {
                name: name.clone(),
                username: "ana".into(),
                how: "you changed it".into(),
            },
            Email::EncryptionKeyReset {
                name,
                username: "ana".into(),
                new_version: 2,
            },
        ]
    }

    #[test]
    fn every_template_renders_text_and_escaped_html() {
        for email in every_email() {
            let r = email.render(URL);
            assert!(!r.subject.is_empty(), "{}", email.template());
            assert!(
                r.text.contains("Hello Ana <b>García</b>,"),
                "{}: text keeps the name as typed",
                email.template()
            );
            assert!(
                r.html.contains("Hello Ana &lt;b&gt;García&lt;&#x2f;b&gt;,"),
                "{}: HTML escapes it",
                email.template()
            );
            assert!(
                !r.html.contains("<script>") && !r.html.contains("<b>"),
                "{}",
                email.template()
            );
        }
    }

    #[test]
    fn links_are_built_on_the_public_url() {
        let setup = every_email()[0].render(URL);
        assert!(
            setup
                .text
                .contains("https://gatehouse.example/account/setup?token=tok123")
        );
        assert!(
            setup
                .html
                .contains("href=\"https://gatehouse.example/account/setup?token=tok123\"")
        );
        let approval = every_email()[3].render(URL);
        assert!(
            approval
                .text
                .contains("https://gatehouse.example/requests/QWNjb3VudFJlcXVlc3Q6Nw")
        );
    }

    #[test]
    fn outcomes_give_the_reason_or_cause() {
        let emails = every_email();
        assert!(
            emails[6]
                .render(URL)
                .text
                .contains("Reason given: Budget <frozen>")
        );
        assert!(emails[6].render(URL).html.contains("Budget &lt;frozen&gt;"));
        assert!(
            emails[7]
                .render(URL)
                .text
                .contains("Cause: no license available")
        );
        assert!(emails[8].render(URL).subject.starts_with("Request expired"));
    }

    #[test]
    fn every_email_names_the_organization_and_the_support_contact() {
        for email in every_email() {
            let r = email.render(URL);
            for body in [&r.text, &r.html] {
                assert!(body.contains("help@vendor.example"), "{}", email.template());
            }
            assert!(r.text.contains("Sunrise & Co"), "{}", email.template());
            assert!(r.html.contains("Sunrise &amp; Co"), "{}", email.template());
            assert!(!r.subject.contains('\n'));
        }
        let plain = Templates::built_in(URL)
            .render(&every_email()[2], &Brand::default())
            .unwrap();
        assert!(
            plain
                .text
                .contains("Questions? Contact your practice administrator.")
        );
    }

    #[test]
    fn a_directory_overrides_one_template_and_a_broken_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("gatehouse-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("password_changed.txt"),
            "{% extends \"layout.txt\" %}{% block subject %}Acme: password changed{% endblock %}{% block body %}Hi {{ name }}, it changed.\n{% endblock %}",
        )
        .unwrap();
        let templates = Templates::load(Some(&dir), URL).unwrap();
        let brand = Brand::default();
        let email = &every_email()[9];
        let r = templates.render(email, &brand).unwrap();
        assert_eq!(r.subject, "Acme: password changed");
        assert!(
            r.text.starts_with("Hi Ana <b>García</b>, it changed."),
            "{}",
            r.text
        );
        assert!(
            r.html.contains("Every device signed in"),
            "the HTML stays built in"
        );

        std::fs::write(dir.join("approval_needed.html"), "{{ no_such_value }}").unwrap();
        let err = Templates::load(Some(&dir), URL).unwrap_err().to_string();
        assert!(err.contains("approval_needed.html"), "{err}");
        std::fs::remove_file(dir.join("approval_needed.html")).unwrap();
        std::fs::write(dir.join("aproval_needed.txt"), "typo").unwrap();
        let err = Templates::load(Some(&dir), URL).unwrap_err().to_string();
        assert!(
            err.contains("aproval_needed.txt") && err.contains("the templates are"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tokens_never_serialize() {
        let json = serde_json::to_string(&every_email()[0]).unwrap();
        assert!(!json.contains("tok123"), "{json}");
    }
}
