//! SQL that moves account requests and applies their changes to the directory: the
//! application of an approved request as one transaction (`apply`, behind
//! `RequestStore::apply_request`), and the steps `requests.rs` takes inside its own.

macro_rules! request_changes_impl {
    ($store:ty) => {
        use $crate::domain::request::NotApplicable;
        use $crate::domain::{AccountRequest, Change, RequestId, RequestStatus, Role};
        use $crate::store::RequestQuery;
        use $crate::store::rows::{RequestRow, request_columns};

        impl $store {
            /// Applies an approved request: claims it, carries out its change, records it
            /// APPLIED and enqueues the outcome emails, in one transaction.
            pub(super) async fn apply(&self, a: $crate::store::Application) -> StoreResult<AccountRequest> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let claimed = sqlx::query("UPDATE requests SET updated_at = $2 WHERE id = $1 AND status = 'APPROVED'")
                        .bind(a.request_id.0)
                        .bind(a.at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if claimed == 0 {
                        // Applied already, or no longer approved: nothing to do.
                        return Err(StoreError::NotFound);
                    }
                    let request = Self::request_in(&mut tx, a.request_id).await?;
                    // Changes of one organization apply one at a time, so that two inactivations
                    // cannot each leave the other as the last owner: on PostgreSQL under a lock
                    // only applications take (nothing else waits for it while holding a row an
                    // application needs); SQLite's writes are one at a time already.
                    if BACKEND == $crate::store::Backend::Postgres {
                        sqlx::query("SELECT pg_advisory_xact_lock($1, ($2 % 2147483648)::int4)")
                            .bind($crate::store::sql::APPLY_LOCKS)
                            .bind(request.org_id.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let approver: Option<i64> =
                        sqlx::query_scalar("SELECT approver_id FROM request_decisions WHERE request_id = $1")
                            .bind(a.request_id.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                    Self::apply_change_in(&mut tx, &request, approver.map(UserId), a.at).await?;
                    let applied: RequestRow = sqlx::query_as(concat!(
                        "UPDATE requests SET status = 'APPLIED', applied_at = $2, updated_at = $2 WHERE id = $1 RETURNING ",
                        request_columns!("")
                    ))
                    .bind(a.request_id.0)
                    .bind(a.at)
                    .fetch_one(&mut *tx)
                    .await?;
                    let change = Self::record_event_in(&mut tx, request.org_id, a.request_id, a.at, RequestStatus::Applied, None, None).await?;
                    let mut audit = AuditEntry::new(request.org_id, a.at, "request.applied");
                    audit.request_id = Some(request.id.0);
                    audit.subject_id = request.subject_id;
                    for job in &a.jobs {
                        Self::enqueue_in(&mut tx, job, a.at).await?;
                    }
                    let request = AccountRequest::try_from(applied)?;
                    Self::append_audit_in(&mut tx, &audit).await?;
                    tx.commit().await?;
                    self.committed(change);
                    Ok(request)
                })
                .await
            }

            pub(super) async fn request_in(tx: &mut Tx, id: RequestId) -> StoreResult<AccountRequest> {
                let row: RequestRow =
                    sqlx::query_as(concat!("SELECT ", request_columns!(), " FROM requests r WHERE r.id = $1"))
                        .bind(id.0)
                        .fetch_one(&mut **tx)
                        .await?;
                row.try_into()
            }

            /// Records a status change of a request of `org`; the change, to push once
            /// the transaction commits.
            #[allow(clippy::too_many_arguments)]
            pub(super) async fn record_event_in(
                tx: &mut Tx,
                org: OrgId,
                id: RequestId,
                at: Timestamp,
                status: RequestStatus,
                actor: Option<UserId>,
                note: Option<&str>,
            ) -> StoreResult<$crate::store::RequestChange> {
                let event_id: i64 = sqlx::query_scalar(
                    "INSERT INTO request_events (request_id, at, status, actor_id, note) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(id.0)
                .bind(at)
                .bind(status.as_str())
                .bind(actor.map(|a| a.0))
                .bind(note)
                .fetch_one(&mut **tx)
                .await?;
                Ok($crate::store::RequestChange { event_id, org_id: org, request_id: id, status })
            }

            /// Active owners of the organization other than `user`.
            pub(super) async fn other_active_owners_in(tx: &mut Tx, org_id: OrgId, user: UserId) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'OWNER' \
                     AND status = 'ACTIVE' AND id <> $2",
                )
                .bind(org_id.0)
                .bind(user.0)
                .fetch_one(&mut **tx)
                .await?)
            }

            pub(super) async fn permissions_in(tx: &mut Tx, user: UserId) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT permission FROM user_permissions WHERE user_id = $1 ORDER BY permission",
                )
                .bind(user.0)
                .fetch_all(&mut **tx)
                .await?)
            }

            /// Carries out the change an approved request asks for, with its audit event.
            pub(super) async fn apply_change_in(
                tx: &mut Tx,
                request: &AccountRequest,
                actor: Option<UserId>,
                at: Timestamp,
            ) -> StoreResult<()> {
                let org = request.org_id;
                let audit = |action| {
                    let mut entry = AuditEntry::new(org, at, action).actor(actor);
                    entry.request_id = Some(request.id.0);
                    entry
                };
                let subject = match request.subject_id {
                    Some(id) => Some(Self::user_in(tx, id).await?),
                    None => None,
                };
                match (&request.change, subject) {
                    (Change::Licenses(change), _) => {
                        sqlx::query(
                            "INSERT INTO license_pools (org_id, product, kind, total, used) \
                             VALUES ($1, $2, $3, 0, 0) ON CONFLICT DO NOTHING",
                        )
                        .bind(org.0)
                        .bind(change.product.as_str())
                        .bind(change.kind.as_str())
                        .execute(&mut **tx)
                        .await?;
                        let total: i32 = sqlx::query_scalar(
                            "UPDATE license_pools SET total = total + $4 \
                             WHERE org_id = $1 AND product = $2 AND kind = $3 RETURNING total",
                        )
                        .bind(org.0)
                        .bind(change.product.as_str())
                        .bind(change.kind.as_str())
                        .bind(change.quantity)
                        .fetch_one(&mut **tx)
                        .await?;
                        let entry = audit("license.pool_changed").details(serde_json::json!({
                            "product": change.product.as_str(), "kind": change.kind.as_str(),
                            "before": {"total": total - change.quantity}, "after": {"total": total},
                        }));
                        Self::append_audit_in(tx, &entry).await?;
                    }
                    (Change::Permissions(change), Some(user)) => {
                        if user.status == UserStatus::Inactive {
                            return Err(StoreError::NotApplicable(NotApplicable::SubjectInactive(user.username.clone())));
                        }
                        let demoted = user.role == Role::Owner && change.role.is_some_and(|r| r != Role::Owner);
                        if demoted
                            && user.status == UserStatus::Active
                            && Self::other_active_owners_in(tx, org, user.id).await? == 0
                        {
                            return Err(StoreError::LastOwner);
                        }
                        let before = Self::permissions_in(tx, user.id).await?;
                        for permission in &change.revoke {
                            sqlx::query("DELETE FROM user_permissions WHERE user_id = $1 AND permission = $2")
                                .bind(user.id.0)
                                .bind(permission.as_str())
                                .execute(&mut **tx)
                                .await?;
                        }
                        for permission in &change.grant {
                            sqlx::query(
                                "INSERT INTO user_permissions (user_id, permission) VALUES ($1, $2) \
                                 ON CONFLICT DO NOTHING",
                            )
                            .bind(user.id.0)
                            .bind(permission.as_str())
                            .execute(&mut **tx)
                            .await?;
                        }
                        let role = change.role.unwrap_or(user.role);
                        sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                            .bind(user.id.0)
                            .bind(role.as_str())
                            .bind(at)
                            .execute(&mut **tx)
                            .await?;
                        let after = Self::permissions_in(tx, user.id).await?;
                        let entry = audit("user.permissions_changed").subject(user.id).details(serde_json::json!({
                            "before": {"role": user.role.as_str(), "permissions": before},
                            "after": {"role": role.as_str(), "permissions": after},
                        }));
                        Self::append_audit_in(tx, &entry).await?;
                    }
                    (Change::Inactivation, Some(user)) => {
                        if user.status == UserStatus::Inactive {
                            return Err(StoreError::NotApplicable(NotApplicable::SubjectAlreadyInactive(user.username.clone())));
                        }
                        if user.role == Role::Owner
                            && user.status == UserStatus::Active
                            && Self::other_active_owners_in(tx, org, user.id).await? == 0
                        {
                            return Err(StoreError::LastOwner);
                        }
                        // The directory before the pools and the user's row (see
                        // `create_users_in` for the order of locks).
                        if BACKEND == $crate::store::Backend::Postgres {
                            Self::lock_directory(tx, org).await?;
                        }
                        let products: Vec<String> =
                            sqlx::query_scalar("SELECT product FROM user_products WHERE user_id = $1 ORDER BY product")
                                .bind(user.id.0)
                                .fetch_all(&mut **tx)
                                .await?;
                        for product in &products {
                            sqlx::query(
                                "UPDATE license_pools SET used = used - 1 \
                                 WHERE org_id = $1 AND product = $2 AND kind = $3 AND used > 0",
                            )
                            .bind(org.0)
                            .bind(product)
                            .bind(user.kind.as_str())
                            .execute(&mut **tx)
                            .await?;
                        }
                        sqlx::query("DELETE FROM user_products WHERE user_id = $1")
                            .bind(user.id.0)
                            .execute(&mut **tx)
                            .await?;
                        sqlx::query(
                            "UPDATE users SET status = 'INACTIVE', deactivated_at = $2, updated_at = $2 WHERE id = $1",
                        )
                        .bind(user.id.0)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                        sqlx::query(
                            "UPDATE setup_tokens SET voided_at = $2 \
                             WHERE user_id = $1 AND used_at IS NULL AND voided_at IS NULL",
                        )
                        .bind(user.id.0)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                        let sessions = Self::end_sessions_in(tx, user.id, at).await?;
                        let entry = audit("user.inactivated").subject(user.id).details(serde_json::json!({
                            "before": {"status": user.status.as_str(), "products": products},
                            "after": {"status": "INACTIVE", "products": []},
                            "sessionsEnded": sessions,
                        }));
                        Self::append_audit_in(tx, &entry).await?;
                    }
                    (Change::Reactivation { products }, Some(user)) => {
                        Self::reactivate_in(tx, org, user.id, products, at).await?;
                        let entry = audit("user.reactivated").subject(user.id).details(serde_json::json!({
                            "before": {"status": "INACTIVE"},
                            "after": {"status": "ACTIVE", "products": products.iter().map(|p| p.as_str()).collect::<Vec<_>>()},
                        }));
                        Self::append_audit_in(tx, &entry).await?;
                    }
                    (change, None) => {
                        return Err(StoreError::Corrupt(format!("{} request without a subject", change.kind())));
                    }
                }
                Ok(())
            }

            /// The filters of a requests query (everything but the cursor).
            pub(super) fn push_request_filters(b: &mut sqlx::QueryBuilder<Db>, q: &RequestQuery) {
                b.push(" WHERE r.org_id = ").push_bind(q.org_id.0);
                if let Some(status) = q.status {
                    b.push(" AND r.status = ").push_bind(status.as_str());
                }
                if let Some(kind) = q.kind {
                    b.push(" AND r.kind = ").push_bind(kind.as_str());
                }
                if let Some(subject) = q.subject_id {
                    b.push(" AND r.subject_id = ").push_bind(subject);
                }
                if let Some(user) = q.involving {
                    b.push(" AND (r.requested_by = ").push_bind(user.0);
                    b.push(" OR r.subject_id = ").push_bind(user.0).push(")");
                }
                if let Some(user) = q.awaiting {
                    b.push(" AND r.status = 'PENDING_APPROVAL' AND r.requested_by <> ").push_bind(user.0);
                    b.push(" AND (r.subject_id IS NULL OR r.subject_id <> ").push_bind(user.0).push(")");
                }
            }
        }
    };
}

pub(crate) use request_changes_impl;
