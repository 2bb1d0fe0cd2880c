//! Query root.

use super::types::Practice;
use super::types::{Node, Organization, User, actor, app};
use super::{GqlResult, RequestContext};
use crate::domain::{OrgId, PracticeId, UserId};
use async_graphql::{Context, ID, Object};

#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user; null without a session.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(ctx
            .data::<RequestContext>()?
            .actor
            .as_ref()
            .map(|a| User::new(a.user.clone())))
    }

    /// The caller's organization.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(Some(Organization(
            app(ctx)?.organization(actor(ctx)?).await.gql()?,
        )))
    }

    /// Any object of the caller's organization by its ID; null when unknown.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let actor = actor(ctx)?;
        if let Some(user) = UserId::from_global(&id) {
            return Ok(app(ctx)?
                .user(actor, user)
                .await
                .gql()?
                .map(|u| Node::User(User::new(u))));
        }
        if let Some(practice) = PracticeId::from_global(&id) {
            let org = app(ctx)?.organization(actor).await.gql()?;
            let practices = app(ctx)?.practices(&org).await.gql()?;
            return Ok(practices
                .into_iter()
                .find(|p| p.id == practice)
                .map(|p| Node::Practice(Practice(p))));
        }
        if OrgId::from_global(&id) == Some(actor.org_id()) {
            return Ok(Some(Node::Organization(Organization(
                app(ctx)?.organization(actor).await.gql()?,
            ))));
        }
        Ok(None)
    }
}
