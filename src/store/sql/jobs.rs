//! SQL of the `JobStore`: the job outbox and the record of emails sent.

macro_rules! jobs_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::JobStore for $store {
            async fn enqueue(&self, job: OutboxMessage, at: Timestamp) -> StoreResult<i64> {
                let mut tx = self.begin_write().await?;
                let id = Self::enqueue_in(&mut tx, &job, at).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn pending_jobs(&self, limit: i64) -> StoreResult<Vec<OutboxJob>> {
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "SELECT id, kind, payload, created_at, attempts FROM job_outbox \
                     WHERE relayed_at IS NULL ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(OutboxJob::try_from).collect()
            }

            async fn claim_jobs(&self, now: Timestamp, lease_until: Timestamp, limit: i64) -> StoreResult<Vec<OutboxJob>> {
                // The due condition is repeated on the outer UPDATE so that a row claimed by a
                // concurrent relay meanwhile is re-checked (PostgreSQL) and skipped.
                let mut tx = self.begin_write().await?;
                let rows: Vec<OutboxRow> = sqlx::query_as(
                    "UPDATE job_outbox SET available_at = $2, attempts = attempts + 1 \
                     WHERE relayed_at IS NULL AND available_at <= $1 AND id IN ( \
                       SELECT id FROM job_outbox WHERE relayed_at IS NULL AND available_at <= $1 \
                       ORDER BY id LIMIT $3) \
                     RETURNING id, kind, payload, created_at, attempts",
                )
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut jobs = rows.into_iter().map(OutboxJob::try_from).collect::<StoreResult<Vec<_>>>()?;
                jobs.sort_by_key(|j| j.id);
                Ok(jobs)
            }

            async fn mark_jobs_relayed(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
                for part in ids.chunks(500) {
                    let mut b = sqlx::QueryBuilder::<Db>::new("UPDATE job_outbox SET relayed_at = ");
                    b.push_bind(now).push(", last_error = NULL WHERE relayed_at IS NULL AND id IN (");
                    let mut list = b.separated(", ");
                    for id in part {
                        list.push_bind(*id);
                    }
                    b.push(")");
                    b.build().execute(&self.writer).await?;
                }
                Ok(())
            }

            async fn job_relay_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE job_outbox SET last_error = $2, available_at = $3 WHERE id = $1 AND relayed_at IS NULL")
                    .bind(id)
                    .bind(error)
                    .bind(retry_at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn email_handled(&self, key: &str) -> StoreResult<bool> {
                let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM email_deliveries WHERE email_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn claim_email(&self, key: &str, now: Timestamp, stale_before: Timestamp) -> StoreResult<bool> {
                let claimed = sqlx::query(
                    // Never over an email already handled, whichever run handled it: the
                    // check and the claim are one statement, and a handled email keeps its
                    // claim row (see record_email), so a run that read "not handled" a
                    // moment before the other recorded it cannot claim it afresh.
                    "INSERT INTO email_claims (email_key, claimed_at) SELECT $1, $2 \
                     WHERE NOT EXISTS (SELECT 1 FROM email_deliveries WHERE email_key = $1) \
                     ON CONFLICT (email_key) DO UPDATE SET claimed_at = excluded.claimed_at \
                     WHERE email_claims.claimed_at < $3",
                )
                .bind(key)
                .bind(now)
                .bind(stale_before)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(claimed > 0)
            }

            async fn renew_email_claim(&self, key: &str, now: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE email_claims SET claimed_at = $2 WHERE email_key = $1")
                    .bind(key)
                    .bind(now)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn release_email_claim(&self, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM email_claims WHERE email_key = $1")
                    .bind(key)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn record_email(&self, delivery: EmailDelivery) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO email_deliveries (email_key, recipient, template, status, error, at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email_key) DO NOTHING",
                )
                .bind(&delivery.key)
                .bind(&delivery.recipient)
                .bind(&delivery.template)
                .bind(if delivery.failure.is_some() { "FAILED" } else { "SENT" })
                .bind(delivery.failure.as_deref())
                .bind(delivery.at)
                .execute(&self.writer)
                .await?;
                // The claim row stays: deleting it would let a run that checked a moment
                // ago claim and send again (on PostgreSQL its insert waits for this
                // commit, then finds no row and goes ahead).
                Ok(())
            }

        }
    };
}

pub(crate) use jobs_impl;
