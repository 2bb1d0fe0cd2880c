//! SQL of the `AuditStore`: the audit chain.

macro_rules! audit_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AuditStore for $store {
            async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
                let mut tx = self.begin_write().await?;
                let record = Self::append_audit_in(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn audit_chain_page(&self, org_id: OrgId, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, details, \
                     prev_hash, hash FROM audit_events WHERE org_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(org_id.0)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(AuditRecord::from).collect())
            }

            async fn audit_head(&self, org_id: OrgId) -> StoreResult<(i64, Vec<u8>)> {
                let head = sqlx::query_as("SELECT audit_seq, audit_head FROM organizations WHERE id = $1")
                    .bind(org_id.0)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(head)
            }


            async fn audit_events(&self, q: $crate::store::AuditQuery) -> StoreResult<(Vec<AuditRecord>, Option<i64>)> {
                fn filtered(b: &mut sqlx::QueryBuilder<Db>, q: &$crate::store::AuditQuery) {
                    b.push(" FROM audit_events WHERE org_id = ").push_bind(q.org_id.0);
                    if let Some(actor) = q.actor_id {
                        b.push(" AND actor_id = ").push_bind(actor);
                    }
                    if let Some(subject) = q.subject_id {
                        b.push(" AND subject_id = ").push_bind(subject);
                    }
                    if let Some(request) = q.request_id {
                        b.push(" AND request_id = ").push_bind(request);
                    }
                    if let Some(action) = &q.action {
                        b.push(" AND action = ").push_bind(action.clone());
                    }
                    if let Some(prefix) = &q.action_prefix {
                        let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                        b.push(" AND action LIKE ").push_bind(format!("{escaped}%")).push(" ESCAPE '\\'");
                    }
                    if let Some(since) = q.since {
                        b.push(" AND at >= ").push_bind(since);
                    }
                    if let Some(until) = q.until {
                        b.push(" AND at <= ").push_bind(until);
                    }
                }
                let mut b = sqlx::QueryBuilder::<Db>::new(
                    "SELECT id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, details, prev_hash, hash",
                );
                filtered(&mut b, &q);
                if let Some(before) = q.before_seq {
                    b.push(" AND seq < ").push_bind(before);
                }
                b.push(" ORDER BY seq DESC LIMIT ").push_bind(q.limit);
                let rows: Vec<AuditRow> = b.build_query_as().fetch_all(&self.pool).await?;
                let total = if q.with_total {
                    // Counting stops at a bound, so that no request reads a whole log.
                    let mut count = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM (SELECT 1");
                    filtered(&mut count, &q);
                    count.push(" LIMIT ").push_bind($crate::store::AUDIT_COUNT_LIMIT).push(") t");
                    Some(count.build_query_scalar::<i64>().fetch_one(&self.pool).await?)
                } else {
                    None
                };
                Ok((rows.into_iter().map(AuditRecord::from).collect(), total))
            }

            async fn audit_event(&self, org_id: OrgId, id: i64) -> StoreResult<Option<AuditRecord>> {
                let row: Option<AuditRow> = sqlx::query_as(
                    "SELECT id, org_id, seq, at, action, actor_id, subject_id, request_id, ip, details, \
                     prev_hash, hash FROM audit_events WHERE id = $1 AND org_id = $2",
                )
                .bind(id)
                .bind(org_id.0)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(AuditRecord::from))
            }
        }
    };
}

pub(crate) use audit_impl;
