//! Domain refusals: what went wrong in the caller's terms, with the contract's error code.

/// The contract's `UserErrorCode`, the machine-readable reason of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
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

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::SharedEmailNotAllowed => "SHARED_EMAIL_NOT_ALLOWED",
            ErrorCode::NoLicenseAvailable => "NO_LICENSE_AVAILABLE",
            ErrorCode::WeakPassword => "WEAK_PASSWORD",
            ErrorCode::TokenInvalid => "TOKEN_INVALID",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::SecurityAnswerMismatch => "SECURITY_ANSWER_MISMATCH",
            ErrorCode::TermsNotAccepted => "TERMS_NOT_ACCEPTED",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::SelfApprovalNotAllowed => "SELF_APPROVAL_NOT_ALLOWED",
            ErrorCode::LastOwner => "LAST_OWNER",
        }
    }
}

/// A refusal of the domain: a code, the input field at fault (if any) and a message
/// fit to show the person who typed the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub field: Option<&'static str>,
    pub message: String,
}

impl DomainError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidInput,
            field: Some(field),
            message: message.into(),
        }
    }

    /// Names the input field at fault.
    pub fn on(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}
