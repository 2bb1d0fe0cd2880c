//! The workers' ports, implemented on the store: the outbox, setup tokens, email records
//! and the periodic sweep.

use super::Workflow;
use crate::app::crypto::new_token;
use crate::app::jobs::domain_purpose;
use crate::domain::{OrgId, RequestId, UserId};
use crate::store::{AuditEntry, EmailDelivery, NewSetupToken, StoreError};
use async_trait::async_trait;
use gatehouse_workers::{Email, OutboxItem, PortError, Ports, Recipient, SetupPurpose, Traced};
use std::time::Duration;

impl Workflow {
    fn later(&self, by: Duration) -> crate::domain::Timestamp {
        crate::app::identity::session::later(self.now(), by)
    }
}

#[async_trait]
impl Ports for Workflow {
    async fn claim_outbox(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, PortError> {
        let jobs = self
            .store
            .claim_jobs(self.now(), self.later(lease), limit)
            .await?;
        Ok(jobs
            .into_iter()
            .map(|j| {
                let traced: Traced = serde_json::from_str(&j.message.payload)
                    .map_err(|e| format!("outbox row {} holds no job: {e}", j.id))?;
                Ok(OutboxItem {
                    id: j.id,
                    job: traced.job,
                    request_id: traced.request_id,
                })
            })
            .collect::<Result<_, String>>()?)
    }

    fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.store.outbox_signal()
    }

    async fn mark_relayed(&self, ids: &[i64]) -> Result<(), PortError> {
        Ok(self.store.mark_jobs_relayed(ids, self.now()).await?)
    }

    async fn relay_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), PortError> {
        Ok(self
            .store
            .job_relay_failed(id, error, self.later(retry_in))
            .await?)
    }

    async fn setup_email(
        &self,
        user_id: i64,
        purpose: SetupPurpose,
        self_requested: bool,
    ) -> Result<Option<(Recipient, Email)>, PortError> {
        let (token, token_hash) = new_token();
        let at = self.now();
        let ttl = self.config.setup_token_ttl;
        let new = NewSetupToken {
            user_id: UserId(user_id),
            token_hash,
            purpose: domain_purpose(purpose),
            self_requested,
            created_at: at,
            expires_at: self.later(ttl),
        };
        let audit = AuditEntry::new(Default::default(), at, "user.setup_email_sent").details(
            serde_json::json!({
                "purpose": purpose.as_str(),
                "selfRequested": self_requested,
            }),
        );
        let Some((user, organization)) = self.store.issue_setup_token(new, audit).await? else {
            return Ok(None);
        };
        let valid_hours = ttl.as_secs().div_ceil(3600);
        let name = user.display_name();
        let email = match purpose {
            SetupPurpose::Invitation => Email::AccountSetupInvitation {
                name,
                username: user.username.clone(),
                organization: organization.clone(),
                token,
                valid_hours,
            },
            SetupPurpose::Reset => Email::AccountSetupReset {
                name,
                username: user.username.clone(),
                token,
                valid_hours,
            },
        };
        Ok(Some((
            Recipient {
                name: user.display_name(),
                address: user.email,
                organization,
            },
            email,
        )))
    }

    async fn organization_name(&self, org_id: i64) -> Result<Option<String>, PortError> {
        match self.store.organization(OrgId(org_id)).await {
            Ok(org) => Ok(Some(org.name)),
            Err(StoreError::NotFound) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn email_handled(&self, key: &str) -> Result<bool, PortError> {
        Ok(self.store.email_handled(key).await?)
    }

    async fn claim_email(&self, key: &str, lease: Duration) -> Result<bool, PortError> {
        let at = self.now();
        let stale_before = at - chrono::TimeDelta::from_std(lease).unwrap_or_default();
        Ok(self.store.claim_email(key, at, stale_before).await?)
    }

    async fn renew_email_claim(&self, key: &str) -> Result<(), PortError> {
        Ok(self.store.renew_email_claim(key, self.now()).await?)
    }

    async fn release_email_claim(&self, key: &str) -> Result<(), PortError> {
        Ok(self.store.release_email_claim(key).await?)
    }

    async fn record_email(
        &self,
        key: &str,
        recipient: &str,
        template: &str,
        failure: Option<&str>,
    ) -> Result<(), PortError> {
        let delivery = EmailDelivery {
            key: key.to_owned(),
            recipient: recipient.to_owned(),
            template: template.to_owned(),
            failure: failure.map(str::to_owned),
            at: self.now(),
        };
        Ok(self.store.record_email(delivery).await?)
    }

    async fn route_request(&self, request_id: i64) -> Result<(), PortError> {
        Ok(Workflow::route_request(self, RequestId(request_id)).await?)
    }

    async fn apply_request(&self, request_id: i64) -> Result<Option<Duration>, PortError> {
        Ok(Workflow::apply_request(self, RequestId(request_id)).await?)
    }

    async fn sweep(&self) -> Result<(), PortError> {
        let (sessions, tokens) = self
            .store
            .expire_credentials(self.now(), self.config.session_idle)
            .await?;
        if sessions + tokens > 0 {
            tracing::info!(sessions, tokens, "expired sessions and setup tokens");
        }
        self.store.compact().await?;
        let (reminded, expired) = self.sweep_requests().await?;
        if reminded + expired > 0 {
            tracing::info!(reminded, expired, "reminded and expired pending requests");
        }
        Ok(())
    }
}
