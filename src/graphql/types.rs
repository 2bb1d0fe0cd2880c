//! GraphQL object types over domain records. Domain types stay free of GraphQL derives;
//! enums are mirrored here with `remote`.

use super::loaders::RequestLoader;
use crate::app::{Actor, App};
use crate::domain::{self};
use async_graphql::{Context, Enum, SimpleObject};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::Role")]
/// Practice-level role. OWNER is the financial decision maker who approves requests.
pub enum Role {
    Owner,
    Champion,
    Admin,
    Member,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::UserKind")]
pub enum UserKind {
    Provider,
    Staff,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::UserStatus")]
pub enum UserStatus {
    Invited,
    Active,
    Inactive,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::Product")]
/// A licensed product module. A user consumes one license of each product they hold.
pub enum Product {
    Ehr,
    Billing,
    PatientPortal,
    Telehealth,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::Permission")]
pub enum Permission {
    Scheduling,
    ClinicalNotes,
    Prescribing,
    Billing,
    Reporting,
}

pub(in crate::graphql) fn loader<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<&'a RequestLoader> {
    ctx.data::<RequestLoader>()
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    pub fn of<T>(page: &crate::app::page::Page<T>, had_cursor: bool) -> Self {
        PageInfo {
            has_next_page: page.has_next,
            has_previous_page: had_cursor,
            start_cursor: page.items.first().map(|(c, _)| c.clone()),
            end_cursor: page.items.last().map(|(c, _)| c.clone()),
        }
    }
}

pub(super) fn app<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a App> {
    ctx.data::<App>()
}

/// The signed-in caller, for root fields. A session whose password must be changed may
/// only reach `me`, `changePassword` and `logout` (which use `viewer`).
pub(super) fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    viewer(ctx)?.actor().map_err(super::gql)
}

/// The signed-in caller, whatever the state of their password: for `me`, `changePassword`,
/// `logout`, and fields below a root that was already allowed.
pub(super) fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::app::Caller> {
    ctx.data::<super::RequestContext>()?
        .caller
        .as_ref()
        .ok_or_else(|| super::gql(crate::app::AppError::Unauthenticated))
}

/// Declares a connection (`XConnection` with `XEdge`s of `node`) and builds it from an app
/// page: the one shape of every paged list.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty) => {
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $connection {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::types::PageInfo,
            pub total_count: i64,
        }

        impl $connection {
            pub fn from_page<T>(
                page: $crate::app::page::Page<T>,
                had_cursor: bool,
                node: impl Fn(T) -> $node,
            ) -> Self {
                Self {
                    page_info: $crate::graphql::types::PageInfo::of(&page, had_cursor),
                    total_count: page.total.unwrap_or_default(),
                    edges: page
                        .items
                        .into_iter()
                        .map(|(cursor, item)| $edge {
                            cursor,
                            node: node(item),
                        })
                        .collect(),
                }
            }
        }
    };
}
pub(crate) use connection;
