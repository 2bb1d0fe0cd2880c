//! SQL of the `LockoutStore`: secret checks claimed, failed and passed.

macro_rules! lockout_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LockoutStore for $store {
            async fn claim_secret_check(
                &self,
                user_id: UserId,
                now: Timestamp,
                threshold: i32,
                lock_until: Timestamp,
            ) -> StoreResult<$crate::store::SecretClaim> {
                use $crate::store::{SecretCheck, SecretClaim};
                // A lock that has run out no longer counts: the count starts over.
                let row: Option<(Option<String>, Option<Timestamp>)> = sqlx::query_as(
                    "UPDATE users SET \
                       failed_logins = CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END, \
                       locked_until = CASE WHEN \
                         (CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END) >= $3 \
                         THEN $4 ELSE NULL END, \
                       lock_pending = (CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END) >= $3 \
                     WHERE id = $1 AND status = 'ACTIVE' AND (locked_until IS NULL OR locked_until <= $2) \
                     RETURNING password_hash, locked_until",
                )
                .bind(user_id.0)
                .bind(now)
                .bind(threshold)
                .bind(lock_until)
                .fetch_optional(&self.writer)
                .await?;
                if let Some((password_hash, check_lock)) = row {
                    return Ok(SecretClaim::Granted(SecretCheck { password_hash, check_lock }));
                }
                // Refused for a lock of wrong secrets only; a pending lock, or one that ended
                // since, is worth another claim.
                let locked: Option<bool> = sqlx::query_scalar(
                    "SELECT COALESCE(locked_until > $2 AND NOT lock_pending, FALSE) FROM users \
                     WHERE id = $1 AND status = 'ACTIVE'",
                )
                .bind(user_id.0)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(if locked == Some(false) { SecretClaim::Pending } else { SecretClaim::Refused })
            }

            async fn secret_check_failed(&self, failure: $crate::store::FailedCheck) -> StoreResult<bool> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    Self::append_audit_in(&mut tx, &failure.audit).await?;
                    let mut locked = false;
                    if let Some(lock) = failure.check_lock {
                        // Unless a right secret or an admin ended it meanwhile.
                        locked = sqlx::query_scalar::<_, i64>(
                            "UPDATE users SET lock_pending = FALSE, locked_until = $3 \
                             WHERE id = $1 AND locked_until = $2 AND lock_pending RETURNING id",
                        )
                            .bind(failure.user_id.0)
                            .bind(lock)
                            .bind(failure.lock_until)
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_some();
                    }
                    if locked {
                        Self::append_audit_in(&mut tx, &failure.lock.audit).await?;
                        Self::enqueue_in(&mut tx, &failure.lock.email, failure.audit.at).await?;
                    }
                    tx.commit().await?;
                    Ok(locked)
                })
                .await
            }

            async fn secret_check_abandoned(&self, user_id: UserId, check_lock: Timestamp) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE users SET locked_until = NULL, lock_pending = FALSE \
                     WHERE id = $1 AND locked_until = $2 AND lock_pending",
                )
                .bind(user_id.0)
                .bind(check_lock)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn secret_check_passed(
                &self,
                user_id: UserId,
                check_lock: Option<Timestamp>,
                now: Timestamp,
            ) -> StoreResult<bool> {
                let updated = sqlx::query(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL, lock_pending = FALSE WHERE id = $1 \
                     AND (locked_until IS NULL OR locked_until <= $2 OR locked_until = $3 OR lock_pending)",
                )
                .bind(user_id.0)
                .bind(now)
                .bind(check_lock)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(updated > 0)
            }
        }
    };
}

pub(crate) use lockout_impl;
