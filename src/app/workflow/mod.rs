//! The workers' side of requests: routing a filed request to its approvers, applying an
//! approved one (or failing it with the reason), reminders and expiry; and the emails
//! that tell everyone involved.

pub mod jobs;
mod ports;

use super::{AppError, AppResult, service};
use crate::domain::request::{NotApplicable, Step};
use crate::domain::{AccountRequest, RequestId, Timestamp, User, UserId, UserStatus, now};
use crate::store::{Application, AuditEntry, NewDecision, StoreError, Transition};
use gatehouse_workers::{Email, Job, Outcome, RequestSummary};

/// Requests handled per sweep, each of reminders and expiries.
const SWEEP_BATCH: i64 = 100;

/// Everyone a request concerns, for its emails.
pub(in crate::app) struct Parties {
    organization: String,
    requester: User,
    subject: Option<User>,
    approvers: Vec<User>,
}

impl Parties {
    fn summary(&self, request: &AccountRequest) -> RequestSummary {
        RequestSummary {
            id: request.id.to_global(),
            description: request.describe(self.subject.as_ref().map(|s| s.username.as_str())),
            requested_by: self.requester.display_name(),
            organization: self.organization.clone(),
        }
    }

    /// Requester, subject and approvers, each once.
    fn everyone(&self) -> Vec<&User> {
        let mut people: Vec<&User> = std::iter::once(&self.requester)
            .chain(self.subject.as_ref())
            .chain(&self.approvers)
            .collect();
        let mut seen = std::collections::HashSet::new();
        people.retain(|u| seen.insert(u.id));
        people
    }
}

fn email_to(user: &User, email: Email) -> Job {
    Job::Email {
        to_name: user.display_name(),
        to_address: user.email.clone(),
        email,
    }
}

/// Why an approved request could not be applied, in words for its parties.
/// Why an approved change could not be applied, when it is the data's fault (not the
/// database's): worded once, in the domain.
fn failure_reason(err: &StoreError) -> Option<String> {
    let why = match err {
        StoreError::NoLicense { product, kind } => NotApplicable::NoLicense {
            product: *product,
            kind: *kind,
        },
        StoreError::LastOwner => NotApplicable::LastOwner,
        StoreError::NotApplicable(why) => why.clone(),
        _ => return None,
    };
    Some(why.to_string())
}

service!(
    /// The worker side of account requests: routing, applying, reminding, expiring; and
    /// the ports the workers use.
    Workflow
);

impl Workflow {
    /// Owners who could decide the request: active, unlocked, neither requester nor subject.
    pub(in crate::app) fn eligible_approvers(
        request: &AccountRequest,
        owners: &[User],
    ) -> Vec<User> {
        let at = now();
        owners
            .iter()
            .filter(|o| {
                o.status == UserStatus::Active && !o.is_locked(at) && !request.involves(o.id)
            })
            .cloned()
            .collect()
    }

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

    /// The system's own move of a request (routing, failing, expiring), with its event,
    /// audit event and jobs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn system_transition(
        request: &AccountRequest,
        step: Step,
        note: Option<String>,
        failure_reason: Option<String>,
        approvers: Vec<UserId>,
        jobs: Vec<Job>,
    ) -> Transition {
        let at = now();
        let mut audit =
            AuditEntry::new(request.org_id, at, step.audit_action()).details(serde_json::json!({
                "kind": request.kind().as_str(),
                "before": {"status": request.status.as_str()},
                "after": {"status": step.to().as_str()},
                "reason": failure_reason,
            }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        Transition {
            request_id: request.id,
            step,
            at,
            actor_id: None,
            note,
            failure_reason,
            decision: None,
            approver_must_be_owner: None,
            approvers,
            audit,
            jobs: jobs::outbox(jobs),
        }
    }

    /// Moves a request on; one that moved on meanwhile (cancelled, decided) is left alone.
    pub(super) async fn move_request(&self, transition: Transition) -> AppResult<()> {
        match self.store.transition_request(transition).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// The route job: an owner's filing is their approval; anyone else's goes to the
    /// organization's other active owners, or fails when there is none.
    pub async fn route_request(&self, id: RequestId) -> AppResult<()> {
        let Some(request) = self.store.request_anywhere(id).await? else {
            return Ok(());
        };
        if !Step::Route.allows(request.status) {
            return Ok(());
        }
        let parties = self.parties(&request).await?;
        let requester = &parties.requester;
        // By the role the requester had when filing: the filing was their decision.
        if request.filed_by_owner {
            let mut transition = Self::system_transition(
                &request,
                Step::ApproveAsFiler,
                Some("Filed by an owner: the filing is their approval.".into()),
                None,
                Vec::new(),
                vec![Job::ApplyRequest {
                    request_id: request.id.0,
                }],
            );
            transition.actor_id = Some(requester.id);
            transition.audit.actor_id = Some(requester.id);
            transition.decision = Some(NewDecision {
                approver_id: requester.id,
                approved: true,
                comment: None,
                terms_accepted: request.terms_accepted,
            });
            return self.move_request(transition).await;
        }
        let owners = self.store.owners(request.org_id).await?;
        let approvers = Self::eligible_approvers(&request, &owners);
        if approvers.is_empty() {
            let reason = "No active owner other than the requester and the subject can approve this request.".to_owned();
            let jobs = Self::outcome_emails(&request, &parties, Outcome::Failed, Some(&reason));
            let transition = Self::system_transition(
                &request,
                Step::FailUnroutable,
                Some(reason.clone()),
                Some(reason),
                Vec::new(),
                jobs,
            );
            return self.move_request(transition).await;
        }
        let summary = parties.summary(&request);
        let jobs = approvers
            .iter()
            .map(|a| {
                email_to(
                    a,
                    Email::ApprovalNeeded {
                        name: a.display_name(),
                        request: summary.clone(),
                    },
                )
            })
            .collect();
        let transition = Self::system_transition(
            &request,
            Step::Route,
            None,
            None,
            approvers.iter().map(|a| a.id).collect(),
            jobs,
        );
        self.move_request(transition).await
    }

    /// The apply job: re-checks and applies an approved request, or fails it with the
    /// reason; either way its parties are emailed. Applying twice changes nothing.
    pub async fn apply_request(&self, id: RequestId) -> AppResult<()> {
        let Some(request) = self.store.request_anywhere(id).await? else {
            return Ok(());
        };
        if !Step::Apply.allows(request.status) {
            return Ok(());
        }
        let parties = self.parties(&request).await?;
        let application = Application {
            request_id: request.id,
            at: now(),
            jobs: jobs::outbox(Self::outcome_emails(
                &request,
                &parties,
                Outcome::Applied,
                None,
            )),
        };
        let err = match self.store.apply_request(application).await {
            Ok(_) | Err(StoreError::NotFound) => return Ok(()),
            Err(err) => err,
        };
        let Some(reason) = failure_reason(&err) else {
            return Err(err.into());
        };
        let jobs = Self::outcome_emails(&request, &parties, Outcome::Failed, Some(&reason));
        let transition = Self::system_transition(
            &request,
            Step::FailToApply,
            Some(reason.clone()),
            Some(reason),
            Vec::new(),
            jobs,
        );
        self.move_request(transition).await
    }

    /// Sends the one reminder of requests pending for the reminder time, and expires
    /// those pending past their expiry. Returns how many of each.
    pub async fn sweep_requests(&self) -> AppResult<(usize, usize)> {
        let at = now();
        let reminder = chrono::TimeDelta::from_std(self.config.request_reminder)
            .unwrap_or(chrono::TimeDelta::MAX);
        let created_before = at
            .checked_sub_signed(reminder)
            .unwrap_or(Timestamp::MIN_UTC);
        let (remind, expire) = self
            .store
            .due_requests(at, created_before, SWEEP_BATCH)
            .await?;
        let mut reminded = 0;
        for request in &remind {
            let parties = self.parties(request).await?;
            let summary = parties.summary(request);
            let waiting_days = (at - request.created_at).num_days().max(0) as u64;
            let jobs = parties
                .approvers
                .iter()
                .map(|a| {
                    email_to(
                        a,
                        Email::ApprovalReminder {
                            name: a.display_name(),
                            request: summary.clone(),
                            waiting_days,
                        },
                    )
                })
                .collect();
            if self
                .store
                .remind_request(request.id, at, jobs::outbox(jobs))
                .await?
            {
                reminded += 1;
            }
        }
        for request in &expire {
            let parties = self.parties(request).await?;
            let reason = "No owner decided the request in time.".to_owned();
            let jobs = Self::outcome_emails(request, &parties, Outcome::Expired, Some(&reason));
            let transition = Self::system_transition(
                request,
                Step::Expire,
                Some(reason),
                None,
                Vec::new(),
                jobs,
            );
            self.move_request(transition).await?;
        }
        Ok((reminded, expire.len()))
    }
}
