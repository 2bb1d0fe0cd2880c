//! SQL of the `DirectoryStore`: organizations, practices, license pools and users.

macro_rules! directory_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::DirectoryStore for $store {
            async fn create_organization(&self, new: NewOrganization) -> StoreResult<(Organization, User)> {
                let mut tx = self.begin_write().await?;
                let org: OrganizationRow = sqlx::query_as(
                    "INSERT INTO organizations (name, created_at, audit_seq, audit_head) \
                     VALUES ($1, $2, 0, $3) RETURNING id, name, created_at",
                )
                .bind(&new.name)
                .bind(new.created_at)
                .bind(audit::GENESIS.to_vec())
                .fetch_one(&mut *tx)
                .await?;
                let org = Organization::from(org);
                for (product, kind, total) in &new.pools {
                    sqlx::query(
                        "INSERT INTO license_pools (org_id, product, kind, total, used) \
                         VALUES ($1, $2, $3, $4, 0)",
                    )
                    .bind(org.id.0)
                    .bind(product.as_str())
                    .bind(kind.as_str())
                    .bind(*total)
                    .execute(&mut *tx)
                    .await?;
                    let mut audit = AuditEntry::new(org.id, new.created_at, "license.pool_changed")
                        .details(serde_json::json!({
                            "product": product.as_str(), "kind": kind.as_str(),
                            "before": {"total": 0}, "after": {"total": total},
                        }));
                    audit.actor_id = None;
                    Self::append_audit_in(&mut tx, &audit).await?;
                }
                let mut owner = new.owner.clone();
                owner.user.org_id = org.id;
                let user = Self::create_user_in(&mut tx, &owner).await?;
                tx.commit().await?;
                Ok((org, user))
            }

            async fn organization(&self, id: OrgId) -> StoreResult<Organization> {
                let row: OrganizationRow =
                    sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(row.into())
            }

            async fn organization_ids(&self) -> StoreResult<Vec<OrgId>> {
                let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ids.into_iter().map(OrgId).collect())
            }

            async fn create_practice(&self, org_id: OrgId, name: &str, audit: AuditEntry) -> StoreResult<Practice> {
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
                let mut audit = audit;
                audit.org_id = org_id;
                if let serde_json::Value::Object(map) = &mut audit.details {
                    map.insert("practiceId".into(), practice.id.to_global().into());
                    map.insert("name".into(), practice.name.clone().into());
                }
                Self::append_audit_in(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(practice)
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
                let mut tx = self.begin_write().await?;
                let user = Self::create_user_in(&mut tx, &creation).await?;
                tx.commit().await?;
                Ok(user)
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

        }
    };
}

pub(crate) use directory_impl;
