//! The directory's objects as the API shows them: organizations, practices, license
//! pools, users and their sessions.

use super::GqlResult;
use super::loaders::*;
use super::types::*;
use super::{UserError, user_errors};
use crate::app::identity::credentials::Viewer;
use crate::domain::{self, Timestamp};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

super::types::connection!(UserConnection, UserEdge, User);

pub struct Organization(pub domain::Organization);

#[Object]
impl Organization {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    #[graphql(complexity = "super::ESTIMATED_PRACTICES * child_complexity")]
    async fn practices(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Practice>> {
        let practices = loader(ctx)?.load_one(PracticesIn(self.0.id)).await?;
        Ok(practices
            .unwrap_or_default()
            .into_iter()
            .map(Practice)
            .collect())
    }

    #[graphql(complexity = "super::ESTIMATED_OWNERS * child_complexity")]
    async fn owners(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let owners = loader(ctx)?.load_one(OwnersOf(self.0.id)).await?;
        Ok(owners
            .unwrap_or_default()
            .into_iter()
            .map(User::new)
            .collect())
    }

    #[graphql(complexity = "super::ESTIMATED_PRACTICES * child_complexity")]
    async fn licenses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LicensePool>> {
        let pools = loader(ctx)?.load_one(PoolsOf(self.0.id)).await?;
        Ok(pools
            .unwrap_or_default()
            .into_iter()
            .map(LicensePool)
            .collect())
    }
}

pub struct Practice(pub domain::Practice);

#[Object]
impl Practice {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }
}

pub struct LicensePool(pub domain::LicensePool);

#[Object]
impl LicensePool {
    async fn product(&self) -> Product {
        self.0.product.into()
    }

    async fn kind(&self) -> UserKind {
        self.0.kind.into()
    }

    async fn total(&self) -> i32 {
        self.0.total
    }

    async fn used(&self) -> i32 {
        self.0.used
    }

    async fn available(&self) -> i32 {
        self.0.available()
    }
}

/// A signed-in device, as listed to its user and to admins.
pub struct Session {
    pub record: crate::domain::SessionRecord,
    pub current: bool,
}

#[Object]
impl Session {
    pub(crate) async fn id(&self) -> ID {
        ID(self.record.id.to_global())
    }

    async fn created_at(&self) -> Timestamp {
        self.record.created_at
    }

    async fn last_seen_at(&self) -> Timestamp {
        self.record.last_seen_at
    }

    async fn expires_at(&self) -> Timestamp {
        self.record.expires_at
    }

    async fn user_agent(&self) -> Option<&str> {
        self.record.user_agent.as_deref()
    }

    async fn ip(&self) -> Option<&str> {
        self.record.ip.as_deref()
    }

    /// The session making this request.
    async fn current(&self) -> bool {
        self.current
    }
}

/// A user as the API shows it. `themself` marks a user returned to the person who just
/// proved to be them (by password or emailed token) without a session yet.
pub struct User {
    pub user: domain::User,
    pub themself: bool,
    /// Seen by a user who must change their password first: only who they are.
    pub restricted: bool,
}

impl User {
    pub fn new(user: domain::User) -> Self {
        Self {
            user,
            themself: false,
            restricted: false,
        }
    }

    /// The user themself, proven by a password or an emailed token in this very request.
    pub fn themself(user: domain::User) -> Self {
        Self {
            restricted: user.password_change_required,
            user,
            themself: true,
        }
    }

    /// The caller, as the app lets them see themself.
    pub fn me(view: crate::app::SelfView) -> Self {
        Self {
            user: view.user,
            themself: false,
            restricted: view.restricted,
        }
    }

    fn viewer<'a>(&self, ctx: &Context<'a>) -> async_graphql::Result<Viewer<'a>> {
        self.unrestricted()?;
        if self.themself {
            Ok(Viewer::Themself)
        } else {
            Ok(Viewer::Actor(actor(ctx)?))
        }
    }

    /// Beyond who they are, nothing is shown to a user who must change their password.
    fn unrestricted(&self) -> async_graphql::Result<()> {
        if self.restricted {
            return Err(super::gql(crate::app::AppError::PasswordChangeRequired));
        }
        Ok(())
    }
}

#[Object]
impl User {
    pub(crate) async fn id(&self) -> ID {
        ID(self.user.id.to_global())
    }

    async fn username(&self) -> &str {
        &self.user.username
    }

    async fn first_name(&self) -> &str {
        &self.user.first_name
    }

    async fn last_name(&self) -> &str {
        &self.user.last_name
    }

    async fn display_name(&self) -> String {
        self.user.display_name()
    }

    async fn email(&self) -> &str {
        &self.user.email
    }

    /// E.164, e.g. +15035550123
    async fn mobile(&self) -> Option<&str> {
        self.user.mobile.as_deref()
    }

    async fn kind(&self) -> UserKind {
        self.user.kind.into()
    }

    async fn role(&self) -> Role {
        self.user.role.into()
    }

    async fn status(&self) -> UserStatus {
        self.user.status.into()
    }

    async fn locked(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.user.is_locked(app(ctx)?.now()))
    }

    async fn locked_until(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Timestamp>> {
        let now = app(ctx)?.now();
        Ok(self.user.locked_until.filter(|until| *until > now))
    }

    async fn password_change_required(&self) -> bool {
        self.user.password_change_required
    }

    async fn permissions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Permission>> {
        self.unrestricted()?;
        let found = loader(ctx)?.load_one(PermissionsOf(self.user.id)).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(Permission::from)
            .collect())
    }

    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        self.unrestricted()?;
        let found = loader(ctx)?.load_one(ProductsOf(self.user.id)).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(Product::from)
            .collect())
    }

    #[graphql(complexity = "super::ESTIMATED_PRACTICES * child_complexity")]
    async fn practices(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Practice>> {
        self.unrestricted()?;
        let found = loader(ctx)?.load_one(PracticesOf(self.user.id)).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(Practice)
            .collect())
    }

    /// Questions only, never answers. Visible to the user and to admins.
    async fn security_questions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        app(ctx)?
            .identity()
            .security_questions_of(self.viewer(ctx)?, &self.user)
            .await
            .gql()
    }

    /// Open sessions (signed-in devices). Visible to the user and to admins.
    #[graphql(complexity = "super::ESTIMATED_PRACTICES * child_complexity")]
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let current = ctx
            .data::<super::RequestContext>()?
            .caller
            .as_ref()
            .map(crate::app::Caller::session_id);
        let sessions = app(ctx)?
            .identity()
            .sessions_of(self.viewer(ctx)?, &self.user)
            .await
            .gql()?;
        Ok(sessions
            .into_iter()
            .map(|record| Session {
                current: Some(record.id) == current,
                record,
            })
            .collect())
    }

    async fn encryption_key_version(&self) -> i32 {
        self.user.encryption_key_version
    }

    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Organization> {
        self.unrestricted()?;
        let org = loader(ctx)?.load_one(OrgById(self.user.org_id)).await?;
        org.map(Organization)
            .ok_or_else(|| async_graphql::Error::new("organization not found"))
    }

    async fn created_at(&self) -> Timestamp {
        self.user.created_at
    }

    async fn last_login_at(&self) -> Option<Timestamp> {
        self.user.last_login_at
    }

    async fn deactivated_at(&self) -> Option<Timestamp> {
        self.user.deactivated_at
    }
}

#[derive(InputObject)]
pub struct UserIdInput {
    pub(in crate::graphql) user_id: ID,
}

#[derive(SimpleObject)]
pub struct UserPayload {
    user: Option<User>,
    user_errors: Vec<UserError>,
}

impl UserPayload {
    pub(in crate::graphql) fn from(
        result: crate::app::AppResult<crate::domain::User>,
    ) -> async_graphql::Result<Self> {
        let (user, user_errors) = user_errors(result)?;
        Ok(UserPayload {
            user: user.map(User::new),
            user_errors,
        })
    }
}
