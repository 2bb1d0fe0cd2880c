//! The one mapping from application errors to GraphQL: domain refusals become `userErrors`,
//! everything else a GraphQL error with `extensions.code`.

use crate::app::{AppError, AppResult};
use crate::domain::{self, DomainError};
use async_graphql::{Enum, ErrorExtensions, SimpleObject};

/// `.gql()?` on a use case's result keeps the error's code.
pub trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for AppResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(gql)
    }
}

fn coded(message: &str, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Converts an application error into a GraphQL error with `extensions.code`
/// (`AppError` is `Display`, so async-graphql's blanket `From` would drop the code).
pub fn gql(err: AppError) -> async_graphql::Error {
    match err {
        AppError::Unauthenticated => coded("Sign in first.", "UNAUTHENTICATED"),
        AppError::Forbidden => coded("Your role does not allow this.", "FORBIDDEN"),
        AppError::RateLimited => coded(
            "Too many sign-in attempts from your address; wait a minute.",
            "RATE_LIMITED",
        ),
        AppError::PasswordChangeRequired => coded(
            "Your password was reset by an administrator: change it (changePassword) before anything else.",
            "PASSWORD_CHANGE_REQUIRED",
        ),
        AppError::BadUserInput(message) => coded(&message, "BAD_USER_INPUT"),
        AppError::Domain(domain) => async_graphql::Error::new(domain.message.clone())
            .extend_with(|_, e| e.set("code", domain.code.as_str())),
        AppError::Unexpected(cause) => {
            tracing::error!(error = ?cause, "internal error");
            coded(
                "Something went wrong on our side; it has been logged.",
                "INTERNAL",
            )
        }
    }
}

/// Splits a mutation's outcome: domain refusals go into the payload's `userErrors`
/// (with the field path under `input`), anything else stays a GraphQL error.
pub fn user_errors<T>(
    result: Result<T, AppError>,
) -> async_graphql::Result<(Option<T>, Vec<UserError>)> {
    match result {
        Ok(value) => Ok((Some(value), Vec::new())),
        Err(AppError::Domain(domain)) => Ok((None, vec![UserError::from(domain)])),
        Err(other) => Err(gql(other)),
    }
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
