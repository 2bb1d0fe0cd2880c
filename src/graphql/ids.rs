//! Global IDs from the API's arguments, parsed in one place. An ID that names nothing of
//! the kind asked for is passed on as `None` (a [`ClientId`]): the app answers it as an
//! unknown object, after its own checks.

use crate::domain::id::{ClientId, GlobalId};
use crate::domain::{DomainError, ErrorCode, UserId};
use async_graphql::ID;

pub(crate) fn client_id<T: GlobalId>(id: &ID) -> ClientId<T> {
    T::from_global(id.as_str())
}

pub(crate) fn client_ids<T: GlobalId>(ids: &[ID]) -> Vec<ClientId<T>> {
    ids.iter().map(client_id).collect()
}

/// A filter by ID: absent or blank is no filter.
pub(crate) fn id_filter<T: GlobalId>(id: Option<&ID>) -> Option<ClientId<T>> {
    id.map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .map(T::from_global)
}

/// Parses a user ID argument; a malformed one is as unknown as any other.
pub(in crate::graphql) fn user_id(id: &ID) -> Result<UserId, crate::app::AppError> {
    client_id::<UserId>(id).ok_or_else(|| {
        DomainError::new(ErrorCode::NotFound, "No such user.")
            .on("userId")
            .into()
    })
}
