//! The error of a use case: a domain refusal, an authentication or authorization failure,
//! or something unexpected that the client must not see the details of.

use crate::domain::{DomainError, ErrorCode};
use crate::store::StoreError;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A refusal the caller can act on (bad input, wrong state, no license…).
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("authentication required")]
    Unauthenticated,
    #[error("not allowed")]
    Forbidden,
    #[error("too many attempts")]
    RateLimited,
    #[error("the password must be changed first")]
    PasswordChangeRequired,
    /// An argument outside what the operation accepts (a page size, a cursor), for
    /// operations that have no `userErrors`.
    #[error("{0}")]
    BadUserInput(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => DomainError::new(ErrorCode::NotFound, "Not found.").into(),
            StoreError::AlreadyExists { field } => DomainError {
                code: ErrorCode::AlreadyExists,
                field: Some(field),
                message: format!("That {field} is already taken."),
            }
            .into(),
            StoreError::NoLicense { product, kind } => DomainError::new(
                ErrorCode::NoLicenseAvailable,
                format!("No {product} license is available for {kind} users; request more licenses first."),
            )
            .into(),
            StoreError::Conflict(what) => DomainError::new(ErrorCode::InvalidState, what).into(),
            StoreError::Forbidden => AppError::Forbidden,
            StoreError::NotApplicable(why) => {
                DomainError::new(ErrorCode::InvalidState, why.to_string()).into()
            }
            StoreError::LastOwner => DomainError::new(
                ErrorCode::LastOwner,
                "The organization's last active owner can be neither inactivated nor demoted.",
            )
            .into(),
            other => AppError::Unexpected(anyhow::Error::new(other)),
        }
    }
}
