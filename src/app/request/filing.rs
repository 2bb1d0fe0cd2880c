//! Filing requests: each kind checked, then filed with its routing job in one
//! transaction; a repeat (idempotency key) or an open request of the same kind returned.

use super::*;

impl Requests {
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
        let change = Change::Licenses(LicenseChange {
            product: input.product,
            kind: input.kind,
            quantity: input.quantity,
        });
        let new = self.new_request(
            actor,
            change,
            None,
            note("justification", input.justification)?,
            idempotency_key(input.idempotency_key)?,
        );
        self.file(NewRequest {
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
            Change::Permissions(change),
            Some(subject.id),
            note("justification", input.justification)?,
            idempotency_key(input.idempotency_key)?,
        );
        self.file(new).await
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
            Change::Inactivation,
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
        let change = Change::Reactivation {
            products: products.to_vec(),
        };
        let new = self.new_request(actor, change, Some(subject.id), None, None);
        match self.file(new).await? {
            Filed::Request(request) | Filed::AlreadyOpen(request, _) => Ok(request),
        }
    }

    async fn subject(&self, actor: &Actor, id: UserId) -> AppResult<User> {
        self.target(actor, id).await
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

    pub(in crate::app) fn new_request(
        &self,
        actor: &Actor,
        change: Change,
        subject: Option<UserId>,
        justification: Option<String>,
        idempotency_key: Option<String>,
    ) -> NewRequest {
        let at = self.now();
        let mut audit = actor
            .audit(audit_action(RequestStatus::Submitted))
            .details(serde_json::json!({ "kind": change.kind().as_str() }));
        audit.at = at;
        NewRequest {
            route: crate::app::jobs::route_job,
            org_id: actor.org_id(),
            requested_by: actor.user.id,
            filed_by_owner: actor.user.role == Role::Owner,
            subject_id: subject,
            justification,
            change,
            terms_accepted: false,
            at,
            expires_at: later(at, self.config.request_expiry),
            idempotency_key,
            idempotency_since: at
                - chrono::TimeDelta::from_std(IDEMPOTENCY_WINDOW).unwrap_or_default(),
            audit,
        }
    }

    pub(in crate::app) async fn file(&self, new: NewRequest) -> AppResult<Filed> {
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
                        request.kind(),
                        request.id.to_global()
                    ),
                )
                .on("userId");
                Filed::AlreadyOpen(request, error)
            }
        })
    }
}
