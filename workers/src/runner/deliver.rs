//! Sending one email of a job: rendered, claimed, sent once, recorded.

use super::{Failure, Workers, transient};
use crate::mailer::SendError;
use crate::ports::Recipient;
use crate::templates::{Brand, Email};
use std::time::Duration;

/// How long an email's claim holds without renewal.
const CLAIM_LEASE: Duration = Duration::from_secs(15);

impl Workers {
    /// Sends once: the delivery is claimed before sending (and the claim renewed while
    /// the mail server takes its time), so that two runs of one job at the same moment
    /// send it once; the other run retries later and finds it handled. A run that died
    /// mid-send stops renewing, and its claim goes stale for the retry to take over.
    pub(super) async fn deliver(
        &self,
        key: &str,
        to: &Recipient,
        email: &Email,
    ) -> Result<(), Failure> {
        let brand = Brand {
            organization: to.organization.clone(),
            support: self.settings.support_contact.clone(),
        };
        // Templates are tried on every kind of email when loaded; one that still fails
        // here (on this email's data) is recorded as a failed delivery, not retried.
        let rendered = match self.templates.render(email, &brand) {
            Ok(rendered) => rendered,
            Err(err) => {
                self.metrics.emails.with_label_values(&["failed"]).inc();
                let reason = format!("cannot render the email: {err}");
                self.ports
                    .record_email(key, &to.address, email.template(), Some(&reason))
                    .await
                    .map_err(transient)?;
                return Err(Failure::Permanent(reason));
            }
        };
        if !self
            .ports
            .claim_email(key, CLAIM_LEASE)
            .await
            .map_err(transient)?
        {
            return Err(Failure::Transient(
                "another run of this job is sending the email".into(),
            ));
        }
        let span = tracing::info_span!("email", template = email.template());
        let send = tracing::Instrument::instrument(
            self.mailer.send(key, &to.name, &to.address, &rendered),
            span,
        );
        let renew = async {
            loop {
                tokio::time::sleep(CLAIM_LEASE / 3).await;
                if let Err(err) = self.ports.renew_email_claim(key).await {
                    tracing::warn!(%key, error = %err, "cannot renew the email's claim");
                }
            }
        };
        let sent = tokio::select! {
            sent = send => sent,
            () = renew => unreachable!("renewing never ends"),
        };
        if matches!(sent, Err(SendError::Transient(_)))
            && let Err(err) = self.ports.release_email_claim(key).await
        {
            tracing::warn!(%key, error = %err, "cannot release the email's claim; it goes stale");
        }
        let outcome = match &sent {
            Ok(()) => "sent",
            Err(SendError::Permanent(_)) => "failed",
            Err(SendError::Transient(_)) => "retrying",
        };
        self.metrics.emails.with_label_values(&[outcome]).inc();
        match sent {
            Ok(()) => {
                tracing::info!(%key, template = email.template(), "email sent");
                // Sent but not recorded (the database is down): a rerun may send it again;
                // retrying the record is the best that can be done without two-phase commit.
                self.ports
                    .record_email(key, &to.address, email.template(), None)
                    .await
                    .map_err(transient)
            }
            Err(SendError::Permanent(reason)) => {
                self.ports
                    .record_email(key, &to.address, email.template(), Some(&reason))
                    .await
                    .map_err(transient)?;
                Err(Failure::Permanent(reason))
            }
            Err(SendError::Transient(reason)) => Err(Failure::Transient(reason)),
        }
    }
}
