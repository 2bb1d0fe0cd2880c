//! Subscription root: request status changes, pushed over `/graphql/ws`.

use super::ids::client_id;
use super::request::AccountRequest;
use super::types::{actor, app};
use super::{GqlResult, RequestContext, SessionToken, gql};
use crate::app::AppError;
use crate::domain::RequestId;
use async_graphql::{Context, ID, Subscription as SubscriptionRoot};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

#[derive(Default)]
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// Every status change of a request the caller may see; one request when requestId is given.
    async fn request_updated(
        &self,
        ctx: &Context<'_>,
        request_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AccountRequest>> + use<>>
    {
        let (app, actor) = (app(ctx)?.clone(), actor(ctx)?.clone());
        let wanted = match request_id {
            Some(id) => {
                let unknown = || gql(AppError::BadUserInput("No such request.".into()));
                let id = client_id::<RequestId>(&id).ok_or_else(unknown)?;
                app.requests()
                    .request(&actor, id)
                    .await
                    .gql()?
                    .ok_or_else(unknown)?;
                Some(id)
            }
            None => None,
        };
        let session = ctx.data_opt::<SessionToken>().cloned();
        let client = ctx.data::<RequestContext>()?.client.clone();
        let changes = app.requests().changes();
        Ok(futures_util::stream::unfold(
            Some((changes, app, actor)),
            move |state| {
                let (session, client) = (session.clone(), client.clone());
                async move {
                    let (mut changes, app, mut actor) = state?;
                    loop {
                        let change = match changes.recv().await {
                            Ok(change) => change,
                            Err(RecvError::Lagged(missed)) => {
                                tracing::warn!(missed, "a slow subscriber missed request changes");
                                continue;
                            }
                            Err(RecvError::Closed) => return None,
                        };
                        if change.org_id != actor.org_id()
                            || wanted.is_some_and(|w| w != change.request_id)
                        {
                            continue;
                        }
                        // The session may have ended (logout, revoked, expired) or the role
                        // changed since the subscription started.
                        if let Some(SessionToken(token)) = &session {
                            match app.identity().authenticate(token, &client).await {
                                Ok(Some(current)) => match current.actor() {
                                    Ok(current) => actor = current.clone(),
                                    Err(err) => return Some((Err(gql(err)), None)),
                                },
                                Ok(None) => {
                                    return Some((Err(gql(AppError::Unauthenticated)), None));
                                }
                                Err(err) => return Some((Err(gql(err)), None)),
                            }
                        }
                        let item = match app.requests().request(&actor, change.request_id).await {
                            // Shown as of this change, even when it has moved on since.
                            Ok(Some(request)) => Ok(AccountRequest::live(request, change.status)),
                            Ok(None) => continue,
                            Err(err) => Err(gql(err)),
                        };
                        return Some((item, Some((changes, app, actor))));
                    }
                }
            },
        ))
    }
}
