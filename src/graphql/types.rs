//! GraphQL object types over domain records. Domain types stay free of GraphQL derives;
//! enums are mirrored here with `remote`.

use super::GqlResult;
use crate::app::credentials::Viewer;
use crate::app::{Actor, App};
use crate::domain::{self, DomainError, Timestamp};
use async_graphql::{Context, Enum, ID, Interface, Object, SimpleObject};

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
#[graphql(remote = "domain::ErrorCode")]
pub enum UserErrorCode {
    InvalidInput,
    InvalidCredentials,
    NotFound,
    AlreadyExists,
    SharedEmailNotAllowed,
    NoLicenseAvailable,
    WeakPassword,
    TokenInvalid,
    TokenExpired,
    SecurityAnswerMismatch,
    TermsNotAccepted,
    InvalidState,
    SelfApprovalNotAllowed,
    LastOwner,
}

/// A refusal of a mutation, with the input field at fault.
#[derive(SimpleObject, Clone)]
pub struct UserError {
    /// Path to the input field at fault, e.g. ["input", "email"]
    pub field: Option<Vec<String>>,
    pub code: UserErrorCode,
    pub message: String,
}

impl From<DomainError> for UserError {
    fn from(err: DomainError) -> Self {
        UserError {
            field: err.field.map(|f| vec!["input".to_owned(), f.to_owned()]),
            code: err.code.into(),
            message: err.message,
        }
    }
}

#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    Organization(Organization),
    Practice(Practice),
}

pub(super) fn app<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a App> {
    ctx.data::<App>()
}

/// The signed-in caller, for root fields. A session whose password must be changed may
/// only reach `me`, `changePassword` and `logout` (which use `viewer`).
pub(super) fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    let actor = viewer(ctx)?;
    if actor.user.password_change_required {
        return Err(super::gql(crate::app::AppError::PasswordChangeRequired));
    }
    Ok(actor)
}

/// The signed-in caller, whatever the state of their password: for `me`, `changePassword`,
/// `logout`, and fields below a root that was already allowed.
pub(super) fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    ctx.data::<super::RequestContext>()?
        .actor
        .as_ref()
        .ok_or_else(|| super::gql(crate::app::AppError::Unauthenticated))
}

/// A signed-in device, as listed to its user and to admins.
pub struct Session {
    pub record: crate::store::SessionRecord,
    pub current: bool,
}

#[Object]
impl Session {
    async fn id(&self) -> ID {
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

pub struct Organization(pub domain::Organization);

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn practices(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Practice>> {
        let practices = app(ctx)?.practices(&self.0).await.gql()?;
        Ok(practices.into_iter().map(Practice).collect())
    }

    async fn licenses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LicensePool>> {
        let pools = app(ctx)?.license_pools(&self.0).await.gql()?;
        Ok(pools.into_iter().map(LicensePool).collect())
    }
}

pub struct Practice(pub domain::Practice);

#[Object]
impl Practice {
    async fn id(&self) -> ID {
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

/// A user as the API shows it. `themself` marks a user returned to the person who just
/// proved to be them (by password or emailed token) without a session yet.
pub struct User {
    pub user: domain::User,
    pub themself: bool,
}

impl User {
    pub fn new(user: domain::User) -> Self {
        Self {
            user,
            themself: false,
        }
    }

    pub fn themself(user: domain::User) -> Self {
        Self {
            user,
            themself: true,
        }
    }

    fn viewer<'a>(&self, ctx: &Context<'a>) -> async_graphql::Result<Viewer<'a>> {
        if self.themself {
            Ok(Viewer::Themself)
        } else {
            Ok(Viewer::Actor(viewer(ctx)?))
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
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

    async fn locked(&self) -> bool {
        self.user.is_locked(domain::now())
    }

    async fn locked_until(&self) -> Option<Timestamp> {
        self.user
            .locked_until
            .filter(|until| *until > domain::now())
    }

    async fn password_change_required(&self) -> bool {
        self.user.password_change_required
    }

    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        let products = app(ctx)?.user_products(&self.user).await.gql()?;
        Ok(products.into_iter().map(Product::from).collect())
    }

    /// Questions only, never answers. Visible to the user and to admins.
    async fn security_questions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        app(ctx)?
            .security_questions_of(self.viewer(ctx)?, &self.user)
            .await
            .gql()
    }

    /// Open sessions (signed-in devices). Visible to the user and to admins.
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let current = ctx
            .data::<super::RequestContext>()?
            .actor
            .as_ref()
            .map(|a| a.session_id);
        let sessions = app(ctx)?
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
        Ok(Organization(
            app(ctx)?.organization_of(&self.user).await.gql()?,
        ))
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
