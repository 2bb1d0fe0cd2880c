//! The workers' side of requests: routing a filed request to its approvers, applying an
//! approved one (or failing it with the reason), reminders and expiry; and the emails
//! that tell everyone involved.

mod ports;

use super::request::parties::{self, email_to};
use super::{AppResult, service};
use crate::domain::request::{NotApplicable, Step};
use crate::domain::{AccountRequest, RequestId, Timestamp, UserId};
use crate::store::{Application, AuditEntry, NewDecision, StoreError, Transition};
use gatehouse_workers::{Email, Job, Outcome};

/// Requests handled per sweep, each of reminders and expiries.
const SWEEP_BATCH: i64 = 100;

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
    /// The system's own move of a request (routing, failing, expiring), with its event,
    /// audit event and jobs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn system_transition(
        &self,
        request: &AccountRequest,
        step: Step,
        note: Option<String>,
        failure_reason: Option<String>,
        approvers: Vec<UserId>,
        jobs: Vec<Job>,
    ) -> Transition {
        let at = self.now();
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
            jobs: crate::app::jobs::outbox(jobs),
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
        // By the role the requester had when filing: the filing was their decision (and
        // nobody is emailed until it is applied).
        if request.filed_by_owner {
            let requester = request.requested_by;
            let mut transition = self.system_transition(
                &request,
                Step::ApproveAsFiler,
                Some("Filed by an owner: the filing is their approval.".into()),
                None,
                Vec::new(),
                vec![Job::ApplyRequest {
                    request_id: request.id.0,
                }],
            );
            transition.actor_id = Some(requester);
            transition.audit.actor_id = Some(requester);
            transition.decision = Some(NewDecision {
                approver_id: requester,
                approved: true,
                comment: None,
                terms_accepted: request.terms_accepted,
            });
            return self.move_request(transition).await;
        }
        let parties = self.parties(&request).await?;
        let owners = self.store.owners(request.org_id).await?;
        let approvers = parties::eligible_approvers(&request, &owners, self.now());
        if approvers.is_empty() {
            let reason = "No active owner other than the requester and the subject can approve this request.".to_owned();
            let jobs = parties::outcome_emails(&request, &parties, Outcome::Failed, Some(&reason));
            let transition = self.system_transition(
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
        let transition = self.system_transition(
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
    /// Returns how long ago the request was filed when this call applied it.
    pub async fn apply_request(&self, id: RequestId) -> AppResult<Option<std::time::Duration>> {
        let Some(request) = self.store.request_anywhere(id).await? else {
            return Ok(None);
        };
        if !Step::Apply.allows(request.status) {
            return Ok(None);
        }
        let parties = self.parties(&request).await?;
        let application = Application {
            request_id: request.id,
            at: self.now(),
            jobs: crate::app::jobs::outbox(parties::outcome_emails(
                &request,
                &parties,
                Outcome::Applied,
                None,
            )),
        };
        let applied_at = application.at;
        let err = match self.store.apply_request(application).await {
            Ok(_) => return Ok((applied_at - request.created_at).to_std().ok()),
            Err(StoreError::NotFound) => return Ok(None),
            Err(err) => err,
        };
        let Some(reason) = failure_reason(&err) else {
            return Err(err.into());
        };
        let jobs = parties::outcome_emails(&request, &parties, Outcome::Failed, Some(&reason));
        let transition = self.system_transition(
            &request,
            Step::FailToApply,
            Some(reason.clone()),
            Some(reason),
            Vec::new(),
            jobs,
        );
        self.move_request(transition).await?;
        Ok(None)
    }

    /// Sends the one reminder of requests pending for the reminder time, and expires
    /// those pending past their expiry. Returns how many of each.
    pub async fn sweep_requests(&self) -> AppResult<(usize, usize)> {
        let at = self.now();
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
                .remind_request(request.id, at, crate::app::jobs::outbox(jobs))
                .await?
            {
                reminded += 1;
            }
        }
        for request in &expire {
            let parties = self.parties(request).await?;
            let reason = "No owner decided the request in time.".to_owned();
            let jobs = parties::outcome_emails(request, &parties, Outcome::Expired, Some(&reason));
            let transition =
                self.system_transition(request, Step::Expire, Some(reason), None, Vec::new(), jobs);
            self.move_request(transition).await?;
        }
        Ok((reminded, expire.len()))
    }
}
