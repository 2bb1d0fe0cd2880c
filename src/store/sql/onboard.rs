//! Onboarding: organizations created with their license pools, and users imported into
//! them in bulk, one organization or many to a transaction, through the batch path of
//! `bulk.rs`.

macro_rules! onboard_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ImportStore for $store {
            async fn taken_identities(&self, usernames: &[String], emails: &[String]) -> StoreResult<(Vec<String>, Vec<String>)> {
                let mut taken = (Vec::new(), Vec::new());
                for (names, sql, found) in [
                    (usernames, "SELECT username FROM users WHERE username IN (", &mut taken.0),
                    (emails, "SELECT lower(email) FROM users WHERE lower(email) IN (", &mut taken.1),
                ] {
                    for part in names.chunks(500) {
                        let mut b = sqlx::QueryBuilder::<Db>::new(sql);
                        let mut list = b.separated(", ");
                        for name in part {
                            list.push_bind(name.clone());
                        }
                        b.push(")");
                        found.extend(b.build_query_scalar::<String>().fetch_all(&self.pool).await?);
                    }
                }
                Ok(taken)
            }

            async fn import_users(
                &self,
                import: $crate::store::UserImport,
                progress: &(dyn Fn(usize) + Send + Sync),
            ) -> StoreResult<Vec<UserId>> {
                let mut tx = self.begin_write().await?;
                let large = Self::widen_cache(&mut tx, import.users.len()).await?;
                let ids: StoreResult<_> = async {
                    let (org_id, mut audits) = (import.org_id, Vec::new());
                    let ids = Self::import_users_in(&mut tx, import, progress, &mut audits, false).await?;
                    Self::append_audits_in(&mut tx, org_id, &audits).await?;
                    Ok(ids)
                }
                .await;
                // Narrowed whether or not the import failed: the connection goes back to
                // the pool either way.
                Self::narrow_cache(&mut tx, large).await?;
                let ids = ids?;
                tx.commit().await?;
                Ok(ids)
            }

            async fn import_organizations(
                &self,
                imports: Vec<(NewOrganization, $crate::store::UserImport)>,
            ) -> StoreResult<Vec<(Organization, User)>> {
                let mut tx = self.begin_write().await?;
                let users = imports.iter().map(|(_, import)| import.users.len()).sum();
                let large = Self::widen_cache(&mut tx, users).await?;
                let created = Self::onboard_in(&mut tx, imports).await;
                Self::narrow_cache(&mut tx, large).await?;
                let created = created?;
                tx.commit().await?;
                Ok(created)
            }
        }

        impl $store {
            /// The postings of thousands of users land all over the index: on SQLite it
            /// is kept in memory while a large import writes (`narrow_cache` sets it back
            /// before commit), and the process's limit on SQLite's memory is lifted
            /// meanwhile (it is one for all connections: an import that ends while
            /// another runs puts it back early, which slows the other, nothing more).
            /// Not for a small batch: setting it back empties the connection's cache.
            /// Returns whether it was widened.
            async fn widen_cache(tx: &mut Tx, users: usize) -> StoreResult<bool> {
                let large = BACKEND == $crate::store::Backend::Sqlite && users >= 2_000;
                if large {
                    sqlx::query("PRAGMA soft_heap_limit = 0").execute(&mut **tx).await?;
                    sqlx::query("PRAGMA cache_size = -262144").execute(&mut **tx).await?;
                }
                Ok(large)
            }

            /// Each organization and its users; the owner is written with the members, one
            /// pass for them all.
            async fn onboard_in(
                tx: &mut Tx,
                imports: Vec<(NewOrganization, $crate::store::UserImport)>,
            ) -> StoreResult<Vec<(Organization, User)>> {
                let mut created = Vec::with_capacity(imports.len());
                for (new, mut import) in imports {
                    // The organization's events (its pools, practices and users) go into
                    // its audit chain together.
                    let mut audits = Vec::new();
                    let org = Self::insert_organization_in(tx, &new, &mut audits).await?;
                    import.org_id = org.id;
                    import.users.insert(0, (new.owner, Vec::new()));
                    let ids = Self::import_users_in(tx, import, &|_| {}, &mut audits, true).await?;
                    let genesis = (0, audit::GENESIS.to_vec());
                    Self::append_audits_after(tx, org.id, &audits, Some(genesis)).await?;
                    let owner = Self::user_in(tx, ids[0]).await?;
                    created.push((org, owner));
                }
                Ok(created)
            }

            async fn narrow_cache(tx: &mut Tx, widened: bool) -> StoreResult<()> {
                if widened {
                    use $crate::store::{SQLITE_CACHE_SIZE, SQLITE_HEAP_LIMIT};
                    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {SQLITE_CACHE_SIZE}"))).execute(&mut **tx).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT}"))).execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Creates an organization inside `tx` (see `create_organization`).
            pub(super) async fn create_organization_in(tx: &mut Tx, new: NewOrganization) -> StoreResult<(Organization, User)> {
                let mut audits = Vec::new();
                let org = Self::insert_organization_in(tx, &new, &mut audits).await?;
                Self::append_audits_in(tx, org.id, &audits).await?;
                let mut owner = new.owner;
                owner.user.org_id = org.id;
                let user = Self::create_user_in(tx, &owner).await?;
                Ok((org, user))
            }

            /// The organization's row and license pools; their audit events are added to
            /// `audits`.
            async fn insert_organization_in(tx: &mut Tx, new: &NewOrganization, audits: &mut Vec<AuditEntry>) -> StoreResult<Organization> {
                let org: OrganizationRow = sqlx::query_as(
                    "INSERT INTO organizations (name, created_at, audit_seq, audit_head) \
                     VALUES ($1, $2, 0, $3) RETURNING id, name, created_at",
                )
                .bind(&new.name)
                .bind(new.created_at)
                .bind(audit::GENESIS.to_vec())
                .fetch_one(&mut **tx)
                .await?;
                let org = Organization::from(org);
                if !new.pools.is_empty() {
                    let mut insert = sqlx::QueryBuilder::<Db>::new("INSERT INTO license_pools (org_id, product, kind, total, used) ");
                    insert.push_values(&new.pools, |mut row, (product, kind, total)| {
                        row.push_bind(org.id.0).push_bind(product.as_str()).push_bind(kind.as_str()).push_bind(*total).push_bind(0);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                audits.extend(new.pools.iter().map(|(product, kind, total)| {
                    AuditEntry::new(org.id, new.created_at, "license.pool_changed").details(serde_json::json!({
                        "product": product.as_str(), "kind": kind.as_str(),
                        "before": {"total": 0}, "after": {"total": total},
                    }))
                }));
                Ok(org)
            }

            /// Writes one organization's import inside `tx` (see `import_users`); its audit
            /// events (practices, then users) are added to `audits`. `new` when the
            /// organization was created in `tx` (its directory is empty).
            async fn import_users_in(
                tx: &mut Tx,
                import: $crate::store::UserImport,
                progress: &(dyn Fn(usize) + Send + Sync),
                audits: &mut Vec<AuditEntry>,
                new: bool,
            ) -> StoreResult<Vec<UserId>> {
                let org_id = import.org_id;
                // The new practices in one statement; the organization's others are read
                // only when a user names one of them.
                let mut practices = std::collections::HashMap::<String, i64>::new();
                if !import.new_practices.is_empty() {
                    let mut insert = sqlx::QueryBuilder::<Db>::new("INSERT INTO practices (org_id, name, created_at) ");
                    insert.push_values(&import.new_practices, |mut row, (name, audit)| {
                        row.push_bind(org_id.0).push_bind(name.clone()).push_bind(audit.at);
                    });
                    insert.push(" RETURNING id, name");
                    let created: Vec<(i64, String)> = insert.build_query_as().fetch_all(&mut **tx).await?;
                    practices.extend(created.into_iter().map(|(id, name)| (name.to_lowercase(), id)));
                }
                for (name, audit) in &import.new_practices {
                    let id = practices[&name.to_lowercase()];
                    let mut audit = audit.clone();
                    audit.org_id = org_id;
                    if let serde_json::Value::Object(map) = &mut audit.details {
                        map.insert("practiceId".into(), $crate::domain::PracticeId(id).to_global().into());
                        map.insert("name".into(), name.clone().into());
                    }
                    audits.push(audit);
                }
                let named_elsewhere = import
                    .users
                    .iter()
                    .flat_map(|(_, names)| names)
                    .any(|name| !practices.contains_key(&name.to_lowercase()));
                if named_elsewhere {
                    let existing: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM practices WHERE org_id = $1")
                        .bind(org_id.0)
                        .fetch_all(&mut **tx)
                        .await?;
                    practices.extend(existing.into_iter().map(|(id, name)| (name.to_lowercase(), id)));
                }
                let mut ids = Vec::with_capacity(import.users.len());
                let mut users = import.users.into_iter().peekable();
                while users.peek().is_some() {
                    // Practices found by name are the organization's; any given by ID are
                    // checked.
                    let mut given = false;
                    let chunk: Vec<UserCreation> = users
                        .by_ref()
                        .take(1000)
                        .map(|(mut creation, names)| {
                            given |= !creation.user.practice_ids.is_empty();
                            for name in names {
                                let id = practices.get(&name.to_lowercase()).ok_or(StoreError::NotFound)?;
                                creation.user.practice_ids.push($crate::domain::PracticeId(*id));
                            }
                            Ok(creation)
                        })
                        .collect::<StoreResult<_>>()?;
                    if given {
                        Self::check_practices(tx, org_id, &chunk).await?;
                    }
                    let empty = new && ids.is_empty();
                    ids.extend(Self::create_users_in(tx, org_id, &chunk, audits, empty).await?);
                    progress(ids.len());
                }
                Ok(ids)
            }
        }
    };
}

pub(crate) use onboard_impl;
