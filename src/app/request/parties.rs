//! Everyone a request concerns (requester, subject, approvers) and the emails that tell
//! them its outcome; shared by deciding and by the workers' side.

use crate::app::{AppError, AppResult, Shared};
use crate::domain::{AccountRequest, Timestamp, User, UserId, UserStatus};
use gatehouse_workers::{Email, Job, Outcome, RequestSummary};

/// Everyone a request concerns, for its emails.
pub(in crate::app) struct Parties {
    pub(in crate::app) organization: String,
    pub(in crate::app) requester: User,
    pub(in crate::app) subject: Option<User>,
    pub(in crate::app) approvers: Vec<User>,
}

impl Parties {
    pub(in crate::app) fn summary(&self, request: &AccountRequest) -> RequestSummary {
        RequestSummary {
            id: request.id.to_global(),
            description: request.describe(self.subject.as_ref().map(|s| s.username.as_str())),
            requested_by: self.requester.display_name(),
            organization: self.organization.clone(),
        }
    }

    /// Requester, subject and approvers, each once.
    pub(in crate::app) fn everyone(&self) -> Vec<&User> {
        let mut people: Vec<&User> = std::iter::once(&self.requester)
            .chain(self.subject.as_ref())
            .chain(&self.approvers)
            .collect();
        let mut seen = std::collections::HashSet::new();
        people.retain(|u| seen.insert(u.id));
        people
    }
}

pub(in crate::app) fn email_to(user: &User, email: Email) -> Job {
    Job::Email {
        org_id: Some(user.org_id.0),
        to_name: user.display_name(),
        to_address: user.email.clone(),
        email,
    }
}

/// Owners who could decide the request: active, unlocked, neither requester nor subject.
pub(in crate::app) fn eligible_approvers(
    request: &AccountRequest,
    owners: &[User],
    at: Timestamp,
) -> Vec<User> {
    owners
        .iter()
        .filter(|o| o.status == UserStatus::Active && !o.is_locked(at) && !request.involves(o.id))
        .cloned()
        .collect()
}

pub(in crate::app) fn outcome_emails(
    request: &AccountRequest,
    parties: &Parties,
    outcome: Outcome,
    reason: Option<&str>,
) -> Vec<Job> {
    let summary = parties.summary(request);
    parties
        .everyone()
        .into_iter()
        .map(|user| {
            email_to(
                user,
                Email::RequestOutcome {
                    name: user.display_name(),
                    request: summary.clone(),
                    outcome,
                    reason: reason.map(str::to_owned),
                },
            )
        })
        .collect()
}

impl Shared {
    pub(in crate::app) async fn parties(&self, request: &AccountRequest) -> AppResult<Parties> {
        let organization = self.store.organization(request.org_id).await?.name;
        let routed = self.store.routed_approvers(request.id).await?;
        let mut ids = vec![request.requested_by];
        ids.extend(request.subject_id);
        ids.extend(&routed);
        let users = self.store.users_by_ids(request.org_id, &ids).await?;
        let find = |id: UserId| users.iter().find(|u| u.id == id).cloned();
        let requester = find(request.requested_by).ok_or_else(|| {
            AppError::Unexpected(anyhow::anyhow!("request {} has no requester", request.id))
        })?;
        Ok(Parties {
            organization,
            requester,
            subject: request.subject_id.and_then(find),
            approvers: routed.into_iter().filter_map(find).collect(),
        })
    }
}
