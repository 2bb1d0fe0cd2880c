//! Account requests: the query and mutation roots (the types are in `types`).

mod types;

pub use types::*;

use super::ids::{client_id, id_filter, user_id};
use super::loaders::UserIn;
use super::types::{Permission, actor, app, loader};
use super::{GqlResult, wants_total};
use crate::app::request::{
    InactivationRequest, LicenseRequest, PermissionRequest, RequestFilter as AppRequestFilter,
};
use crate::domain::RequestId;
use async_graphql::{Context, ID, Object};

#[derive(Default)]
pub struct RequestQuery;

#[Object]
impl RequestQuery {
    /// A request the caller may see; null when unknown.
    async fn request(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AccountRequest>> {
        let Some(id) = client_id::<RequestId>(&id) else {
            return Ok(None);
        };
        Ok(app(ctx)?
            .requests()
            .request(actor(ctx)?, id)
            .await
            .gql()?
            .map(AccountRequest::new))
    }

    /// Requests the caller may see, newest first.
    #[graphql(complexity = "super::page_weight(first) * child_complexity")]
    async fn requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<RequestFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AccountRequestConnection> {
        let f = filter.unwrap_or_default();
        let filter = AppRequestFilter {
            status: f.status.map(Into::into),
            kind: f.kind.map(Into::into),
            subject_id: id_filter(f.subject_id.as_ref()),
            awaiting_my_decision: f.awaiting_my_decision,
        };
        let had_cursor = after.is_some();
        let actor = actor(ctx)?;
        let page = app(ctx)?
            .requests()
            .list(actor, filter, first, after, wants_total(ctx))
            .await
            .gql()?;
        let people: Vec<UserIn> = page
            .items
            .iter()
            .flat_map(|(_, r)| [Some(r.requested_by), r.subject_id])
            .flatten()
            .map(|id| UserIn(actor.org_id(), id))
            .collect();
        loader(ctx)?.load_many(people).await?;
        Ok(AccountRequestConnection::from_page(
            page,
            had_cursor,
            AccountRequest::new,
        ))
    }
}

#[derive(Default)]
pub struct RequestMutation;

#[Object]
impl RequestMutation {
    async fn request_licenses(
        &self,
        ctx: &Context<'_>,
        input: RequestLicensesInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let request = LicenseRequest {
            product: input.product.into(),
            kind: input.kind.into(),
            quantity: input.quantity,
            justification: input.justification,
            accept_terms: input.accept_terms,
            idempotency_key: input.idempotency_key,
        };
        AccountRequestPayload::filed(
            app(ctx)?
                .requests()
                .request_licenses(actor(ctx)?, request)
                .await,
        )
    }

    async fn request_permission_change(
        &self,
        ctx: &Context<'_>,
        input: RequestPermissionChangeInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        let permissions = |list: Option<Vec<Permission>>| {
            list.unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect()
        };
        AccountRequestPayload::filed(
            async {
                let request = PermissionRequest {
                    user_id: user_id(&input.user_id)?,
                    grant: permissions(input.grant),
                    revoke: permissions(input.revoke),
                    role: input.role.map(Into::into),
                    justification: input.justification,
                    idempotency_key: input.idempotency_key,
                };
                app.requests()
                    .request_permission_change(actor, request)
                    .await
            }
            .await,
        )
    }

    async fn request_inactivation(
        &self,
        ctx: &Context<'_>,
        input: RequestInactivationInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        AccountRequestPayload::filed(
            async {
                let request = InactivationRequest {
                    user_id: user_id(&input.user_id)?,
                    reason: input.reason,
                    idempotency_key: input.idempotency_key,
                };
                app.requests().request_inactivation(actor, request).await
            }
            .await,
        )
    }

    async fn approve_request(
        &self,
        ctx: &Context<'_>,
        input: ApproveRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .requests()
                .approve(
                    actor(ctx)?,
                    client_id(&input.request_id),
                    input.comment,
                    input.accept_terms,
                )
                .await,
        )
    }

    async fn reject_request(
        &self,
        ctx: &Context<'_>,
        input: RejectRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .requests()
                .reject(actor(ctx)?, client_id(&input.request_id), input.reason)
                .await,
        )
    }

    async fn cancel_request(
        &self,
        ctx: &Context<'_>,
        input: CancelRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .requests()
                .cancel(actor(ctx)?, client_id(&input.request_id))
                .await,
        )
    }
}
