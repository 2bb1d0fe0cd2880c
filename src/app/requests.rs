//! Account requests: filing, deciding, cancelling and listing them; and the workers' side,
//! routing each to its approvers, applying approved ones, reminding and expiring.

use super::directory::{Page, decode_cursor, encode_cursor, page_size};
use super::policy::Action;
use super::session::later;
use super::{Actor, App, AppError, AppResult};
use crate::domain::request::{audit_action, needs_terms};
use crate::domain::{
    AccountRequest, DomainError, ErrorCode, LicenseChange, Permission, PermissionChange, Product,
    RequestId, RequestKind, RequestStatus, Role, Timestamp, User, UserId, UserKind, UserStatus,
    now,
};
use crate::store::{
    Application, AuditEntry, Filing, NewDecision, NewRequest, RequestQuery, StoreError, Transition,
};
use gatehouse_workers::{Email, Job, Outcome, RequestSummary};

/// Longest justification, reason or comment kept.
const MAX_NOTE: usize = 2000;
/// How long an idempotency key returns the first request.
const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Requests handled per sweep, each of reminders and expiries.
const SWEEP_BATCH: i64 = 100;

/// `requestLicenses` as typed.
#[derive(Debug, Clone)]
pub struct LicenseRequest {
    pub product: Product,
    pub kind: UserKind,
    pub quantity: i32,
    pub justification: Option<String>,
    pub accept_terms: Option<bool>,
    pub idempotency_key: Option<String>,
}

/// `requestPermissionChange` as typed.
#[derive(Debug, Clone)]
pub struct PermissionRequest {
    pub user_id: UserId,
    pub grant: Vec<Permission>,
    pub revoke: Vec<Permission>,
    pub role: Option<Role>,
    pub justification: Option<String>,
    pub idempotency_key: Option<String>,
}

/// `requestInactivation` as typed.
#[derive(Debug, Clone)]
pub struct InactivationRequest {
    pub user_id: UserId,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

/// What `requests` filters on.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    pub subject_id: Option<String>,
    pub awaiting_my_decision: Option<bool>,
}

/// The outcome of filing: the request, or the open request that stands in its way.
#[derive(Debug, Clone)]
pub enum Filed {
    Request(AccountRequest),
    AlreadyOpen(AccountRequest, DomainError),
}

/// Everyone a request concerns, for its emails.
struct Parties {
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

/// Trims a free-text note; blank is none; too long is refused.
fn note(field: &'static str, text: Option<String>) -> AppResult<Option<String>> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_NOTE {
        return Err(
            DomainError::invalid(field, format!("Keep it under {MAX_NOTE} characters.")).into(),
        );
    }
    Ok(Some(text))
}

fn idempotency_key(key: Option<String>) -> AppResult<Option<String>> {
    let Some(key) = key.map(|k| k.trim().to_owned()) else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > 128 {
        return Err(DomainError::invalid(
            "idempotencyKey",
            "An idempotency key has 1 to 128 characters.",
        )
        .into());
    }
    Ok(Some(key))
}

fn not_found(field: &'static str) -> AppError {
    DomainError::new(ErrorCode::NotFound, "No such request.")
        .on(field)
        .into()
}

fn last_owner(user: &User) -> AppError {
    DomainError::new(
        ErrorCode::LastOwner,
        format!(
            "{} is the organization's last active owner: make someone else an owner first.",
            user.username
        ),
    )
    .on("userId")
    .into()
}

/// Why an approved request could not be applied, in words for its parties.
fn failure_reason(err: &StoreError) -> Option<String> {
    match err {
        StoreError::NoLicense { product, kind } => Some(format!(
            "No {product} license is available for {kind} users."
        )),
        StoreError::LastOwner => {
            Some("The change would leave the organization without an active owner.".to_owned())
        }
        StoreError::Conflict(reason) => Some(reason.clone()),
        _ => None,
    }
}

impl App {
    /// Whether the caller may see the request: staff with oversight see all, members
    /// those filed by or about themselves.
    fn may_see(actor: &Actor, request: &AccountRequest) -> bool {
        actor.may(Action::SeeAllRequests) || request.involves(actor.user.id)
    }

    /// A request the caller may see; anything else is as unknown as a missing one.
    pub async fn request(&self, actor: &Actor, id: RequestId) -> AppResult<Option<AccountRequest>> {
        let request = self.store.request(actor.org_id(), id).await?;
        Ok(request.filter(|r| Self::may_see(actor, r)))
    }

    async fn request_for(&self, actor: &Actor, id: &str) -> AppResult<AccountRequest> {
        let id = RequestId::from_global(id).ok_or_else(|| not_found("requestId"))?;
        self.request(actor, id)
            .await?
            .ok_or_else(|| not_found("requestId"))
    }

    /// The requests the caller may see, newest first.
    pub async fn requests(
        &self,
        actor: &Actor,
        filter: RequestFilter,
        first: Option<i32>,
        after: Option<String>,
        with_total: bool,
    ) -> AppResult<Page<AccountRequest>> {
        let size = page_size(first, self.config.limits.max_page_size)?;
        let before_id = match after.as_deref().map(decode_cursor).transpose()? {
            Some(key) => Some(key.parse::<i64>().map_err(|_| {
                AppError::BadUserInput("`after` is not a cursor from this list.".into())
            })?),
            None => None,
        };
        let awaiting = filter.awaiting_my_decision == Some(true);
        if awaiting && !actor.may(Action::DecideRequest) {
            // Only owners ever decide.
            return Ok(Page {
                items: Vec::new(),
                has_next: false,
                total: Some(0),
            });
        }
        let query = RequestQuery {
            org_id: actor.org_id(),
            status: filter.status,
            kind: filter.kind,
            subject_id: filter
                .subject_id
                .as_deref()
                .map(|id| UserId::from_global(id).map_or(-1, |u| u.0)),
            involving: (!actor.may(Action::SeeAllRequests)).then_some(actor.user.id),
            awaiting: awaiting.then_some(actor.user.id),
            before_id,
            limit: size as i64 + 1,
            with_total,
        };
        let (mut requests, total) = self.store.requests(query).await?;
        let has_next = requests.len() > size;
        requests.truncate(size);
        Ok(Page {
            items: requests
                .into_iter()
                .map(|r| (encode_cursor(&r.id.0.to_string()), r))
                .collect(),
            has_next,
            total,
        })
    }

    /// Users who may decide the request now: active, unlocked owners who neither filed it
    /// nor are its subject.
    pub fn current_approvers(request: &AccountRequest, owners: &[User]) -> Vec<User> {
        if request.status != RequestStatus::PendingApproval {
            return Vec::new();
        }
        Self::eligible_approvers(request, owners)
    }

    /// Owners who could decide the request: active, unlocked, neither requester nor subject.
    fn eligible_approvers(request: &AccountRequest, owners: &[User]) -> Vec<User> {
        let at = now();
        owners
            .iter()
            .filter(|o| {
                o.status == UserStatus::Active && !o.is_locked(at) && !request.involves(o.id)
            })
            .cloned()
            .collect()
    }

    pub async fn request_licenses(&self, actor: &Actor, input: LicenseRequest) -> AppResult<Filed> {
        actor.require(Action::RequestLicenses)?;
        if !(1..=500).contains(&input.quantity) {
            return Err(DomainError::invalid("quantity", "Ask for 1 to 500 licenses.").into());
        }
        let owner = actor.user.role == Role::Owner;
        if owner && input.accept_terms != Some(true) {
            return Err(DomainError::new(
                ErrorCode::TermsNotAccepted,
                "As an owner, accept the terms (acceptTerms: true) to authorize this addition to your invoice.",
            )
            .on("acceptTerms")
            .into());
        }
        let new = self.new_request(
            actor,
            RequestKind::AddLicenses,
            None,
            note("justification", input.justification)?,
            idempotency_key(input.idempotency_key)?,
        );
        self.file(NewRequest {
            license_change: Some(LicenseChange {
                product: input.product,
                kind: input.kind,
                quantity: input.quantity,
            }),
            terms_accepted: owner,
            ..new
        })
        .await
    }

    pub async fn request_permission_change(
        &self,
        actor: &Actor,
        input: PermissionRequest,
    ) -> AppResult<Filed> {
        actor.require(Action::RequestPermissionChange)?;
        let mut change = PermissionChange {
            grant: input.grant,
            revoke: input.revoke,
            role: input.role,
        };
        for list in [&mut change.grant, &mut change.revoke] {
            list.sort();
            list.dedup();
        }
        if change.grant.iter().any(|p| change.revoke.contains(p)) {
            return Err(DomainError::invalid(
                "grant",
                "A permission cannot be both granted and revoked.",
            )
            .into());
        }
        if change.grant.is_empty() && change.revoke.is_empty() && change.role.is_none() {
            return Err(DomainError::invalid(
                "grant",
                "Say what to change: permissions to grant or revoke, or a role.",
            )
            .into());
        }
        let subject = self.subject(actor, input.user_id).await?;
        if subject.status == UserStatus::Inactive {
            return Err(DomainError::new(
                ErrorCode::InvalidState,
                format!("{} is inactive.", subject.username),
            )
            .on("userId")
            .into());
        }
        if subject.role == Role::Owner
            && change.role.is_some_and(|r| r != Role::Owner)
            && self.is_last_active_owner(&subject).await?
        {
            return Err(last_owner(&subject));
        }
        let new = self.new_request(
            actor,
            RequestKind::ChangePermissions,
            Some(subject.id),
            note("justification", input.justification)?,
            idempotency_key(input.idempotency_key)?,
        );
        self.file(NewRequest {
            permission_change: Some(change),
            ..new
        })
        .await
    }

    pub async fn request_inactivation(
        &self,
        actor: &Actor,
        input: InactivationRequest,
    ) -> AppResult<Filed> {
        actor.require_on(
            input.user_id,
            Action::RequestOwnInactivation,
            Action::RequestInactivation,
        )?;
        let subject = self.subject(actor, input.user_id).await?;
        if subject.status == UserStatus::Inactive {
            return Err(DomainError::new(
                ErrorCode::InvalidState,
                format!("{} is already inactive.", subject.username),
            )
            .on("userId")
            .into());
        }
        if subject.role == Role::Owner && self.is_last_active_owner(&subject).await? {
            return Err(last_owner(&subject));
        }
        let new = self.new_request(
            actor,
            RequestKind::InactivateUser,
            Some(subject.id),
            note("reason", input.reason)?,
            idempotency_key(input.idempotency_key)?,
        );
        self.file(new).await
    }

    /// Files REACTIVATE_PROVIDER for an inactive provider (reactivateUsers), or finds the
    /// one already open.
    pub(crate) async fn request_reactivation(
        &self,
        actor: &Actor,
        subject: &User,
        products: &[Product],
    ) -> AppResult<AccountRequest> {
        let new = self.new_request(
            actor,
            RequestKind::ReactivateProvider,
            Some(subject.id),
            None,
            None,
        );
        match self
            .file(NewRequest {
                products: products.to_vec(),
                ..new
            })
            .await?
        {
            Filed::Request(request) | Filed::AlreadyOpen(request, _) => Ok(request),
        }
    }

    async fn subject(&self, actor: &Actor, id: UserId) -> AppResult<User> {
        self.user(actor, id).await?.ok_or_else(|| {
            DomainError::new(ErrorCode::NotFound, "No such user.")
                .on("userId")
                .into()
        })
    }

    async fn is_last_active_owner(&self, user: &User) -> AppResult<bool> {
        if user.status != UserStatus::Active {
            return Ok(false);
        }
        let owners = self.store.owners(user.org_id).await?;
        Ok(!owners
            .iter()
            .any(|o| o.id != user.id && o.status == UserStatus::Active))
    }

    pub(super) fn new_request(
        &self,
        actor: &Actor,
        kind: RequestKind,
        subject: Option<UserId>,
        justification: Option<String>,
        idempotency_key: Option<String>,
    ) -> NewRequest {
        let at = now();
        let mut audit = actor
            .audit(audit_action(RequestStatus::Submitted))
            .details(serde_json::json!({ "kind": kind.as_str() }));
        audit.at = at;
        NewRequest {
            org_id: actor.org_id(),
            kind,
            requested_by: actor.user.id,
            filed_by_owner: actor.user.role == Role::Owner,
            subject_id: subject,
            justification,
            license_change: None,
            permission_change: None,
            products: Vec::new(),
            terms_accepted: false,
            at,
            expires_at: later(at, self.config.request_expiry),
            idempotency_key,
            idempotency_since: at
                - chrono::TimeDelta::from_std(IDEMPOTENCY_WINDOW).unwrap_or_default(),
            audit,
        }
    }

    pub(super) async fn file(&self, new: NewRequest) -> AppResult<Filed> {
        // Two filings racing on the same key or subject: the loser's retry finds the winner.
        let filing = match self.store.file_request(new.clone()).await {
            Err(StoreError::AlreadyExists { .. }) => self.store.file_request(new).await?,
            other => other?,
        };
        Ok(match filing {
            Filing::New(request) | Filing::Repeat(request) => Filed::Request(request),
            Filing::Open(request) => {
                let error = DomainError::new(
                    ErrorCode::AlreadyExists,
                    format!(
                        "An open {} request for this user already exists ({}).",
                        request.kind,
                        request.id.to_global()
                    ),
                )
                .on("userId");
                Filed::AlreadyOpen(request, error)
            }
        })
    }

    pub async fn approve_request(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
        accept_terms: Option<bool>,
    ) -> AppResult<AccountRequest> {
        let request = self.decidable(actor, id).await?;
        if needs_terms(request.kind) && accept_terms != Some(true) {
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
            RequestStatus::Approved,
            comment,
            vec![Job::ApplyRequest {
                request_id: request.id.0,
            }],
        )
        .await
    }

    pub async fn reject_request(
        &self,
        actor: &Actor,
        id: &str,
        reason: String,
    ) -> AppResult<AccountRequest> {
        let request = self.decidable(actor, id).await?;
        let reason = note("reason", Some(reason))?
            .ok_or_else(|| DomainError::invalid("reason", "Give the reason for the rejection."))?;
        let parties = self.parties(&request).await?;
        let jobs = Self::outcome_emails(&request, &parties, Outcome::Rejected, Some(&reason));
        let decision = NewDecision {
            approver_id: actor.user.id,
            approved: false,
            comment: Some(reason.clone()),
            terms_accepted: false,
        };
        self.decide(
            actor,
            &request,
            decision,
            RequestStatus::Rejected,
            Some(reason),
            jobs,
        )
        .await
    }

    /// A request the caller may decide now.
    async fn decidable(&self, actor: &Actor, id: &str) -> AppResult<AccountRequest> {
        actor.require(Action::DecideRequest)?;
        // A session opened before a lock does not let a locked owner decide.
        if actor.user.is_locked(now()) {
            return Err(AppError::Forbidden);
        }
        let request = self.request_for(actor, id).await?;
        if request.involves(actor.user.id) {
            return Err(DomainError::new(
                ErrorCode::SelfApprovalNotAllowed,
                "You filed this request or it is about you: another owner must decide it.",
            )
            .on("requestId")
            .into());
        }
        if request.status != RequestStatus::PendingApproval || request.expires_at <= now() {
            return Err(invalid_state(&request));
        }
        Ok(request)
    }

    async fn decide(
        &self,
        actor: &Actor,
        request: &AccountRequest,
        decision: NewDecision,
        to: RequestStatus,
        note: Option<String>,
        jobs: Vec<Job>,
    ) -> AppResult<AccountRequest> {
        let mut audit = actor.audit(audit_action(to)).details(serde_json::json!({
            "kind": request.kind.as_str(),
            "before": {"status": request.status.as_str()},
            "after": {"status": to.as_str()},
            "termsAccepted": decision.terms_accepted,
        }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        let transition = Transition {
            request_id: request.id,
            from: &[RequestStatus::PendingApproval],
            to,
            at: audit.at,
            actor_id: Some(actor.user.id),
            note,
            failure_reason: None,
            decision: Some(decision),
            approver_must_be_owner: Some(actor.user.id),
            approvers: Vec::new(),
            audit,
            jobs,
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

    pub async fn cancel_request(&self, actor: &Actor, id: &str) -> AppResult<AccountRequest> {
        let request = self.request_for(actor, id).await?;
        if request.requested_by != actor.user.id {
            actor.require(Action::CancelAnyRequest)?;
        }
        if !request.is_open() {
            return Err(invalid_state(&request));
        }
        let mut audit =
            actor
                .audit(audit_action(RequestStatus::Cancelled))
                .details(serde_json::json!({
                    "kind": request.kind.as_str(),
                    "before": {"status": request.status.as_str()},
                    "after": {"status": "CANCELLED"},
                }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        let transition = Transition {
            request_id: request.id,
            from: &[RequestStatus::Submitted, RequestStatus::PendingApproval],
            to: RequestStatus::Cancelled,
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

    async fn parties(&self, request: &AccountRequest) -> AppResult<Parties> {
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

    fn outcome_emails(
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
    fn system_transition(
        request: &AccountRequest,
        from: &'static [RequestStatus],
        to: RequestStatus,
        note: Option<String>,
        failure_reason: Option<String>,
        approvers: Vec<UserId>,
        jobs: Vec<Job>,
    ) -> Transition {
        let at = now();
        let mut audit =
            AuditEntry::new(request.org_id, at, audit_action(to)).details(serde_json::json!({
                "kind": request.kind.as_str(),
                "before": {"status": request.status.as_str()},
                "after": {"status": to.as_str()},
                "reason": failure_reason,
            }));
        audit.request_id = Some(request.id.0);
        audit.subject_id = request.subject_id;
        Transition {
            request_id: request.id,
            from,
            to,
            at,
            actor_id: None,
            note,
            failure_reason,
            decision: None,
            approver_must_be_owner: None,
            approvers,
            audit,
            jobs,
        }
    }

    /// Moves a request on; one that moved on meanwhile (cancelled, decided) is left alone.
    async fn move_request(&self, transition: Transition) -> AppResult<()> {
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
        if request.status != RequestStatus::Submitted {
            return Ok(());
        }
        let parties = self.parties(&request).await?;
        let requester = &parties.requester;
        // By the role the requester had when filing: the filing was their decision.
        if request.filed_by_owner {
            let mut transition = Self::system_transition(
                &request,
                &[RequestStatus::Submitted],
                RequestStatus::Approved,
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
                &[RequestStatus::Submitted],
                RequestStatus::Failed,
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
            &[RequestStatus::Submitted],
            RequestStatus::PendingApproval,
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
        if request.status != RequestStatus::Approved {
            return Ok(());
        }
        let parties = self.parties(&request).await?;
        let application = Application {
            request_id: request.id,
            at: now(),
            jobs: Self::outcome_emails(&request, &parties, Outcome::Applied, None),
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
            &[RequestStatus::Approved],
            RequestStatus::Failed,
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
            if self.store.remind_request(request.id, at, jobs).await? {
                reminded += 1;
            }
        }
        for request in &expire {
            let parties = self.parties(request).await?;
            let reason = "No owner decided the request in time.".to_owned();
            let jobs = Self::outcome_emails(request, &parties, Outcome::Expired, Some(&reason));
            let transition = Self::system_transition(
                request,
                &[RequestStatus::PendingApproval],
                RequestStatus::Expired,
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

fn invalid_state(request: &AccountRequest) -> AppError {
    let status = if request.status == RequestStatus::PendingApproval {
        "expired".to_owned()
    } else {
        request.status.as_str().to_lowercase().replace('_', " ")
    };
    DomainError::new(
        ErrorCode::InvalidState,
        format!("The request is {status}: it can no longer be changed."),
    )
    .on("requestId")
    .into()
}

/// Batched reads for the API's request fields.
impl App {
    pub async fn requests_by_ids(
        &self,
        org: crate::domain::OrgId,
        ids: &[RequestId],
    ) -> AppResult<Vec<AccountRequest>> {
        Ok(self.store.requests_by_ids(org, ids).await?)
    }

    pub async fn decisions_of(
        &self,
        ids: &[RequestId],
    ) -> AppResult<Vec<(RequestId, crate::domain::RequestDecision)>> {
        Ok(self.store.decisions_of(ids).await?)
    }

    pub async fn events_of(
        &self,
        ids: &[RequestId],
    ) -> AppResult<Vec<(RequestId, crate::domain::RequestEvent)>> {
        Ok(self.store.events_of(ids).await?)
    }
}
