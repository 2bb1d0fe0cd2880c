//! Email templates: one per email of the spec, each rendered to a subject, a plain-text
//! body and an HTML body. Every value that came from a user is escaped in the HTML.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

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
    /// The template's name, for records and metrics.
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

    /// Renders the email; links are built on `public_url` (no trailing slash needed).
    pub fn render(&self, public_url: &str) -> Rendered {
        let base = public_url.trim_end_matches('/');
        let mut page = Page::default();
        let subject = match self {
            Email::AccountSetupInvitation {
                name,
                username,
                organization,
                token,
                valid_hours,
            } => {
                page.greet(name);
                page.para(&format!(
                    "{organization} has invited you to its EHR subscription."
                ));
                page.para(&format!(
                    "Your username is {username}. Set your password and security questions here:"
                ));
                page.link(&setup_link(base, token));
                page.para(&format!(
                    "The link works once and expires in {valid_hours} hours. If it has expired, ask your practice administrator to send a new one."
                ));
                format!("You're invited to {organization}: set up your account")
            }
            Email::AccountSetupReset {
                name,
                username,
                token,
                valid_hours,
            } => {
                page.greet(name);
                page.para(&format!(
                    "A password reset was requested for your account {username}. Choose a new password here:"
                ));
                page.link(&setup_link(base, token));
                page.para(&format!(
                    "The link works once and expires in {valid_hours} hours. If you did not ask for this, you can ignore this email; your password stays as it is."
                ));
                "Reset your password".to_owned()
            }
            Email::AccountLocked {
                name,
                username,
                locked_until,
                help_contact,
            } => {
                page.greet(name);
                page.para(&format!(
                    "Your account {username} was locked after too many failed sign-in attempts."
                ));
                page.para(&format!("It unlocks by itself at {locked_until}."));
                page.para(&format!(
                    "To be unlocked sooner, ask {help_contact}. If these attempts were not yours, reset your password once you can sign in again."
                ));
                "Your account is locked".to_owned()
            }
            Email::ApprovalNeeded { name, request } => {
                page.greet(name);
                page.para(&format!("{} asks for your approval:", request.requested_by));
                page.quote(&request.description);
                page.para("Review it and approve or reject it here:");
                page.link(&request_link(base, &request.id));
                format!("Approval needed: {}", request.description)
            }
            Email::ApprovalReminder {
                name,
                request,
                waiting_days,
            } => {
                page.greet(name);
                page.para(&format!(
                    "This request from {} has been waiting for a decision for {waiting_days} days:",
                    request.requested_by
                ));
                page.quote(&request.description);
                page.link(&request_link(base, &request.id));
                format!("Reminder: approval needed: {}", request.description)
            }
            Email::RequestOutcome {
                name,
                request,
                outcome,
                reason,
            } => {
                page.greet(name);
                let (word, said) = match outcome {
                    Outcome::Applied => ("applied", "was approved and has been applied."),
                    Outcome::Rejected => ("rejected", "was rejected."),
                    Outcome::Failed => ("failed", "could not be applied."),
                    Outcome::Expired => ("expired", "expired without a decision."),
                };
                page.para(&format!("This request {said}"));
                page.quote(&request.description);
                if let Some(reason) = reason {
                    let label = if *outcome == Outcome::Rejected {
                        "Reason given"
                    } else {
                        "Cause"
                    };
                    page.para(&format!("{label}: {reason}"));
                }
                page.link(&request_link(base, &request.id));
                format!("Request {word}: {}", request.description)
            }
            Email::PasswordChanged {
                name,
                username,
                how,
            } => {
                page.greet(name);
                page.para(&format!(
                    "The password of your account {username} was changed: {how}."
                ));
                page.para("Every device signed in to your account has been signed out.");
                page.para("If this was not you, contact your practice administrator at once.");
                "Your password was changed".to_owned()
            }
            Email::EncryptionKeyReset {
                name,
                username,
                new_version,
            } => {
                page.greet(name);
                page.para(&format!(
                    "An administrator reset the encryption key of your account {username} (now version {new_version})."
                ));
                page.para("Every device signed in to your account has been signed out; sign in again to continue.");
                "Your encryption key was reset".to_owned()
            }
        };
        page.finish(subject)
    }
}

fn setup_link(base: &str, token: &str) -> String {
    format!("{base}/account/setup?token={token}")
}

fn request_link(base: &str, id: &str) -> String {
    format!("{base}/requests/{id}")
}

/// Builds the text and HTML bodies side by side.
#[derive(Default)]
struct Page {
    text: String,
    html: String,
}

impl Page {
    fn greet(&mut self, name: &str) {
        self.para(&format!("Hello {name},"));
    }

    fn para(&mut self, line: &str) {
        let _ = write!(self.text, "{line}\n\n");
        let _ = writeln!(self.html, "<p>{}</p>", escape(line));
    }

    fn quote(&mut self, line: &str) {
        let _ = write!(self.text, "    {line}\n\n");
        let _ = writeln!(self.html, "<blockquote>{}</blockquote>", escape(line));
    }

    fn link(&mut self, url: &str) {
        let _ = write!(self.text, "{url}\n\n");
        let url = escape(url);
        let _ = writeln!(self.html, "<p><a href=\"{url}\">{url}</a></p>");
    }

    fn finish(mut self, subject: String) -> Rendered {
        self.text.push_str("-- \nGatehouse\n");
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family: sans-serif; line-height: 1.5\">\n{}<p style=\"color: #666\">Gatehouse</p>\n</body></html>\n",
            escape(&subject),
            self.html
        );
        Rendered {
            subject,
            text: self.text,
            html,
        }
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://gatehouse.example/";

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
                r.html.contains("Hello Ana &lt;b&gt;García&lt;/b&gt;,"),
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
    fn tokens_never_serialize() {
        let json = serde_json::to_string(&every_email()[0]).unwrap();
        assert!(!json.contains("tok123"), "{json}");
    }
}
