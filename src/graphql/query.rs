//! Query root.

use super::loaders::{OrgById, PermissionsOf, PracticesOf, ProductsOf, UserIn};
use super::requests::{
    AccountRequest, AccountRequestConnection, AccountRequestEdge, RequestFilter,
};
use super::types::loader;
use super::types::{
    AuditEvent, AuditEventConnection, AuditEventEdge, Node, Organization, PageInfo, Practice, User,
    UserConnection, UserEdge, UserKind, UserStatus, actor, app,
};
use super::{GqlResult, RequestContext};
use crate::app::directory::{AuditFilter as AppAuditFilter, UserFilter as AppUserFilter};
use crate::app::request::RequestFilter as AppRequestFilter;
use crate::domain::id::{AuditEventId, decode_global};
use crate::domain::{OrgId, PracticeId, RequestId, Timestamp, UserId};
use async_graphql::{Context, ID, InputObject, Object};

#[derive(Default)]
pub struct Query;

#[derive(InputObject, Default)]
pub struct UserFilter {
    /// Matches any of name, username, email or mobile.
    search: Option<String>,
    /// All or part of first, last or full name; case- and accent-insensitive.
    name: Option<String>,
    /// All or the start of a username; case-insensitive.
    username: Option<String>,
    /// All or the start of an email address; case-insensitive.
    email: Option<String>,
    /// Any formatting; matched on digits, all or the trailing part of the number.
    mobile: Option<String>,
    status: Option<UserStatus>,
    kind: Option<UserKind>,
    locked: Option<bool>,
    practice_id: Option<ID>,
}

#[derive(InputObject, Default)]
pub struct AuditFilter {
    actor_id: Option<ID>,
    subject_id: Option<ID>,
    request_id: Option<ID>,
    /// Exact action, or a prefix ending in a dot: "request."
    action: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

/// Loads what the page's nodes ask for in one batch each, before the nodes resolve one
/// by one (which would otherwise split into several batches as they trickle in).
async fn prime_user_details(ctx: &Context<'_>, ids: Vec<UserId>) -> async_graphql::Result<()> {
    let node = ctx.look_ahead().field("edges").field("node");
    let loader = loader(ctx)?;
    if node.field("practices").exists() {
        loader
            .load_many(ids.iter().map(|id| PracticesOf(*id)))
            .await?;
    }
    if node.field("products").exists() {
        loader
            .load_many(ids.iter().map(|id| ProductsOf(*id)))
            .await?;
    }
    if node.field("permissions").exists() {
        loader
            .load_many(ids.iter().map(|id| PermissionsOf(*id)))
            .await?;
    }
    if node.field("organization").exists() {
        loader.load_one(OrgById(actor(ctx)?.org_id())).await?;
    }
    Ok(())
}

/// Whether the selection asks for `totalCount` (counting costs a read of every match).
fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

#[Object]
impl Query {
    /// The signed-in user; null without a session.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(ctx
            .data::<RequestContext>()?
            .caller
            .as_ref()
            .map(|caller| User::me(caller.me())))
    }

    /// The caller's organization.
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Organization>> {
        Ok(Some(Organization(
            app(ctx)?.organization(actor(ctx)?).await.gql()?,
        )))
    }

    /// Any object of the caller's organization by its ID; null when unknown.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        let Some((tag, _)) = decode_global(&id) else {
            return Ok(None);
        };
        Ok(match tag {
            UserId::TAG => {
                let user = app
                    .user(actor, UserId::from_global(&id).expect("tag checked"))
                    .await
                    .gql()?;
                user.map(|u| Node::User(User::new(u)))
            }
            PracticeId::TAG => {
                let wanted = PracticeId::from_global(&id);
                let org = app.organization(actor).await.gql()?;
                let practices = app.practices(&org).await.gql()?;
                practices
                    .into_iter()
                    .find(|p| Some(p.id) == wanted)
                    .map(|p| Node::Practice(Practice(p)))
            }
            OrgId::TAG if OrgId::from_global(&id) == Some(actor.org_id()) => Some(
                Node::Organization(Organization(app.organization(actor).await.gql()?)),
            ),
            RequestId::TAG => {
                let request_id = RequestId::from_global(&id).expect("tag checked");
                app.request(actor, request_id)
                    .await
                    .gql()?
                    .map(|r| Node::AccountRequest(AccountRequest::new(r)))
            }
            AuditEventId::TAG => {
                let event_id = AuditEventId::from_global(&id).expect("tag checked").0;
                app.audit_event(actor, event_id)
                    .await
                    .gql()?
                    .map(|e| Node::AuditEvent(AuditEvent(e)))
            }
            _ => None,
        })
    }

    /// A user of the caller's organization; null when unknown.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        let Some(id) = UserId::from_global(&id) else {
            return Ok(None);
        };
        Ok(app(ctx)?.user(actor(ctx)?, id).await.gql()?.map(User::new))
    }

    /// The organization's users in directory order (last name, first name).
    #[graphql(complexity = "super::page_weight(first) * child_complexity")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let f = filter.unwrap_or_default();
        let filter = AppUserFilter {
            search: f.search,
            name: f.name,
            username: f.username,
            email: f.email,
            mobile: f.mobile,
            status: f.status.map(Into::into),
            kind: f.kind.map(Into::into),
            locked: f.locked,
            practice_id: f.practice_id.map(|id| id.0),
        };
        let had_cursor = after.is_some();
        let page = app(ctx)?
            .find_users(actor(ctx)?, filter, first, after, wants_total(ctx))
            .await
            .gql()?;
        prime_user_details(ctx, page.items.iter().map(|(_, u)| u.id).collect()).await?;
        let page_info = PageInfo::of(&page, had_cursor);
        Ok(UserConnection {
            page_info,
            total_count: page.total.unwrap_or_default(),
            edges: page
                .items
                .into_iter()
                .map(|(cursor, user)| UserEdge {
                    cursor,
                    node: User::new(user),
                })
                .collect(),
        })
    }

    /// The organization's audit log, newest first (owners and admins).
    #[graphql(complexity = "super::page_weight(first) * child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AuditEventConnection> {
        let f = filter.unwrap_or_default();
        let filter = AppAuditFilter {
            actor_id: f.actor_id.map(|id| id.0),
            subject_id: f.subject_id.map(|id| id.0),
            request_id: f.request_id.map(|id| id.0),
            action: f.action,
            since: f.since,
            until: f.until,
        };
        let had_cursor = after.is_some();
        let actor = actor(ctx)?;
        let page = app(ctx)?
            .audit_events(actor, filter, first, after, wants_total(ctx))
            .await
            .gql()?;
        let people: Vec<UserIn> = page
            .items
            .iter()
            .flat_map(|(_, e)| [e.actor_id, e.subject_id])
            .flatten()
            .map(|id| UserIn(actor.org_id(), UserId(id)))
            .collect();
        loader(ctx)?.load_many(people).await?;
        let page_info = PageInfo::of(&page, had_cursor);
        Ok(AuditEventConnection {
            page_info,
            total_count: page.total.unwrap_or_default(),
            edges: page
                .items
                .into_iter()
                .map(|(cursor, event)| AuditEventEdge {
                    cursor,
                    node: AuditEvent(event),
                })
                .collect(),
        })
    }

    /// A request the caller may see; null when unknown.
    async fn request(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AccountRequest>> {
        let Some(id) = RequestId::from_global(&id) else {
            return Ok(None);
        };
        Ok(app(ctx)?
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
            subject_id: f.subject_id.map(|id| id.0),
            awaiting_my_decision: f.awaiting_my_decision,
        };
        let had_cursor = after.is_some();
        let actor = actor(ctx)?;
        let page = app(ctx)?
            .requests(actor, filter, first, after, wants_total(ctx))
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
        let page_info = PageInfo::of(&page, had_cursor);
        Ok(AccountRequestConnection {
            page_info,
            total_count: page.total.unwrap_or_default(),
            edges: page
                .items
                .into_iter()
                .map(|(cursor, request)| AccountRequestEdge {
                    cursor,
                    node: AccountRequest::new(request),
                })
                .collect(),
        })
    }
}
