//! Deciding (approve, reject) and cancelling: the first decision wins, by a move the store
//! makes only from PENDING_APPROVAL, and only while the decider is an active owner.

use super::parties;
use super::*;

impl Requests {
    pub async fn approve(
        &self,
        actor: &Actor,
        id: ClientId<RequestId>,
        comment: Option<String>,
        accept_terms: Option<bool>,
    ) -> AppResult<AccountRequest> {
        let request = self.decidable(actor, id).await?;
        if needs_terms(request.kind()) && accept_terms != Some(true) {
            return Err(DomainError::new(
                ErrorCode::TermsNotAccepted,
                "Accept the terms (acceptTerms: true) to authorize this addition to your invoice.",
            )
            .on("acceptTerms")
            .into());
        }
        let comment = note("comment", comment)?;
        let decision = NewDecision {
            approver_id: actor.user.id,
            approved: true,
            comment: comment.clone(),
            terms_accepted: accept_terms == Some(true),
        };
        self.decide(
            actor,
            &request,
            decision,
            Step::Approve,
            comment,
            vec![Job::ApplyRequest {
                request_id: request.id.0,
            }],
        )
        .await
    }

    pub async fn reject(
        &self,
        actor: &Actor,
        id: ClientId<RequestId>,
        reason: String,
    ) -> AppResult<AccountRequest> {
        let request = self.decidable(actor, id).await?;
        let reason = note("reason", Some(reason))?
            .ok_or_else(|| DomainError::invalid("reason", "Give the reason for the rejection."))?;
        let parties = self.parties(&request).await?;
        let jobs = parties::outcome_emails(&request, &parties, Outcome::Rejected, Some(&reason));
        let decision = NewDecision {
            approver_id: actor.user.id,
            approved: false,
            comment: Some(reason.clone()),
            terms_accepted: false,
        };
        self.decide(actor, &request, decision, Step::Reject, Some(reason), jobs)
            .await
    }

    /// A request the caller may decide now.
    async fn decidable(&self, actor: &Actor, id: ClientId<RequestId>) -> AppResult<AccountRequest> {
        actor.require(Action::DecideRequest)?;
        // A session opened before a lock does not let a locked owner decide.
        if actor.user.is_locked(self.now()) {
            return Err(AppError::Forbidden);
        }
        let request = self.request_for(actor, id).await?;
        match may_decide(&request, actor.user.id, self.now()) {
            Ok(()) => Ok(request),
            Err(NotDecidable::Involved) => Err(DomainError::new(
                ErrorCode::SelfApprovalNotAllowed,
                "You filed this request or it is about you: another owner must decide it.",
            )
            .on("requestId")
            .into()),
            Err(NotDecidable::NotAwaiting) => Err(invalid_state(&request)),
        }
    }

    async fn decide(
        &self,
        actor: &Actor,
        request: &AccountRequest,
        decision: NewDecision,
        step: Step,
        note: Option<String>,
        jobs: Vec<Job>,
    ) -> AppResult<AccountRequest> {
        let to = step.to();
        let mut audit = actor.audit(step.audit_action()).details(serde_json::json!({
            "kind": request.kind().as_str(),
            "before": {"status": request.status.as_str()},
            "after": {"status": to.as_str()},
            "termsAccepted": decision.terms_accepted,
        }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        let transition = Transition {
            request_id: request.id,
            step,
            at: audit.at,
            actor_id: Some(actor.user.id),
            note,
            failure_reason: None,
            decision: Some(decision),
            approver_must_be_owner: Some(actor.user.id),
            approvers: Vec::new(),
            audit,
            jobs: crate::app::jobs::outbox(jobs),
        };
        match self.store.transition_request(transition).await {
            Err(StoreError::Conflict(_)) => Err(DomainError::new(
                ErrorCode::InvalidState,
                "The request has already been decided.",
            )
            .on("requestId")
            .into()),
            other => Ok(other?),
        }
    }

    pub async fn cancel(
        &self,
        actor: &Actor,
        id: ClientId<RequestId>,
    ) -> AppResult<AccountRequest> {
        let request = self.request_for(actor, id).await?;
        if request.requested_by != actor.user.id {
            actor.require(Action::CancelAnyRequest)?;
        }
        if !request.may_be_cancelled() {
            return Err(invalid_state(&request));
        }
        let mut audit = actor
            .audit(Step::Cancel.audit_action())
            .details(serde_json::json!({
                "kind": request.kind().as_str(),
                "before": {"status": request.status.as_str()},
                "after": {"status": "CANCELLED"},
            }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        let transition = Transition {
            request_id: request.id,
            step: Step::Cancel,
            at: audit.at,
            actor_id: Some(actor.user.id),
            note: None,
            failure_reason: None,
            decision: None,
            approver_must_be_owner: None,
            approvers: Vec::new(),
            audit,
            jobs: Vec::new(),
        };
        match self.store.transition_request(transition).await {
            Err(StoreError::Conflict(_)) => Err(DomainError::new(
                ErrorCode::InvalidState,
                "The request was decided meanwhile.",
            )
            .on("requestId")
            .into()),
            other => Ok(other?),
        }
    }
}
