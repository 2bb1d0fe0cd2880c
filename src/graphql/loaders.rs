//! Batched loading of what a list of users needs (practices, products, permissions,
//! related users): one query per field for a whole page, not one per user.

use super::gql;
use crate::app::{AppError, AppResult, OrgView};
use crate::domain::{
    AccountRequest, OrgId, Permission, Practice, Product, RequestDecision, RequestEvent, RequestId,
    User, UserId,
};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use std::collections::HashMap;

/// The loaders of one request (created per request, so nothing is cached across requests),
/// reading through the caller's view of their organization.
pub struct Loaders {
    view: Option<OrgView>,
}

impl Loaders {
    fn view(&self) -> AppResult<&OrgView> {
        self.view.as_ref().ok_or(AppError::Unauthenticated)
    }
}

/// What resolvers find in the request's data.
pub type RequestLoader = DataLoader<Loaders, HashMapCache>;

/// A loader for one request, caching what it loads until the request ends.
pub fn request_loader(view: Option<OrgView>) -> RequestLoader {
    DataLoader::with_cache(Loaders { view }, tokio::spawn, HashMapCache::default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PracticesOf(pub UserId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProductsOf(pub UserId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermissionsOf(pub UserId);
/// An organization, by ID (every user of a page shares one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgById(pub OrgId);

/// An organization's practices and license pools (and owners, below): read once per
/// operation however many users of a page lead to their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PracticesIn(pub OrgId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolsOf(pub OrgId);

/// A user of an organization, by ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserIn(pub OrgId, pub UserId);

/// Groups (owner, value) pairs by owner (a user, a request), giving every asked-for key
/// an entry.
fn grouped<K, I, V>(keys: &[K], owner: impl Fn(K) -> I, pairs: Vec<(I, V)>) -> HashMap<K, Vec<V>>
where
    K: Copy + Eq + std::hash::Hash,
    I: Eq + std::hash::Hash,
{
    let mut by_owner: HashMap<I, Vec<V>> = HashMap::new();
    for (id, value) in pairs {
        by_owner.entry(id).or_default().push(value);
    }
    keys.iter()
        .map(|k| (*k, by_owner.remove(&owner(*k)).unwrap_or_default()))
        .collect()
}

impl Loader<PracticesOf> for Loaders {
    type Value = Vec<Practice>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PracticesOf],
    ) -> Result<HashMap<PracticesOf, Self::Value>, Self::Error> {
        let ids: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let pairs = self
            .view()
            .map_err(gql)?
            .practices_of_users(&ids)
            .await
            .map_err(gql)?;
        Ok(grouped(keys, |k| k.0, pairs))
    }
}

impl Loader<ProductsOf> for Loaders {
    type Value = Vec<Product>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ProductsOf],
    ) -> Result<HashMap<ProductsOf, Self::Value>, Self::Error> {
        let ids: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let pairs = self
            .view()
            .map_err(gql)?
            .products_of_users(&ids)
            .await
            .map_err(gql)?;
        Ok(grouped(keys, |k| k.0, pairs))
    }
}

impl Loader<PermissionsOf> for Loaders {
    type Value = Vec<Permission>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PermissionsOf],
    ) -> Result<HashMap<PermissionsOf, Self::Value>, Self::Error> {
        let ids: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let pairs = self
            .view()
            .map_err(gql)?
            .permissions_of_users(&ids)
            .await
            .map_err(gql)?;
        Ok(grouped(keys, |k| k.0, pairs))
    }
}

/// One read per distinct organization (an operation sees only the caller's).
macro_rules! per_org_loader {
    ($key:ident, $value:ty, $read:ident) => {
        impl Loader<$key> for Loaders {
            type Value = $value;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $value>, Self::Error> {
                let mut found = HashMap::new();
                for key in keys {
                    found.insert(
                        *key,
                        self.view().map_err(gql)?.$read(key.0).await.map_err(gql)?,
                    );
                }
                Ok(found)
            }
        }
    };
}

per_org_loader!(PracticesIn, Vec<Practice>, practices);
per_org_loader!(PoolsOf, Vec<crate::domain::LicensePool>, license_pools);
per_org_loader!(OrgById, crate::domain::Organization, organization);
per_org_loader!(OwnersOf, Vec<User>, owners);

impl Loader<UserIn> for Loaders {
    type Value = User;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserIn]) -> Result<HashMap<UserIn, Self::Value>, Self::Error> {
        let mut by_org: HashMap<OrgId, Vec<UserId>> = HashMap::new();
        for key in keys {
            by_org.entry(key.0).or_default().push(key.1);
        }
        let mut found = HashMap::new();
        for (org, ids) in by_org {
            for user in self
                .view()
                .map_err(gql)?
                .users(org, &ids)
                .await
                .map_err(gql)?
            {
                found.insert(UserIn(org, user.id), user);
            }
        }
        Ok(found)
    }
}

/// A request of an organization, by ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestIn(pub OrgId, pub RequestId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionsOf(pub RequestId);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventsOf(pub RequestId);
/// The owners of an organization (not inactive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnersOf(pub OrgId);

impl Loader<RequestIn> for Loaders {
    type Value = AccountRequest;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[RequestIn],
    ) -> Result<HashMap<RequestIn, Self::Value>, Self::Error> {
        let mut by_org: HashMap<OrgId, Vec<RequestId>> = HashMap::new();
        for key in keys {
            by_org.entry(key.0).or_default().push(key.1);
        }
        let mut found = HashMap::new();
        for (org, ids) in by_org {
            for request in self
                .view()
                .map_err(gql)?
                .requests(org, &ids)
                .await
                .map_err(gql)?
            {
                found.insert(RequestIn(org, request.id), request);
            }
        }
        Ok(found)
    }
}

impl Loader<DecisionsOf> for Loaders {
    type Value = Vec<RequestDecision>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[DecisionsOf],
    ) -> Result<HashMap<DecisionsOf, Self::Value>, Self::Error> {
        let ids: Vec<RequestId> = keys.iter().map(|k| k.0).collect();
        let pairs = self
            .view()
            .map_err(gql)?
            .decisions_of(&ids)
            .await
            .map_err(gql)?;
        Ok(grouped(keys, |k| k.0, pairs))
    }
}

impl Loader<EventsOf> for Loaders {
    type Value = Vec<RequestEvent>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EventsOf]) -> Result<HashMap<EventsOf, Self::Value>, Self::Error> {
        let ids: Vec<RequestId> = keys.iter().map(|k| k.0).collect();
        let pairs = self
            .view()
            .map_err(gql)?
            .events_of(&ids)
            .await
            .map_err(gql)?;
        Ok(grouped(keys, |k| k.0, pairs))
    }
}
