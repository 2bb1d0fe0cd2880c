//! Users as members of an organization see them.

use super::{Actor, App, AppResult};
use crate::domain::{User, UserId};
use crate::store::StoreError;

impl App {
    /// A user of the caller's organization; any other ID is simply not there.
    pub async fn user(&self, actor: &Actor, id: UserId) -> AppResult<Option<User>> {
        match self.store.user(actor.org_id(), id).await {
            Ok(user) => Ok(Some(user)),
            Err(StoreError::NotFound) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }
}
