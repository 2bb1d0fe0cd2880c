//! GraphQL types of account requests: the request, its decisions and events, and the
//! inputs and payloads of the request mutations.

use crate::app::request::Filed;
use crate::domain::{self, Timestamp};
use crate::graphql::GqlResult;
use crate::graphql::UserError;
use crate::graphql::loaders::{DecisionsOf, EventsOf, OwnersOf, UserIn};
use crate::graphql::objects::User;
use crate::graphql::types::viewer;
use crate::graphql::types::{Permission, Product, Role, UserKind, app, loader};
use crate::graphql::user_errors;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::RequestKind")]
pub enum RequestKind {
    AddLicenses,
    ChangePermissions,
    InactivateUser,
    ReactivateProvider,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::RequestStatus")]
pub enum RequestStatus {
    Submitted,
    PendingApproval,
    Approved,
    Applied,
    Rejected,
    Cancelled,
    Expired,
    Failed,
}

#[derive(SimpleObject)]
pub struct LicenseChange {
    product: Product,
    kind: UserKind,
    quantity: i32,
}

#[derive(SimpleObject)]
pub struct PermissionChange {
    grant: Vec<Permission>,
    revoke: Vec<Permission>,
    role: Option<Role>,
}

async fn user_in(
    ctx: &Context<'_>,
    org: domain::OrgId,
    id: Option<domain::UserId>,
) -> async_graphql::Result<Option<User>> {
    let Some(id) = id else { return Ok(None) };
    Ok(loader(ctx)?.load_one(UserIn(org, id)).await?.map(User::new))
}

pub struct RequestDecision(domain::OrgId, domain::RequestDecision);

#[Object]
impl RequestDecision {
    async fn approver(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        user_in(ctx, self.0, Some(self.1.approver_id))
            .await?
            .ok_or_else(|| async_graphql::Error::new("approver not found"))
    }

    async fn approved(&self) -> bool {
        self.1.approved
    }

    async fn comment(&self) -> Option<&str> {
        self.1.comment.as_deref()
    }

    async fn terms_accepted(&self) -> bool {
        self.1.terms_accepted
    }

    async fn decided_at(&self) -> Timestamp {
        self.1.decided_at
    }
}

pub struct RequestEvent(domain::OrgId, domain::RequestEvent);

#[Object]
impl RequestEvent {
    async fn at(&self) -> Timestamp {
        self.1.at
    }

    async fn status(&self) -> RequestStatus {
        self.1.status.into()
    }

    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user_in(ctx, self.0, self.1.actor_id).await
    }

    async fn note(&self) -> Option<&str> {
        self.1.note.as_deref()
    }
}

/// A request as the API shows it. A `live` one (pushed to a subscriber) reads its
/// decisions, events and approvers afresh rather than from the connection's cache.
pub struct AccountRequest {
    request: domain::AccountRequest,
    live: bool,
    /// The event a subscription update reports.
    event_id: Option<i64>,
}

impl AccountRequest {
    pub fn new(request: domain::AccountRequest) -> Self {
        Self {
            request,
            live: false,
            event_id: None,
        }
    }

    /// The request as of a change to `status`.
    pub fn live(
        request: domain::AccountRequest,
        status: domain::RequestStatus,
        event_id: i64,
    ) -> Self {
        Self {
            request: domain::AccountRequest { status, ..request },
            live: true,
            event_id: Some(event_id),
        }
    }
}

#[Object]
impl AccountRequest {
    pub async fn id(&self) -> ID {
        ID(self.request.id.to_global())
    }

    /// In a requestUpdated update: the event it reports, to resume after with
    /// `requestUpdated(afterEventId:)` when reconnecting. Null elsewhere.
    async fn event_id(&self) -> Option<ID> {
        self.event_id.map(|id| ID(id.to_string()))
    }

    async fn kind(&self) -> RequestKind {
        self.request.kind().into()
    }

    async fn status(&self) -> RequestStatus {
        self.request.status.into()
    }

    async fn requested_by(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        user_in(ctx, self.request.org_id, Some(self.request.requested_by))
            .await?
            .ok_or_else(|| async_graphql::Error::new("requester not found"))
    }

    /// The user the request is about (none for ADD_LICENSES).
    async fn subject(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user_in(ctx, self.request.org_id, self.request.subject_id).await
    }

    async fn justification(&self) -> Option<&str> {
        self.request.justification.as_deref()
    }

    async fn license_change(&self) -> Option<LicenseChange> {
        self.request.change.licenses().map(|c| LicenseChange {
            product: c.product.into(),
            kind: c.kind.into(),
            quantity: c.quantity,
        })
    }

    async fn permission_change(&self) -> Option<PermissionChange> {
        self.request.change.permissions().map(|c| PermissionChange {
            grant: c.grant.iter().copied().map(Into::into).collect(),
            revoke: c.revoke.iter().copied().map(Into::into).collect(),
            role: c.role.map(Into::into),
        })
    }

    /// Products to restore, for REACTIVATE_PROVIDER.
    async fn products(&self) -> Vec<Product> {
        self.request
            .change
            .products()
            .iter()
            .copied()
            .map(Into::into)
            .collect()
    }

    /// Users who may decide this request now.
    async fn approvers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        if !domain::request::Step::Approve.allows(self.request.status) {
            return Ok(Vec::new());
        }
        let owners = if self.live {
            app(ctx)?
                .view(viewer(ctx)?)
                .owners(self.request.org_id)
                .await
                .gql()?
        } else {
            loader(ctx)?
                .load_one(OwnersOf(self.request.org_id))
                .await?
                .unwrap_or_default()
        };
        Ok(app(ctx)?
            .requests()
            .current_approvers(&self.request, &owners)
            .into_iter()
            .map(User::new)
            .collect())
    }

    async fn decisions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RequestDecision>> {
        let found = if self.live {
            let found = app(ctx)?
                .view(viewer(ctx)?)
                .decisions_of(&[self.request.id])
                .await
                .gql()?;
            found.into_iter().map(|(_, d)| d).collect()
        } else {
            loader(ctx)?
                .load_one(DecisionsOf(self.request.id))
                .await?
                .unwrap_or_default()
        };
        Ok(found
            .into_iter()
            .map(|d| RequestDecision(self.request.org_id, d))
            .collect())
    }

    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RequestEvent>> {
        let found = if self.live {
            let found = app(ctx)?
                .view(viewer(ctx)?)
                .events_of(&[self.request.id])
                .await
                .gql()?;
            found.into_iter().map(|(_, e)| e).collect()
        } else {
            loader(ctx)?
                .load_one(EventsOf(self.request.id))
                .await?
                .unwrap_or_default()
        };
        Ok(found
            .into_iter()
            .map(|e| RequestEvent(self.request.org_id, e))
            .collect())
    }

    async fn failure_reason(&self) -> Option<&str> {
        self.request.failure_reason.as_deref()
    }

    async fn created_at(&self) -> Timestamp {
        self.request.created_at
    }

    async fn expires_at(&self) -> Timestamp {
        self.request.expires_at
    }

    async fn decided_at(&self) -> Option<Timestamp> {
        self.request.decided_at
    }

    async fn applied_at(&self) -> Option<Timestamp> {
        self.request.applied_at
    }
}

crate::graphql::types::connection!(AccountRequestConnection, AccountRequestEdge, AccountRequest);

#[derive(InputObject, Default)]
pub struct RequestFilter {
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestKind>,
    pub subject_id: Option<ID>,
    /// Only requests the caller may approve now.
    pub awaiting_my_decision: Option<bool>,
}

#[derive(InputObject)]
pub struct RequestLicensesInput {
    pub product: Product,
    pub kind: UserKind,
    pub quantity: i32,
    pub justification: Option<String>,
    /// An OWNER filing accepts the terms of service here; others leave it out.
    pub accept_terms: Option<bool>,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct RequestPermissionChangeInput {
    pub user_id: ID,
    pub grant: Option<Vec<Permission>>,
    pub revoke: Option<Vec<Permission>>,
    pub role: Option<Role>,
    pub justification: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct RequestInactivationInput {
    pub user_id: ID,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct ApproveRequestInput {
    pub request_id: ID,
    pub comment: Option<String>,
    /// Required true for ADD_LICENSES and REACTIVATE_PROVIDER: authorizes the addition to the invoice.
    pub accept_terms: Option<bool>,
}

#[derive(InputObject)]
pub struct RejectRequestInput {
    pub request_id: ID,
    pub reason: String,
}

#[derive(InputObject)]
pub struct CancelRequestInput {
    pub request_id: ID,
}

#[derive(SimpleObject)]
pub struct AccountRequestPayload {
    request: Option<AccountRequest>,
    user_errors: Vec<UserError>,
}

impl AccountRequestPayload {
    pub fn decided(
        result: crate::app::AppResult<domain::AccountRequest>,
    ) -> async_graphql::Result<Self> {
        let (request, user_errors) = user_errors(result)?;
        Ok(Self {
            request: request.map(AccountRequest::new),
            user_errors,
        })
    }

    /// A filing: the new (or first) request, or the open one in the way with the error.
    pub fn filed(result: crate::app::AppResult<Filed>) -> async_graphql::Result<Self> {
        let (filed, mut user_errors) = user_errors(result)?;
        let request = match filed {
            Some(Filed::Request(request)) => Some(request),
            Some(Filed::AlreadyOpen(request, error)) => {
                user_errors.push(error.into());
                Some(request)
            }
            None => None,
        };
        Ok(Self {
            request: request.map(AccountRequest::new),
            user_errors,
        })
    }
}
