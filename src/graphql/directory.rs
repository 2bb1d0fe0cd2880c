//! The directory: the caller, their organization, its users and practices, and
//! invitations, profile changes and reactivations.

use super::UserError;
use super::audit::AuditEvent;
use super::ids::{client_id, client_ids, id_filter, user_id};
use super::loaders::{OrgById, PermissionsOf, PracticesOf, ProductsOf};
use super::node::Node;
use super::objects::{Organization, Practice, User, UserConnection, UserPayload};
use super::request::AccountRequest;
use super::types::{Permission, Product, Role, UserKind, UserStatus, actor, app, loader};
use super::{GqlResult, RequestContext, user_errors, wants_total};
use crate::app::directory::{Invitation, ProfileUpdate, UserFilter as AppUserFilter};
use crate::domain::id::{AuditEventId, decode_global};
use crate::domain::{OrgId, PracticeId, RequestId, UserId};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
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
            app(ctx)?
                .directory()
                .organization(actor(ctx)?)
                .await
                .gql()?,
        )))
    }

    /// Any object of the caller's organization by its ID; null when unknown.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        let Some((tag, n)) = decode_global(&id) else {
            return Ok(None);
        };
        Ok(match tag {
            UserId::TAG => {
                let user = app.directory().user(actor, UserId(n)).await.gql()?;
                user.map(|u| Node::User(User::new(u)))
            }
            PracticeId::TAG => {
                let practice = app.directory().practice(actor, PracticeId(n)).await;
                practice.gql()?.map(|p| Node::Practice(Practice(p)))
            }
            OrgId::TAG if OrgId(n) == actor.org_id() => Some(Node::Organization(Organization(
                app.directory().organization(actor).await.gql()?,
            ))),
            RequestId::TAG => {
                let request = app.requests().request(actor, RequestId(n)).await;
                request
                    .gql()?
                    .map(|r| Node::AccountRequest(AccountRequest::new(r)))
            }
            AuditEventId::TAG => {
                let event = app.audit().event(actor, n).await;
                event.gql()?.map(|e| Node::AuditEvent(AuditEvent(e)))
            }
            _ => None,
        })
    }

    /// A user of the caller's organization; null when unknown.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        let Some(id) = client_id::<UserId>(&id) else {
            return Ok(None);
        };
        Ok(app(ctx)?
            .directory()
            .user(actor(ctx)?, id)
            .await
            .gql()?
            .map(User::new))
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
            practice_id: id_filter(f.practice_id.as_ref()),
        };
        let had_cursor = after.is_some();
        let page = app(ctx)?
            .directory()
            .find_users(actor(ctx)?, filter, first, after, wants_total(ctx))
            .await
            .gql()?;
        prime_user_details(ctx, page.items.iter().map(|(_, u)| u.id).collect()).await?;
        Ok(UserConnection::from_page(page, had_cursor, User::new))
    }
}

#[derive(Default)]
pub struct DirectoryMutation;

#[Object]
impl DirectoryMutation {
    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        input: InviteUserInput,
    ) -> async_graphql::Result<UserPayload> {
        let invitation = Invitation {
            username: input.username,
            first_name: input.first_name,
            last_name: input.last_name,
            email: input.email,
            mobile: input.mobile,
            kind: input.kind.into(),
            role: input.role.map(Into::into),
            permissions: input
                .permissions
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            products: input
                .products
                .map(|p| p.into_iter().map(Into::into).collect()),
            practice_ids: client_ids(&input.practice_ids.unwrap_or_default()),
        };
        UserPayload::from(
            app(ctx)?
                .directory()
                .invite_user(actor(ctx)?, invitation)
                .await,
        )
    }

    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                let update = ProfileUpdate {
                    user_id: user_id(&input.user_id)?,
                    first_name: input.first_name,
                    last_name: input.last_name,
                    mobile: input.mobile,
                    practice_ids: input.practice_ids.as_deref().map(client_ids),
                };
                app.directory().update_user(actor, update).await
            }
            .await,
        )
    }

    async fn create_practice(
        &self,
        ctx: &Context<'_>,
        input: CreatePracticeInput,
    ) -> async_graphql::Result<PracticePayload> {
        let (practice, user_errors) = user_errors(
            app(ctx)?
                .directory()
                .create_practice(actor(ctx)?, &input.name)
                .await,
        )?;
        Ok(PracticePayload {
            practice: practice.map(Practice),
            user_errors,
        })
    }

    async fn reactivate_users(
        &self,
        ctx: &Context<'_>,
        input: ReactivateUsersInput,
    ) -> async_graphql::Result<ReactivateUsersPayload> {
        let ids = client_ids(&input.user_ids);
        let products = input
            .products
            .map(|p| p.into_iter().map(Into::into).collect());
        let (done, mut errors) = user_errors(
            app(ctx)?
                .directory()
                .reactivate_users(actor(ctx)?, &ids, products)
                .await,
        )?;
        let done = done.unwrap_or_default();
        errors.extend(done.refused.into_iter().map(|(index, refusal)| {
            let mut error = UserError::from(refusal);
            error.field = Some(vec!["input".into(), "userIds".into(), index.to_string()]);
            error
        }));
        Ok(ReactivateUsersPayload {
            users: done.users.into_iter().map(User::new).collect(),
            requests: done.requests.into_iter().map(AccountRequest::new).collect(),
            user_errors: errors,
        })
    }
}

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

#[derive(InputObject)]
pub struct InviteUserInput {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    mobile: Option<String>,
    kind: UserKind,
    /// Default MEMBER. OWNER cannot be given here: it is a permission change request.
    role: Option<Role>,
    permissions: Option<Vec<Permission>>,
    /// Default [EHR].
    products: Option<Vec<Product>>,
    practice_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    user_id: ID,
    first_name: Option<String>,
    last_name: Option<String>,
    mobile: Option<String>,
    practice_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct CreatePracticeInput {
    name: String,
}

#[derive(SimpleObject)]
pub struct PracticePayload {
    practice: Option<Practice>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReactivateUsersInput {
    user_ids: Vec<ID>,
    /// Products to restore; default [EHR].
    products: Option<Vec<Product>>,
}

#[derive(SimpleObject)]
pub struct ReactivateUsersPayload {
    /// Users reactivated now.
    users: Vec<User>,
    /// Requests filed instead, for providers that need the owner's review.
    requests: Vec<AccountRequest>,
    user_errors: Vec<UserError>,
}
