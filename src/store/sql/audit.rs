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

        }
    };
}

pub(crate) use audit_impl;
