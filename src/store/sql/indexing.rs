//! A user's entry in the search structure: their matching keys, sort key, rank and
//! postings, written from their row in the same transaction as any change to it.

macro_rules! indexing_impl {
    ($store:ty) => {
        /// What a user's search entry is computed from: their names, email and mobile,
        /// and what their stored entry holds now (so that only the postings that differ
        /// are rewritten).
        #[derive(sqlx::FromRow)]
        pub(super) struct Indexed {
            org_id: i64,
            username: String,
            pub(super) first_name: String,
            pub(super) last_name: String,
            email: String,
            pub(super) mobile: Option<String>,
            sort_key: Option<String>,
            search_rank: Option<i64>,
            name_key: Option<String>,
            mobile_digits: Option<String>,
        }

        impl $store {
            /// A user's row as their entry is computed from it; on PostgreSQL locked for
            /// the transaction (SQLite's write transactions already hold its one lock), so
            /// that two changes of one user are indexed one after the other, and the
            /// directory locked before it: a rename that spreads its neighbours out holds
            /// the directory while it moves their rows, so a neighbour's own rename must
            /// not hold their row while it waits for the directory.
            pub(super) async fn indexed_in(tx: &mut Tx, org_id: OrgId, user_id: UserId) -> StoreResult<Option<Indexed>> {
                macro_rules! read {
                    ($lock:literal) => {
                        concat!(
                            "SELECT org_id, username, first_name, last_name, email, mobile, sort_key, search_rank, \
                             name_key, mobile_digits FROM users WHERE id = $1 AND org_id = $2",
                            $lock
                        )
                    };
                }
                let sql = match BACKEND {
                    $crate::store::Backend::Postgres => {
                        Self::lock_directory(tx, org_id).await?;
                        read!(" FOR UPDATE")
                    }
                    $crate::store::Backend::Sqlite => read!(""),
                };
                Ok(sqlx::query_as(sql).bind(user_id.0).bind(org_id.0).fetch_optional(&mut **tx).await?)
            }

            /// Recomputes a user's entry from their current row.
            pub(super) async fn index_user_in(tx: &mut Tx, org_id: OrgId, user_id: UserId) -> StoreResult<()> {
                let row = Self::indexed_in(tx, org_id, user_id).await?.ok_or(StoreError::NotFound)?;
                Self::write_indexed(tx, user_id, row, None).await?;
                Ok(())
            }

            /// Writes `row`'s names and mobile (as the caller changed them; `changed_at`
            /// when it did) with the entry they give, in one update of the user, and
            /// returns the user. A user moving in the directory takes a new rank among
            /// the others (their own old place left out); one staying keeps theirs. Only
            /// the postings that differ move. Username and email never change, so the
            /// postings held are those of the stored matching keys.
            pub(super) async fn write_indexed(
                tx: &mut Tx,
                user_id: UserId,
                row: Indexed,
                changed_at: Option<$crate::domain::Timestamp>,
            ) -> StoreResult<UserRow> {
                use $crate::domain::search::SearchKeys;
                let org_id = OrgId(row.org_id);
                let keys = SearchKeys::new(&row.first_name, &row.last_name, &row.email, row.mobile.as_deref());
                let new_keys = keys.posting_keys(org_id.0, &row.username);
                let old_keys = match (row.search_rank, &row.name_key) {
                    (Some(_), Some(name)) => SearchKeys { name: name.clone(), email: row.email.to_lowercase(), mobile_digits: row.mobile_digits.clone() }
                        .posting_keys(org_id.0, &row.username),
                    _ => Vec::new(),
                };
                let sort_key = $crate::domain::search::sort_key(&row.first_name, &row.last_name, user_id.0);
                let mut change = std::collections::BTreeMap::<i64, i64>::new();
                for key in &old_keys {
                    *change.entry(*key).or_default() -= 1;
                }
                for key in &new_keys {
                    *change.entry(*key).or_default() += 1;
                }
                let mut gone: Vec<(i64, i64)> = row.search_rank.map(|old| old_keys.iter().map(|k| (*k, old)).collect()).unwrap_or_default();
                let rank = match row.search_rank {
                    Some(rank) if row.sort_key.as_deref() == Some(sort_key.as_str()) => rank,
                    _ => {
                        // (On PostgreSQL `indexed_in` took it.)
                        if BACKEND == $crate::store::Backend::Sqlite {
                            Self::lock_directory(tx, org_id).await?;
                        }
                        let (prev, next) = Self::neighbour_ranks(tx, org_id, &[&sort_key], Some(user_id)).await?[0];
                        match $crate::domain::search::place(prev, next, 1) {
                            Some(ranks) => ranks[0],
                            None => {
                                // Spreading the neighbourhood out may hand the old rank to
                                // a neighbour: the old postings go first.
                                Self::move_postings(tx, &std::mem::take(&mut gone), &[], Default::default()).await?;
                                Self::spread_around(tx, org_id, &sort_key, 1, Some(user_id)).await?[0]
                            }
                        }
                    }
                };
                let added: Vec<(i64, i64)> = new_keys.iter().map(|k| (*k, rank)).collect();
                Self::move_postings(tx, &gone, &added, change).await?;
                let reversed = keys.mobile_digits.as_deref().map(|d| d.chars().rev().collect::<String>());
                Ok(sqlx::query_as(concat!(
                    "UPDATE users SET first_name = $2, last_name = $3, mobile = $4, updated_at = COALESCE($5, updated_at), \
                     sort_key = $6, name_key = $7, mobile_digits = $8, mobile_reversed = $9, search_rank = $10 \
                     WHERE id = $1 RETURNING ",
                    user_columns!("")
                ))
                .bind(user_id.0)
                .bind(&row.first_name)
                .bind(&row.last_name)
                .bind(row.mobile.as_deref())
                .bind(changed_at)
                .bind(&sort_key)
                .bind(&keys.name)
                .bind(keys.mobile_digits.as_deref())
                .bind(reversed)
                .bind(rank)
                .fetch_one(&mut **tx)
                .await?)
            }
        }
    };
}

pub(crate) use indexing_impl;
