//! Pages of a list: the size asked for, opaque cursors.

use super::{AppError, AppResult};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Items per page when `first` is not given.
const DEFAULT_PAGE: usize = 20;

/// A page of results with the cursor after each item.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next: bool,
    pub total: Option<i64>,
}

/// Checks `first` against the page limit.
pub(crate) fn page_size(first: Option<i32>, max: usize) -> AppResult<usize> {
    match first {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some(n) if n < 0 => Err(AppError::BadUserInput("`first` cannot be negative.".into())),
        Some(n) if n as usize > max => Err(AppError::BadUserInput(format!(
            "`first` can be at most {max}."
        ))),
        Some(n) => Ok(n as usize),
    }
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub(crate) fn decode_cursor(cursor: &str) -> AppResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .filter(|key| !key.is_empty() && key.len() <= 1000)
        .ok_or_else(|| AppError::BadUserInput("`after` is not a cursor from this list.".into()))
}

/// Blank filters are no filters.
pub(crate) fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
