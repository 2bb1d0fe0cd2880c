//! The audit log, newest first (owners and admins).

use super::ids::id_filter;
use super::loaders::{RequestIn, UserIn};
use super::objects::User;
use super::types::{actor, app, loader};
use super::{GqlResult, wants_total};
use crate::app::audit::AuditFilter as AppAuditFilter;
use crate::domain::{self, Timestamp, UserId};
use async_graphql::{Context, ID, InputObject, Object};

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
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
            actor_id: id_filter(f.actor_id.as_ref()),
            subject_id: id_filter(f.subject_id.as_ref()),
            request_id: id_filter(f.request_id.as_ref()),
            action: f.action,
            since: f.since,
            until: f.until,
        };
        let had_cursor = after.is_some();
        let actor = actor(ctx)?;
        let page = app(ctx)?
            .audit()
            .events(actor, filter, first, after, wants_total(ctx))
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
        Ok(AuditEventConnection::from_page(
            page, had_cursor, AuditEvent,
        ))
    }
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

/// One entry of the organization's audit log.
pub struct AuditEvent(pub crate::domain::audit::AuditRecord);

#[Object]
impl AuditEvent {
    pub(crate) async fn id(&self) -> ID {
        ID(crate::domain::id::AuditEventId(self.0.id).to_global())
    }

    async fn at(&self) -> Timestamp {
        self.0.at
    }

    /// Dotted verb, e.g. user.invited, session.login_failed, request.approved
    async fn action(&self) -> &str {
        &self.0.action
    }

    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.user(ctx, self.0.actor_id).await
    }

    async fn subject(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.user(ctx, self.0.subject_id).await
    }

    async fn request(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::request::AccountRequest>> {
        let Some(id) = self.0.request_id else {
            return Ok(None);
        };
        let key = RequestIn(domain::OrgId(self.0.org_id), domain::RequestId(id));
        Ok(loader(ctx)?
            .load_one(key)
            .await?
            .map(super::request::AccountRequest::new))
    }

    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }

    /// JSON object with the action's particulars (before/after values); never a secret.
    async fn details(&self) -> &str {
        &self.0.details
    }

    /// Hex SHA-256 chaining this event to the organization's previous one.
    async fn hash(&self) -> String {
        hex::encode(&self.0.hash)
    }
}

impl AuditEvent {
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<i64>,
    ) -> async_graphql::Result<Option<User>> {
        let Some(id) = id else { return Ok(None) };
        let org = domain::OrgId(self.0.org_id);
        Ok(loader(ctx)?
            .load_one(UserIn(org, domain::UserId(id)))
            .await?
            .map(User::new))
    }
}

super::types::connection!(AuditEventConnection, AuditEventEdge, AuditEvent);
