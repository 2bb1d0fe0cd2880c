//! Users as members of an organization see them.

use super::Directory;
use crate::app::{Actor, AppResult};
use crate::domain::{User, UserId};
use crate::store::StoreError;

impl Directory {
    /// A practice of the caller's organization; any other ID is simply not there.
    pub async fn practice(
        &self,
        actor: &Actor,
        id: crate::domain::PracticeId,
    ) -> AppResult<Option<crate::domain::Practice>> {
        let practices = self.store.practices(actor.org_id()).await?;
        Ok(practices.into_iter().find(|p| p.id == id))
    }

    /// A user of the caller's organization; any other ID is simply not there.
    pub async fn user(&self, actor: &Actor, id: UserId) -> AppResult<Option<User>> {
        match self.store.user(actor.org_id(), id).await {
            Ok(user) => Ok(Some(user)),
            Err(StoreError::NotFound) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }
}
