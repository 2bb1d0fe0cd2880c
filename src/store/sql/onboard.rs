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
                let ids = Self::import_users_in(&mut tx, import, progress).await;
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
                    let org = Self::insert_organization_in(tx, &new).await?;
                    import.org_id = org.id;
                    import.users.insert(0, (new.owner, Vec::new()));
                    let ids = Self::import_users_in(tx, import, &|_| {}).await?;
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
                let org = Self::insert_organization_in(tx, &new).await?;
                let mut owner = new.owner;
                owner.user.org_id = org.id;
                let user = Self::create_user_in(tx, &owner).await?;
                Ok((org, user))
            }

            /// The organization's row and license pools, with their audit events.
            async fn insert_organization_in(tx: &mut Tx, new: &NewOrganization) -> StoreResult<Organization> {
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
                let audits: Vec<AuditEntry> = new
                    .pools
                    .iter()
                    .map(|(product, kind, total)| {
                        AuditEntry::new(org.id, new.created_at, "license.pool_changed").details(serde_json::json!({
                            "product": product.as_str(), "kind": kind.as_str(),
                            "before": {"total": 0}, "after": {"total": total},
                        }))
                    })
                    .collect();
                Self::append_audits_in(tx, org.id, &audits).await?;
                Ok(org)
            }

            /// Writes one organization's import inside `tx` (see `import_users`).
            async fn import_users_in(
                tx: &mut Tx,
                import: $crate::store::UserImport,
                progress: &(dyn Fn(usize) + Send + Sync),
            ) -> StoreResult<Vec<UserId>> {
                let org_id = import.org_id;
                let mut audits = Vec::with_capacity(import.new_practices.len());
                for (name, audit) in &import.new_practices {
                    let id: i64 = sqlx::query_scalar("INSERT INTO practices (org_id, name, created_at) VALUES ($1, $2, $3) RETURNING id")
                        .bind(org_id.0)
                        .bind(name)
                        .bind(audit.at)
                        .fetch_one(&mut **tx)
                        .await?;
                    let mut audit = audit.clone();
                    audit.org_id = org_id;
                    if let serde_json::Value::Object(map) = &mut audit.details {
                        map.insert("practiceId".into(), $crate::domain::PracticeId(id).to_global().into());
                        map.insert("name".into(), name.clone().into());
                    }
                    audits.push(audit);
                }
                Self::append_audits_in(tx, org_id, &audits).await?;
                let practices: std::collections::HashMap<String, i64> =
                    sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM practices WHERE org_id = $1")
                        .bind(org_id.0)
                        .fetch_all(&mut **tx)
                        .await?
                        .into_iter()
                        .map(|(id, name)| (name.to_lowercase(), id))
                        .collect();
                let mut ids = Vec::with_capacity(import.users.len());
                let mut users = import.users.into_iter().peekable();
                while users.peek().is_some() {
                    let chunk: Vec<UserCreation> = users
                        .by_ref()
                        .take(1000)
                        .map(|(mut creation, names)| {
                            for name in names {
                                let id = practices.get(&name.to_lowercase()).ok_or(StoreError::NotFound)?;
                                creation.user.practice_ids.push($crate::domain::PracticeId(*id));
                            }
                            Ok(creation)
                        })
                        .collect::<StoreResult<_>>()?;
                    ids.extend(Self::create_users_in(tx, org_id, &chunk).await?);
                    progress(ids.len());
                }
                Ok(ids)
            }
        }
    };
}

pub(crate) use onboard_impl;
