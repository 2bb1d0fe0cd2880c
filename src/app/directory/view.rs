//! What one operation may read in batches: its caller's organization, and nothing else.
//! The app hands a view out for a signed-in caller ([`crate::app::App::view`]); a read for
//! another organization is refused.

use crate::app::{AppError, AppResult, Caller, Shared};
use crate::domain::{
    AccountRequest, LicensePool, OrgId, Organization, Permission, Practice, Product,
    RequestDecision, RequestEvent, RequestId, User, UserId,
};
use std::sync::Arc;

/// The caller's organization, for batched reads of what the caller was already shown.
#[derive(Clone)]
pub struct OrgView {
    shared: Arc<Shared>,
    org: OrgId,
}

impl super::Directory {
    /// The view of the caller's organization.
    pub fn view(&self, caller: &Caller) -> OrgView {
        OrgView {
            shared: self.0.clone(),
            org: caller.inner().org_id(),
        }
    }
}

impl OrgView {
    /// Refuses a read of another organization.
    fn own(&self, org: OrgId) -> AppResult<OrgId> {
        if org == self.org {
            Ok(org)
        } else {
            Err(AppError::Forbidden)
        }
    }

    pub async fn organization(&self, org: OrgId) -> AppResult<Organization> {
        Ok(self.shared.store.organization(self.own(org)?).await?)
    }

    pub async fn practices(&self, org: OrgId) -> AppResult<Vec<Practice>> {
        Ok(self.shared.store.practices(self.own(org)?).await?)
    }

    pub async fn license_pools(&self, org: OrgId) -> AppResult<Vec<LicensePool>> {
        Ok(self.shared.store.license_pools(self.own(org)?).await?)
    }

    /// The organization's owners (not inactive).
    pub async fn owners(&self, org: OrgId) -> AppResult<Vec<User>> {
        Ok(self.shared.store.owners(self.own(org)?).await?)
    }

    /// Users of the organization by ID; any other ID is not found.
    pub async fn users(&self, org: OrgId, ids: &[UserId]) -> AppResult<Vec<User>> {
        Ok(self.shared.store.users_by_ids(self.own(org)?, ids).await?)
    }

    /// Requests of the organization by ID; any other ID is not found.
    pub async fn requests(&self, org: OrgId, ids: &[RequestId]) -> AppResult<Vec<AccountRequest>> {
        Ok(self
            .shared
            .store
            .requests_by_ids(self.own(org)?, ids)
            .await?)
    }

    // The reads below take IDs of users and requests the view already returned.

    pub async fn practices_of_users(&self, ids: &[UserId]) -> AppResult<Vec<(UserId, Practice)>> {
        Ok(self.shared.store.practices_of_users(ids).await?)
    }

    pub async fn products_of_users(&self, ids: &[UserId]) -> AppResult<Vec<(UserId, Product)>> {
        Ok(self.shared.store.products_of_users(ids).await?)
    }

    pub async fn permissions_of_users(
        &self,
        ids: &[UserId],
    ) -> AppResult<Vec<(UserId, Permission)>> {
        Ok(self.shared.store.permissions_of_users(ids).await?)
    }

    pub async fn decisions_of(
        &self,
        ids: &[RequestId],
    ) -> AppResult<Vec<(RequestId, RequestDecision)>> {
        Ok(self.shared.store.decisions_of(ids).await?)
    }

    pub async fn events_of(&self, ids: &[RequestId]) -> AppResult<Vec<(RequestId, RequestEvent)>> {
        Ok(self.shared.store.events_of(ids).await?)
    }
}
