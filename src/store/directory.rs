//! Directory contracts: organizations, practices, license pools, users and their search.

use super::*;

/// A user to create. Licenses of each product are taken from the pool of the user's kind.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: OrgId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub mobile: Option<String>,
    pub kind: UserKind,
    pub role: Role,
    pub products: Vec<Product>,
    pub permissions: Vec<crate::domain::Permission>,
    pub practice_ids: Vec<PracticeId>,
    /// Set: the user is ACTIVE with this argon2 hash. Unset: INVITED.
    pub password_hash: Option<String>,
    pub encryption_key: Vec<u8>,
    pub created_at: Timestamp,
}

/// How a new user is recorded: the audit event (its subject becomes the new user) and,
/// when invited, the setup email to queue in the same transaction.
#[derive(Debug, Clone)]
pub struct UserCreation {
    pub user: NewUser,
    pub audit: AuditEntry,
    /// The account-setup email to queue for the new user, when there is one.
    pub setup_email: Option<OutboxFor<UserId>>,
}

/// A new organization with its license pools and first OWNER.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: String,
    pub created_at: Timestamp,
    pub pools: Vec<(Product, UserKind, i32)>,
    /// The owner; its `org_id` is ignored and set to the new organization.
    pub owner: UserCreation,
}

/// Organizations, practices, license pools and users.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates the organization, its pools and its owner (taking the owner's licenses),
    /// with their audit events and the owner's setup email, all or nothing.
    async fn create_organization(&self, new: NewOrganization) -> StoreResult<(Organization, User)>;
    async fn organization(&self, id: OrgId) -> StoreResult<Organization>;
    async fn organization_ids(&self) -> StoreResult<Vec<OrgId>>;

    async fn create_practice(
        &self,
        org_id: OrgId,
        name: &str,
        audit: AuditEntry,
    ) -> StoreResult<Practice>;
    async fn practices(&self, org_id: OrgId) -> StoreResult<Vec<Practice>>;
    async fn license_pools(&self, org_id: OrgId) -> StoreResult<Vec<LicensePool>>;

    /// Creates a user, taking one license per product atomically (`NoLicense` changes nothing).
    async fn create_user(&self, creation: UserCreation) -> StoreResult<User>;
    /// A user of the organization; another organization's user is `NotFound`.
    async fn user(&self, org_id: OrgId, id: UserId) -> StoreResult<User>;
    async fn user_products(&self, id: UserId) -> StoreResult<Vec<Product>>;
    async fn owners(&self, org_id: OrgId) -> StoreResult<Vec<User>>;
    /// Users of the organization among `ids` (others are left out).
    async fn users_by_ids(&self, org_id: OrgId, ids: &[UserId]) -> StoreResult<Vec<User>>;
    async fn practices_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Practice)>>;
    async fn products_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Product)>>;
    async fn permissions_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Permission)>>;
    async fn update_user(&self, update: UserUpdate) -> StoreResult<User>;
    /// Reactivates an INACTIVE user with the given products, taking their licenses
    /// (`NoLicense` changes nothing; a user no longer inactive is a `Conflict`).
    async fn reactivate_user(&self, reactivation: Reactivation) -> StoreResult<User>;
}

/// What a node keeps in memory to save statements: a map emptied at once when it
/// reaches `CAPACITY` entries, so that it stays bounded with no bookkeeping per entry.
#[derive(Debug)]
pub struct Remembered<K, V, const CAPACITY: usize>(std::sync::Mutex<HashMap<K, V>>);

impl<K, V, const CAPACITY: usize> Default for Remembered<K, V, CAPACITY> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<K: Eq + std::hash::Hash, V: Clone, const CAPACITY: usize> Remembered<K, V, CAPACITY> {
    pub const CAPACITY: usize = CAPACITY;

    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub fn put(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Totals of users searches, each good for one version of its organization's directory
/// (moved on by the database whenever a user or their practices change): about 80 bytes
/// each, 10,000 at most.
#[derive(Debug, Default)]
pub struct SearchTotals(Remembered<(OrgId, SearchKey), (i64, i64), 10_000>);

/// A search's filter, hashed: what is remembered per search stays the same small size
/// however long the filter's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SearchKey([u8; 32]);

impl SearchTotals {
    /// What identifies a search's matches: its filter, not its page.
    pub fn key(search: &UserSearch) -> SearchKey {
        use sha2::Digest as _;
        let filter = UserSearch {
            after: None,
            limit: 0,
            with_total: false,
            now: Timestamp::default(),
            ..search.clone()
        };
        SearchKey(sha2::Sha256::digest(format!("{filter:?}").as_bytes()).into())
    }

    pub fn get(&self, org: OrgId, key: &SearchKey, version: i64) -> Option<i64> {
        self.0
            .get(&(org, *key))
            .filter(|(at, _)| *at == version)
            .map(|(_, total)| total)
    }

    pub fn put(&self, org: OrgId, key: SearchKey, version: i64, total: i64) {
        self.0.put((org, key), (version, total));
    }
}

/// A change of a user's profile; `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `Some(None)` clears the mobile.
    pub mobile: Option<Option<String>>,
    pub practice_ids: Option<Vec<PracticeId>>,
    pub audit: AuditEntry,
}

#[derive(Debug, Clone)]
pub struct Reactivation {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub products: Vec<Product>,
    pub audit: AuditEntry,
}

/// Organizations read before, at most 20,000 (a vendor's whole list, a few MB). An
/// organization is never renamed or removed, so what was read once stays true on every
/// node: request emails name theirs without a statement each.
pub type KnownOrganizations = Remembered<OrgId, Organization, 20_000>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_organizations_are_kept_up_to_their_capacity() {
        let known = KnownOrganizations::default();
        let org = |id: i64| Organization {
            id: OrgId(id),
            name: format!("Practice {id}"),
            created_at: crate::domain::now(),
        };
        assert_eq!(known.get(&OrgId(1)), None);
        known.put(OrgId(1), org(1));
        assert_eq!(
            known.get(&OrgId(1)).map(|o| o.name),
            Some("Practice 1".into())
        );
        for id in 2..=KnownOrganizations::CAPACITY as i64 {
            known.put(OrgId(id), org(id));
        }
        assert!(known.get(&OrgId(1)).is_some());
        // One more empties the map first: memory stays bounded.
        known.put(OrgId(0), org(0));
        assert_eq!(known.get(&OrgId(1)), None);
        assert!(known.get(&OrgId(0)).is_some());
    }
}
