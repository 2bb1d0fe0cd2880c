//! The Mailer: one lettre SMTP transport (pooled, plain, STARTTLS or implicit TLS) built at
//! start-up, or, with no SMTP configured, a folder that receives each email as a `.eml` file.

use crate::templates::Rendered;
use crate::tls::TrustedCa;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Why an email was not sent: worth trying again later, or never.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server is unreachable or answered 4xx: retry with backoff.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// 5xx or an address that cannot be used: stop and record.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// A mail setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailerError(String);

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// Builds the transport once. `smtp_url` unset: emails go to `outbox_dir`.
    pub fn new(
        smtp_url: Option<&str>,
        outbox_dir: PathBuf,
        from: &str,
        ca: Option<&TrustedCa>,
    ) -> Result<Self, MailerError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailerError(format!("GATEHOUSE_MAIL_FROM: {e}")))?;
        let transport = match smtp_url {
            None => Transport::Folder(outbox_dir),
            Some(url) => Transport::Smtp(
                smtp_transport(url, ca)
                    .map_err(|e| MailerError(format!("GATEHOUSE_SMTP_URL: {e}")))?,
            ),
        };
        Ok(Self { transport, from })
    }

    /// Where emails go, for logs (never the password).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP".into(),
            Transport::Folder(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends one email. `key` identifies it: it becomes the Message-ID (on the sender's
    /// domain) and, for the folder, the file name, so a repeat of the same email is
    /// recognisable. Every message carries its Date.
    pub async fn send(
        &self,
        key: &str,
        to_name: &str,
        to_address: &str,
        email: &Rendered,
    ) -> Result<(), SendError> {
        let to = Mailbox::new(
            Some(to_name.to_owned()),
            to_address.parse().map_err(|e| {
                SendError::Permanent(format!("invalid address {to_address:?}: {e}"))
            })?,
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!(
                "<{key}.gatehouse@{}>",
                self.from.email.domain()
            )))
            .date_now()
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                let text = e.to_string();
                // A relay that no longer offers STARTTLS may be one whose offer is being
                // stripped on the way: never plain text, try again later.
                let tls_withheld = text.contains("STARTTLS");
                if (e.is_permanent() || e.is_client()) && !tls_withheld {
                    SendError::Permanent(text)
                } else {
                    SendError::Transient(text)
                }
            }),
            Transport::Folder(dir) => write_eml(dir, key, &message.formatted()).await,
        }
    }
}

/// Writes atomically (temp file, then rename) so a reader never sees half an email.
async fn write_eml(dir: &std::path::Path, key: &str, bytes: &[u8]) -> Result<(), SendError> {
    let transient =
        |e: std::io::Error| SendError::Transient(format!("cannot write to {}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(transient)?;
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await.map_err(transient)?;
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml")))
        .await
        .map_err(transient)
}

/// The transport of an SMTP URL: `smtps://` (implicit TLS), `smtp://…?tls=starttls`
/// (STARTTLS required, never plain text), or `smtp://` (plain, for a relay on the host).
/// TLS verifies the server against the public roots and the private CA when given.
fn smtp_transport(
    url: &str,
    ca: Option<&TrustedCa>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("needs a host")?.to_owned();
    let tls_mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let tls_params = || {
        let mut params = TlsParameters::builder(host.clone());
        if let Some(ca) = ca {
            let certificate = Certificate::from_pem(ca.pem()).map_err(|e| e.to_string())?;
            params = params.add_root_certificate(certificate);
        }
        params.build_rustls().map_err(|e| e.to_string())
    };
    let (tls, default_port) = match (parsed.scheme(), tls_mode.as_deref()) {
        ("smtps", _) => (Tls::Wrapper(tls_params()?), 465),
        ("smtp", Some("starttls" | "required")) => (Tls::Required(tls_params()?), 587),
        ("smtp", None | Some("none")) => (Tls::None, 25),
        (scheme, mode) => return Err(format!("unsupported scheme {scheme} with tls={mode:?}")),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(parsed.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(Duration::from_secs(20)))
        .pool_config(PoolConfig::new().max_size(8));
    if !parsed.username().is_empty() {
        let user = percent_decode(parsed.username());
        let password = percent_decode(parsed.password().unwrap_or_default());
        builder = builder.credentials(Credentials::new(user, password));
    }
    Ok(builder.build())
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_urls_of_every_kind_build() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com:587?tls=starttls",
            "smtps://user:p%40ss@mail.example.com",
        ] {
            assert!(smtp_transport(url, None).is_ok(), "{url}");
        }
        assert!(smtp_transport("smtp://mail.example.com?tls=sometimes", None).is_err());
    }

    #[tokio::test]
    async fn without_smtp_each_email_is_a_complete_eml_file() {
        let dir = std::env::temp_dir().join(format!("gatehouse-mailer-{}", std::process::id()));
        let mailer =
            Mailer::new(None, dir.clone(), "Gatehouse <no-reply@localhost>", None).unwrap();
        let email = Rendered {
            subject: "Hi".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
        };
        mailer
            .send("outbox-1", "Ana", "ana@example.com", &email)
            .await
            .unwrap();
        let eml = std::fs::read_to_string(dir.join("outbox-1.eml")).unwrap();
        assert!(
            eml.contains("To: \"Ana\" <ana@example.com>")
                || eml.contains("To: Ana <ana@example.com>"),
            "{eml}"
        );
        assert!(
            eml.contains("Message-ID: <outbox-1.gatehouse@localhost>"),
            "{eml}"
        );
        assert!(eml.contains("\r\nDate: "), "{eml}");
        assert!(
            eml.contains("multipart/alternative")
                && eml.contains("plain body")
                && eml.contains("html body")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn invalid_addresses_are_permanent_failures() {
        let mailer = Mailer::new(
            None,
            std::env::temp_dir(),
            "Gatehouse <no-reply@localhost>",
            None,
        )
        .unwrap();
        let email = Rendered {
            subject: "Hi".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let err = mailer
            .send("k", "X", "not an address", &email)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    }
}
