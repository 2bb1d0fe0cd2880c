//! Postings added to the search index after users were written: filled in at start-up,
//! in batches, from where the last batch (of this or an earlier start) left off.

macro_rules! backfill_impl {
    ($store:ty) => {
        impl $store {
            /// Gives users written before migration 13 the postings of their name's short
            /// pieces (`SearchKeys::short_keys`), 1,000 users a transaction, with the
            /// progress kept in `search_backfills` so that an interrupted start resumes.
            /// Users not yet ranked are skipped: ranking them posts every key.
            pub(super) async fn backfill_short_name_pieces(&self) -> StoreResult<()> {
                use $crate::domain::search::SearchKeys;
                const BATCH: i64 = 1000;
                // The row of this backfill in `search_backfills`.
                const NAME: &str = "short_name_pieces";
                const PENDING: &str = "SELECT after_id FROM search_backfills WHERE name = $1";
                // Once done, a start reads one row of an empty table, not the users.
                if sqlx::query_scalar::<_, i64>(PENDING).bind(NAME).fetch_optional(&self.pool).await?.is_none() {
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
                let mut done = 0i64;
                loop {
                    let mut tx = self.begin_write().await?;
                    let after: Option<i64> = sqlx::query_scalar(PENDING).bind(NAME).fetch_optional(&mut *tx).await?;
                    let Some(after) = after else {
                        return Ok(());
                    };
                    let users: Vec<(i64, i64, Option<i64>, Option<String>)> = sqlx::query_as(
                        "SELECT id, org_id, search_rank, name_key FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(after)
                    .bind(BATCH)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some(last) = users.last().map(|u| u.0) else {
                        sqlx::query("DELETE FROM search_backfills WHERE name = $1").bind(NAME).execute(&mut *tx).await?;
                        tx.commit().await?;
                        if done > 0 {
                            // PostgreSQL reads the new postings index-only once vacuum has
                            // marked their pages all-visible; and plans by fresh statistics.
                            if BACKEND == $crate::store::Backend::Postgres {
                                sqlx::query("VACUUM (ANALYZE) user_search_postings, user_search_counts").execute(&self.writer).await?;
                            }
                            tracing::info!(users = done, seconds = started.elapsed().as_secs_f64(), "short name pieces posted");
                        }
                        return Ok(());
                    };
                    let mut postings: Vec<(i64, i64)> = users
                        .iter()
                        .filter_map(|(_, org, rank, name)| Some((*org, (*rank)?, name.clone()?)))
                        .flat_map(|(org, rank, name)| {
                            let keys = SearchKeys { name, email: String::new(), mobile_digits: None };
                            keys.short_keys(org).into_iter().map(move |key| (key, rank))
                        })
                        .collect();
                    postings.sort_unstable();
                    let mut counts = std::collections::BTreeMap::<i64, i64>::new();
                    // A posting already there (written since the migration) is not counted twice.
                    for part in postings.chunks(1000) {
                        let mut b = sqlx::QueryBuilder::<Db>::new("INSERT INTO user_search_postings (key, rank) ");
                        b.push_values(part, |mut row, (key, rank)| {
                            row.push_bind(*key).push_bind(*rank);
                        });
                        b.push(" ON CONFLICT DO NOTHING RETURNING key");
                        let added: Vec<i64> = b.build_query_scalar().fetch_all(&mut *tx).await?;
                        for key in added {
                            *counts.entry(key).or_default() += 1;
                        }
                    }
                    Self::count_postings(&mut tx, counts).await?;
                    sqlx::query("UPDATE search_backfills SET after_id = $1 WHERE name = $2")
                        .bind(last)
                        .bind(NAME)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    done += users.len() as i64;
                    if done % 100_000 < BATCH {
                        tracing::info!(users = done, of = total, "posting short name pieces");
                    }
                }
            }
        }
    };
}

pub(crate) use backfill_impl;
