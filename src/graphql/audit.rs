//! The audit log, newest first (owners and admins).

use super::loaders::UserIn;
use super::types::{
    AuditEvent, AuditEventConnection, AuditEventEdge, PageInfo, actor, app, loader,
};
use super::{GqlResult, wants_total};
use crate::app::audit::AuditFilter as AppAuditFilter;
use crate::domain::{Timestamp, UserId};
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
