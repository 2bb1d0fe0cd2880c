//! SQL of the `RequestStore`: filing, reading and moving account requests.

macro_rules! requests_impl {
    ($store:ty) => {
        use $crate::domain::{AccountRequest, RequestDecision, RequestEvent, RequestId, RequestStatus};
        use $crate::store::rows::{DecisionRow, EventRow, RequestRow, names, request_columns, unfinished_statuses};
        use $crate::store::{Application, Filing, NewRequest, RequestChange, RequestQuery, Transition};

        #[async_trait::async_trait]
        impl $crate::store::RequestStore for $store {
            async fn file_request(&self, new: NewRequest) -> StoreResult<Filing> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    if let Some(key) = &new.idempotency_key {
                        sqlx::query(
                            "DELETE FROM idempotency_keys WHERE requester_id = $1 AND key = $2 AND created_at < $3",
                        )
                        .bind(new.requested_by.0)
                        .bind(key)
                        .bind(new.idempotency_since)
                        .execute(&mut *tx)
                        .await?;
                        let earlier: Option<i64> = sqlx::query_scalar(
                            "SELECT request_id FROM idempotency_keys WHERE requester_id = $1 AND key = $2",
                        )
                        .bind(new.requested_by.0)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(id) = earlier {
                            let request = Self::request_in(&mut tx, RequestId(id)).await?;
                            tx.commit().await?;
                            return Ok(Filing::Repeat(request));
                        }
                    }
                    if let Some(subject) = new.subject_id {
                        // The statuses written out as the partial index names them, so that
                        // the database can use it (bound, they could be anything).
                        let open: Option<RequestRow> = sqlx::query_as(concat!(
                            "SELECT ", request_columns!(), " FROM requests r WHERE r.org_id = $1 AND r.kind = $2 \
                             AND r.subject_id = $3 AND r.status IN ", unfinished_statuses!()
                        ))
                        .bind(new.org_id.0)
                        .bind(new.change.kind().as_str())
                        .bind(subject.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(row) = open {
                            return Ok(Filing::Open(row.try_into()?));
                        }
                    }
                    let change = new.change.licenses();
                    let permissions = new.change.permissions();
                    let products = new.change.products();
                    let row: RequestRow = sqlx::query_as(concat!(
                        "INSERT INTO requests (org_id, kind, status, requested_by, subject_id, justification, \
                         product, user_kind, quantity, grant_permissions, revoke_permissions, new_role, \
                         products, terms_accepted, created_at, expires_at, updated_at, filed_by_owner) \
                         VALUES ($1, $2, 'SUBMITTED', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14, $16) \
                         RETURNING ", request_columns!("")
                    ))
                    .bind(new.org_id.0)
                    .bind(new.change.kind().as_str())
                    .bind(new.requested_by.0)
                    .bind(new.subject_id.map(|s| s.0))
                    .bind(new.justification.as_deref())
                    .bind(change.map(|c| c.product.as_str()))
                    .bind(change.map(|c| c.kind.as_str()))
                    .bind(change.map(|c| c.quantity))
                    .bind(permissions.map(|p| names(p.grant.iter().map(|g| g.as_str()))))
                    .bind(permissions.map(|p| names(p.revoke.iter().map(|r| r.as_str()))))
                    .bind(permissions.and_then(|p| p.role).map(|r| r.as_str()))
                    .bind((!products.is_empty()).then(|| names(products.iter().map(|p| p.as_str()))))
                    .bind(new.terms_accepted)
                    .bind(new.at)
                    .bind(new.expires_at)
                    .bind(new.filed_by_owner)
                    .fetch_one(&mut *tx)
                    .await?;
                    let request = AccountRequest::try_from(row)?;
                    let id = request.id;
                    let change = Self::record_event_in(&mut tx, new.org_id, id, new.at, RequestStatus::Submitted, Some(new.requested_by), None).await?;
                    if let Some(key) = &new.idempotency_key {
                        sqlx::query(
                            "INSERT INTO idempotency_keys (requester_id, key, request_id, created_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(new.requested_by.0)
                        .bind(key)
                        .bind(id.0)
                        .bind(new.at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Self::enqueue_in(&mut tx, &(new.route)(id), new.at).await?;
                    // Last: the organization's chain stays locked only until the commit.
                    let mut audit = new.audit.clone();
                    audit.request_id = Some(id.0);
                    audit.subject_id = new.subject_id;
                    Self::append_audit_in(&mut tx, &audit).await?;
                    tx.commit().await?;
                    self.committed(change);
                    Ok(Filing::New(request))
                })
                .await
            }

            async fn request(&self, org_id: OrgId, id: RequestId) -> StoreResult<Option<AccountRequest>> {
                let row: Option<RequestRow> = sqlx::query_as(concat!(
                    "SELECT ", request_columns!(), " FROM requests r WHERE r.id = $1 AND r.org_id = $2"
                ))
                .bind(id.0)
                .bind(org_id.0)
                .fetch_optional(&self.pool)
                .await?;
                row.map(AccountRequest::try_from).transpose()
            }

            async fn request_anywhere(&self, id: RequestId) -> StoreResult<Option<AccountRequest>> {
                let row: Option<RequestRow> =
                    sqlx::query_as(concat!("SELECT ", request_columns!(), " FROM requests r WHERE r.id = $1"))
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(AccountRequest::try_from).transpose()
            }

            async fn requests_by_ids(&self, org_id: OrgId, ids: &[RequestId]) -> StoreResult<Vec<AccountRequest>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(concat!(
                    "SELECT ", request_columns!(), " FROM requests r WHERE r.org_id = "
                ));
                b.push_bind(org_id.0).push(" AND r.id IN (");
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(")");
                let rows: Vec<RequestRow> = b.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(AccountRequest::try_from).collect()
            }

            async fn requests(&self, q: RequestQuery) -> StoreResult<(Vec<AccountRequest>, Option<i64>)> {
                let mut b = sqlx::QueryBuilder::<Db>::new(concat!("SELECT ", request_columns!(), " FROM requests r"));
                Self::push_request_filters(&mut b, &q);
                if let Some(before) = q.before_id {
                    b.push(" AND r.id < ").push_bind(before);
                }
                b.push(" ORDER BY r.id DESC LIMIT ").push_bind(q.limit);
                let rows: Vec<RequestRow> = b.build_query_as().fetch_all(&self.pool).await?;
                let requests = rows.into_iter().map(AccountRequest::try_from).collect::<StoreResult<Vec<_>>>()?;
                let total = if q.with_total {
                    let mut b = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM requests r");
                    Self::push_request_filters(&mut b, &q);
                    Some(b.build_query_scalar().fetch_one(&self.pool).await?)
                } else {
                    None
                };
                Ok((requests, total))
            }

            async fn decisions_of(&self, ids: &[RequestId]) -> StoreResult<Vec<(RequestId, RequestDecision)>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(
                    "SELECT request_id, approver_id, approved, comment, terms_accepted, decided_at \
                     FROM request_decisions WHERE request_id IN (",
                );
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(") ORDER BY id");
                let rows: Vec<DecisionRow> = b.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn events_of(&self, ids: &[RequestId]) -> StoreResult<Vec<(RequestId, RequestEvent)>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(
                    "SELECT id, request_id, at, status, actor_id, note FROM request_events WHERE request_id IN (",
                );
                let mut list = b.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                b.push(") ORDER BY id");
                let rows: Vec<EventRow> = b.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn routed_approvers(&self, id: RequestId) -> StoreResult<Vec<UserId>> {
                let ids: Vec<i64> =
                    sqlx::query_scalar("SELECT user_id FROM request_approvers WHERE request_id = $1 ORDER BY user_id")
                        .bind(id.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(ids.into_iter().map(UserId).collect())
            }

            async fn transition_request(&self, t: Transition) -> StoreResult<AccountRequest> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let mut b = sqlx::QueryBuilder::<Db>::new("UPDATE requests SET status = ");
                    b.push_bind(t.step.to().as_str()).push(", updated_at = ").push_bind(t.at);
                    if let Some(reason) = &t.failure_reason {
                        b.push(", failure_reason = ").push_bind(reason.clone());
                    }
                    if t.decision.is_some() {
                        b.push(", decided_at = ").push_bind(t.at);
                    }
                    b.push(" WHERE id = ").push_bind(t.request_id.0).push(" AND status IN (");
                    let mut list = b.separated(", ");
                    for status in t.step.from() {
                        list.push_bind(status.as_str());
                    }
                    b.push(") RETURNING ").push(request_columns!(""));
                    let Some(row) = b.build_query_as::<RequestRow>().fetch_optional(&mut *tx).await? else {
                        return Err(StoreError::Conflict("The request has already moved on.".into()));
                    };
                    // Nothing below writes the request's own columns.
                    let request = AccountRequest::try_from(row)?;
                    if let Some(approver) = t.approver_must_be_owner {
                        // Decided in the write (a row lock on PostgreSQL): an owner locked,
                        // inactivated or demoted meanwhile decides nothing.
                        let still = sqlx::query(
                            "UPDATE users SET role = role WHERE id = $1 AND role = 'OWNER' AND status = 'ACTIVE' \
                             AND (locked_until IS NULL OR locked_until <= $2)",
                        )
                        .bind(approver.0)
                        .bind(t.at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if still == 0 {
                            return Err(StoreError::Forbidden);
                        }
                    }
                    if let Some(d) = &t.decision {
                        let inserted = sqlx::query(
                            "INSERT INTO request_decisions (request_id, approver_id, approved, comment, terms_accepted, decided_at) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(t.request_id.0)
                        .bind(d.approver_id.0)
                        .bind(d.approved)
                        .bind(d.comment.as_deref())
                        .bind(d.terms_accepted)
                        .bind(t.at)
                        .execute(&mut *tx)
                        .await;
                        match inserted.map_err(StoreError::from) {
                            Err(StoreError::AlreadyExists { .. }) => {
                                return Err(StoreError::Conflict("The request has already been decided.".into()));
                            }
                            other => {
                                other?;
                            }
                        }
                    }
                    for approver in &t.approvers {
                        sqlx::query(
                            "INSERT INTO request_approvers (request_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(t.request_id.0)
                        .bind(approver.0)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for job in &t.jobs {
                        Self::enqueue_in(&mut tx, job, t.at).await?;
                    }
                    let change = Self::record_event_in(&mut tx, request.org_id, t.request_id, t.at, t.step.to(), t.actor_id, t.note.as_deref()).await?;
                    // Last: the organization's chain stays locked only until the commit.
                    Self::append_audit_in(&mut tx, &t.audit).await?;
                    tx.commit().await?;
                    self.committed(change);
                    Ok(request)
                })
                .await
            }

            async fn apply_request(&self, a: Application) -> StoreResult<AccountRequest> {
                self.apply(a).await
            }

            async fn remind_request(&self, id: RequestId, at: Timestamp, jobs: Vec<OutboxMessage>) -> StoreResult<bool> {
                retrying(&self.retried, || async {
                    let mut tx = self.begin_write().await?;
                    let marked = sqlx::query(
                        "UPDATE requests SET reminded_at = $2 \
                         WHERE id = $1 AND status = 'PENDING_APPROVAL' AND reminded_at IS NULL",
                    )
                    .bind(id.0)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if marked == 0 {
                        return Ok(false);
                    }
                    for job in &jobs {
                        Self::enqueue_in(&mut tx, job, at).await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }

            async fn due_requests(
                &self,
                now: Timestamp,
                created_before: Timestamp,
                limit: i64,
            ) -> StoreResult<(Vec<AccountRequest>, Vec<AccountRequest>)> {
                let remind: Vec<RequestRow> = sqlx::query_as(concat!(
                    "SELECT ", request_columns!(), " FROM requests r WHERE r.status = 'PENDING_APPROVAL' \
                     AND r.reminded_at IS NULL AND r.created_at <= $1 AND r.expires_at > $2 ORDER BY r.id LIMIT $3"
                ))
                .bind(created_before)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let expire: Vec<RequestRow> = sqlx::query_as(concat!(
                    "SELECT ", request_columns!(), " FROM requests r WHERE r.status = 'PENDING_APPROVAL' \
                     AND r.expires_at <= $1 ORDER BY r.id LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let convert = |rows: Vec<RequestRow>| rows.into_iter().map(AccountRequest::try_from).collect::<StoreResult<Vec<_>>>();
                Ok((convert(remind)?, convert(expire)?))
            }

            async fn request_changes(&self, after: i64, limit: i64) -> StoreResult<Vec<RequestChange>> {
                let rows: Vec<$crate::store::rows::ChangeRow> = sqlx::query_as(
                    "SELECT e.id, r.org_id, e.request_id, e.status FROM request_events e \
                     JOIN requests r ON r.id = e.request_id WHERE e.id > $1 ORDER BY e.id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::store::rows::request_change).collect()
            }

            async fn last_request_event(&self) -> StoreResult<i64> {
                let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM request_events")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(last.unwrap_or(0))
            }
        }
    };
}

pub(crate) use requests_impl;
