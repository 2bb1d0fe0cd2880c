//! GraphQL object types over domain records. Domain types stay free of GraphQL derives;
//! enums are mirrored here with `remote`.

use super::GqlResult;
use super::loaders::{
    OrgById, OwnersOf, PermissionsOf, PoolsOf, PracticesIn, PracticesOf, ProductsOf, RequestIn,
    RequestLoader, UserIn,
};
use crate::app::identity::credentials::Viewer;
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
#[graphql(remote = "domain::Permission")]
pub enum Permission {
    Scheduling,
    ClinicalNotes,
    Prescribing,
    Billing,
    Reporting,
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
    AuditEvent(AuditEvent),
    AccountRequest(super::request::AccountRequest),
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

#[derive(SimpleObject)]
pub struct UserEdge {
    pub cursor: String,
    pub node: User,
}

#[derive(SimpleObject)]
pub struct UserConnection {
    pub edges: Vec<UserEdge>,
    pub page_info: PageInfo,
    pub total_count: i64,
}

/// One entry of the organization's audit log.
pub struct AuditEvent(pub crate::domain::audit::AuditRecord);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
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

#[derive(SimpleObject)]
pub struct AuditEventEdge {
    pub cursor: String,
    pub node: AuditEvent,
}

#[derive(SimpleObject)]
pub struct AuditEventConnection {
    pub edges: Vec<AuditEventEdge>,
    pub page_info: PageInfo,
    pub total_count: i64,
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

/// A signed-in device, as listed to its user and to admins.
pub struct Session {
    pub record: crate::domain::SessionRecord,
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
