//! GraphQL object types over domain records. Domain types stay free of GraphQL derives;
//! enums are mirrored here with `remote`.

use super::GqlResult;
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

pub(super) fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    ctx.data::<super::RequestContext>()?
        .actor
        .as_ref()
        .ok_or_else(|| super::gql(crate::app::AppError::Unauthenticated))
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

pub struct User(pub domain::User);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn first_name(&self) -> &str {
        &self.0.first_name
    }

    async fn last_name(&self) -> &str {
        &self.0.last_name
    }

    async fn display_name(&self) -> String {
        self.0.display_name()
    }

    async fn email(&self) -> &str {
        &self.0.email
    }

    /// E.164, e.g. +15035550123
    async fn mobile(&self) -> Option<&str> {
        self.0.mobile.as_deref()
    }

    async fn kind(&self) -> UserKind {
        self.0.kind.into()
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    async fn status(&self) -> UserStatus {
        self.0.status.into()
    }

    async fn locked(&self) -> bool {
        self.0.is_locked(domain::now())
    }

    async fn locked_until(&self) -> Option<Timestamp> {
        self.0.locked_until.filter(|until| *until > domain::now())
    }

    async fn password_change_required(&self) -> bool {
        self.0.password_change_required
    }

    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        let products = app(ctx)?.user_products(&self.0).await.gql()?;
        Ok(products.into_iter().map(Product::from).collect())
    }

    async fn encryption_key_version(&self) -> i32 {
        self.0.encryption_key_version
    }

    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<Organization> {
        Ok(Organization(
            app(ctx)?.organization_of(&self.0).await.gql()?,
        ))
    }

    async fn created_at(&self) -> Timestamp {
        self.0.created_at
    }

    async fn last_login_at(&self) -> Option<Timestamp> {
        self.0.last_login_at
    }

    async fn deactivated_at(&self) -> Option<Timestamp> {
        self.0.deactivated_at
    }
}
