//! SQL of the `DirectoryStore`: organizations, practices, license pools and users.

macro_rules! directory_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::DirectoryStore for $store {
            async fn create_organization(&self, new: NewOrganization) -> StoreResult<(Organization, User)> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let created = Self::create_organization_in(&mut tx, new.clone()).await?;
                    tx.commit().await?;
                    Ok(created)
                })
                .await
            }

            async fn organization(&self, id: OrgId) -> StoreResult<Organization> {
                if let Some(known) = self.organizations.get(&id) {
                    return Ok(known);
                }
                let row: OrganizationRow =
                    sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(&self.pool)
                        .await?;
                let organization: Organization = row.into();
                self.organizations.put(id, organization.clone());
                Ok(organization)
            }

            async fn organization_ids(&self) -> StoreResult<Vec<OrgId>> {
                let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ids.into_iter().map(OrgId).collect())
            }

            async fn create_practice(&self, org_id: OrgId, name: &str, audit: AuditEntry) -> StoreResult<Practice> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let row: PracticeRow = sqlx::query_as(
                        "INSERT INTO practices (org_id, name, created_at) VALUES ($1, $2, $3) \
                         RETURNING id, org_id, name, created_at",
                    )
                    .bind(org_id.0)
                    .bind(name)
                    .bind(audit.at)
                    .fetch_one(&mut *tx)
                    .await?;
                    let practice = Practice::from(row);
                    let mut audit = audit.clone();
                    audit.org_id = org_id;
                    if let serde_json::Value::Object(map) = &mut audit.details {
                        map.insert("practiceId".into(), practice.id.to_global().into());
                        map.insert("name".into(), practice.name.clone().into());
                    }
                    Self::append_audit_in(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok(practice)
                })
                .await
            }

            async fn practices(&self, org_id: OrgId) -> StoreResult<Vec<Practice>> {
                let rows: Vec<PracticeRow> = sqlx::query_as(
                    "SELECT id, org_id, name, created_at FROM practices WHERE org_id = $1 ORDER BY name, id",
                )
                .bind(org_id.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Practice::from).collect())
            }

            async fn license_pools(&self, org_id: OrgId) -> StoreResult<Vec<LicensePool>> {
                let rows: Vec<PoolRow> = sqlx::query_as(
                    "SELECT product, kind, total, used FROM license_pools WHERE org_id = $1 \
                     ORDER BY product, kind",
                )
                .bind(org_id.0)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(LicensePool::try_from).collect()
            }

            async fn create_user(&self, creation: UserCreation) -> StoreResult<User> {
                let created = retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let user = Self::create_user_in(&mut tx, &creation).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await;
                match created {
                    // Both taken (by another invitation at the same moment): the username
                    // is named, on both databases, whichever unique index each checks first.
                    Err(StoreError::AlreadyExists { field: "email" }) => {
                        let username: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                            .bind(&creation.user.username)
                            .fetch_optional(&self.pool)
                            .await?;
                        Err(StoreError::AlreadyExists { field: if username.is_some() { "username" } else { "email" } })
                    }
                    other => other,
                }
            }

            async fn user(&self, org_id: OrgId, id: UserId) -> StoreResult<User> {
                let row: UserRow = sqlx::query_as(concat!(
                    "SELECT ", user_columns!(), " FROM users u WHERE u.id = $1 AND u.org_id = $2"
                ))
                .bind(id.0)
                .bind(org_id.0)
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn user_products(&self, id: UserId) -> StoreResult<Vec<Product>> {
                let names: Vec<String> =
                    sqlx::query_scalar("SELECT product FROM user_products WHERE user_id = $1 ORDER BY product")
                        .bind(id.0)
                        .fetch_all(&self.pool)
                        .await?;
                names
                    .iter()
                    .map(|n| n.parse().map_err(|e: $crate::domain::enums::UnknownValue| StoreError::Corrupt(e.to_string())))
                    .collect()
            }


            async fn owners(&self, org_id: OrgId) -> StoreResult<Vec<User>> {
                let rows: Vec<UserRow> = sqlx::query_as(concat!(
                    "SELECT ", user_columns!(), " FROM users u WHERE u.org_id = $1 AND u.role = 'OWNER' \
                     AND u.status <> 'INACTIVE' ORDER BY u.sort_key"
                ))
                .bind(org_id.0)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(User::try_from).collect()
            }

            async fn users_by_ids(&self, org_id: OrgId, ids: &[UserId]) -> StoreResult<Vec<User>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.org_id = "));
                b.push_bind(org_id.0).push(" AND u.id IN (");
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(")");
                let rows: Vec<UserRow> = b.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(User::try_from).collect()
            }

            async fn practices_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Practice)>> {
                #[derive(sqlx::FromRow)]
                struct Row {
                    user_id: i64,
                    #[sqlx(flatten)]
                    practice: PracticeRow,
                }
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(
                    "SELECT up.user_id, p.id, p.org_id, p.name, p.created_at FROM user_practices up \
                     JOIN practices p ON p.id = up.practice_id WHERE up.user_id IN (",
                );
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(") ORDER BY p.name, p.id");
                let rows: Vec<Row> = b.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|r| (UserId(r.user_id), Practice::from(r.practice))).collect())
            }

            async fn products_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Product)>> {
                let pairs = Self::user_values(&self.pool, "SELECT user_id, product FROM user_products WHERE user_id IN (", ids).await?;
                pairs
                    .into_iter()
                    .map(|(id, p)| Ok((UserId(id), p.parse().map_err(|e: $crate::domain::enums::UnknownValue| StoreError::Corrupt(e.to_string()))?)))
                    .collect()
            }

            async fn permissions_of_users(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, $crate::domain::Permission)>> {
                let pairs = Self::user_values(&self.pool, "SELECT user_id, permission FROM user_permissions WHERE user_id IN (", ids).await?;
                pairs
                    .into_iter()
                    .map(|(id, p)| Ok((UserId(id), p.parse().map_err(|e: $crate::domain::enums::UnknownValue| StoreError::Corrupt(e.to_string()))?)))
                    .collect()
            }

            async fn update_user(&self, update: $crate::store::UserUpdate) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let at = update.audit.at;
                    // The row is read (and on PostgreSQL locked) once; the new names go in
                    // with the search entry they give, in one update.
                    let Some(mut row) = Self::indexed_in(&mut tx, update.org_id, update.user_id).await? else {
                        return Err(StoreError::NotFound);
                    };
                    if let Some(first) = &update.first_name {
                        row.first_name = first.clone();
                    }
                    if let Some(last) = &update.last_name {
                        row.last_name = last.clone();
                    }
                    if let Some(mobile) = &update.mobile {
                        row.mobile = mobile.clone();
                    }
                    let changed = update.first_name.is_some() || update.last_name.is_some() || update.mobile.is_some();
                    if let Some(practices) = &update.practice_ids {
                        sqlx::query("DELETE FROM user_practices WHERE user_id = $1")
                            .bind(update.user_id.0)
                            .execute(&mut *tx)
                            .await?;
                        let mut practices = practices.clone();
                        practices.sort();
                        practices.dedup();
                        for practice in practices {
                            // Only a practice of the same organization can be attached.
                            let attached = sqlx::query(
                                "INSERT INTO user_practices (user_id, practice_id) \
                                 SELECT $1, p.id FROM practices p WHERE p.id = $2 AND p.org_id = $3",
                            )
                            .bind(update.user_id.0)
                            .bind(practice.0)
                            .bind(update.org_id.0)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if attached == 0 {
                                return Err(StoreError::NotFound);
                            }
                        }
                    }
                    let user = Self::write_indexed(&mut tx, update.user_id, row, changed.then_some(at)).await?;
                    Self::append_audit_in(&mut tx, &update.audit).await?;
                    tx.commit().await?;
                    user.try_into()
                })
                .await
            }

            async fn reactivate_user(&self, r: $crate::store::Reactivation) -> StoreResult<User> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    Self::reactivate_in(&mut tx, r.org_id, r.user_id, &r.products, r.audit.at).await?;
                    Self::append_audit_in(&mut tx, &r.audit).await?;
                    let user = Self::user_in(&mut tx, r.user_id).await?;
                    tx.commit().await?;
                    Ok(user)
                })
                .await
            }
        }
    };
}

pub(crate) use directory_impl;
