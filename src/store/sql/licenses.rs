//! Licenses taken from an organization's pools as users get products, inside the
//! transaction of the change (an invitation's are taken in bulk: `bulk.rs`).

macro_rules! licenses_impl {
    ($store:ty) => {
        impl $store {
            /// Gives the user one license of each product (and records the products), taking
            /// them from the pool of the user's kind; `NoLicense` when one is used up.
            pub(super) async fn take_licenses_in(
                tx: &mut Tx,
                org_id: OrgId,
                user_id: UserId,
                kind: $crate::domain::UserKind,
                products: &[Product],
            ) -> StoreResult<()> {
                let mut products = products.to_vec();
                products.sort();
                products.dedup();
                for product in products {
                    let taken = sqlx::query(
                        "UPDATE license_pools SET used = used + 1 \
                         WHERE org_id = $1 AND product = $2 AND kind = $3 AND used < total",
                    )
                    .bind(org_id.0)
                    .bind(product.as_str())
                    .bind(kind.as_str())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if taken == 0 {
                        return Err(StoreError::NoLicense { product, kind });
                    }
                    sqlx::query("INSERT INTO user_products (user_id, product) VALUES ($1, $2)")
                        .bind(user_id.0)
                        .bind(product.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// Makes an INACTIVE user ACTIVE again with `products`, taking their licenses
            /// (`Conflict` when the user is not inactive, `NoLicense` when one is used up).
            /// The directory first (on PostgreSQL; see `create_users_in` for the order of
            /// locks), which also makes two reactivations of one user one after the other.
            pub(super) async fn reactivate_in(
                tx: &mut Tx,
                org_id: OrgId,
                user_id: UserId,
                products: &[Product],
                at: Timestamp,
            ) -> StoreResult<()> {
                if BACKEND == $crate::store::Backend::Postgres {
                    Self::lock_directory(tx, org_id).await?;
                }
                let kind: Option<String> = sqlx::query_scalar(
                    "SELECT kind FROM users WHERE id = $1 AND org_id = $2 AND status = 'INACTIVE'",
                )
                .bind(user_id.0)
                .bind(org_id.0)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(kind) = kind else {
                    return Err(StoreError::NotApplicable(
                        $crate::domain::request::NotApplicable::NotInactive,
                    ));
                };
                let kind = kind
                    .parse()
                    .map_err(|e: $crate::domain::enums::UnknownValue| {
                        StoreError::Corrupt(e.to_string())
                    })?;
                // An inactive user holds no license; the products they had are replaced.
                sqlx::query("DELETE FROM user_products WHERE user_id = $1")
                    .bind(user_id.0)
                    .execute(&mut **tx)
                    .await?;
                Self::take_licenses_in(tx, org_id, user_id, kind, products).await?;
                let reactivated = sqlx::query(
                    "UPDATE users SET status = 'ACTIVE', deactivated_at = NULL, updated_at = $2 \
                     WHERE id = $1 AND status = 'INACTIVE'",
                )
                .bind(user_id.0)
                .bind(at)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if reactivated == 0 {
                    return Err(StoreError::NotApplicable(
                        $crate::domain::request::NotApplicable::NotInactive,
                    ));
                }
                Ok(())
            }
        }
    };
}

pub(crate) use licenses_impl;
