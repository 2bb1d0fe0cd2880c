//! Directory ranks and search postings: every user holds an integer rank in the order of
//! their sort key, and each of their postings is a (key, rank) pair, so that walking a
//! key's postings walks its users in directory order. A user placed between two others
//! takes a rank in the gap between theirs; when a gap is used up, the neighbourhood is
//! spread out again (a window growing until it has room, at worst the organization).

/// Moves the directory version of organization `$1` on, which locks it.
macro_rules! lock_directory_sql {
    () => {
        "INSERT INTO directory_versions (org_id, version) VALUES ($1, 1) \
         ON CONFLICT (org_id) DO UPDATE SET version = directory_versions.version + 1"
    };
}

macro_rules! ranks_impl {
    ($store:ty) => {
        impl $store {
            /// Serializes the ranking of one organization's users until the transaction
            /// ends, by moving its directory's version on: the row every change to its
            /// users moves (by trigger), so this lock is always taken in the same order.
            pub(super) async fn lock_directory(tx: &mut Tx, org_id: OrgId) -> StoreResult<()> {
                sqlx::query($crate::store::sql::ranks::lock_directory_sql!()).bind(org_id.0).execute(&mut **tx).await?;
                Ok(())
            }

            /// For each sort key, the ranks of the ranked users just before and just after
            /// it in the organization's directory (`except` one user: one moving from their
            /// old place).
            pub(super) async fn neighbour_ranks(
                tx: &mut Tx,
                org_id: OrgId,
                sort_keys: &[&str],
                except: Option<UserId>,
            ) -> StoreResult<Vec<(Option<i64>, Option<i64>)>> {
                let mut found = Vec::with_capacity(sort_keys.len());
                for part in sort_keys.chunks(200) {
                    let mut b = sqlx::QueryBuilder::<Db>::new("SELECT v.column1");
                    for (op, order) in [("<", "DESC"), (">", "ASC")] {
                        let by = match BACKEND {
                            // On PostgreSQL each neighbour is the next row of the index on
                            // (org_id, sort_key) past a row value, kept only if it is of
                            // this organization: with `org_id = $1`, statistics taken while
                            // the table was small (each organization seen once) made the
                            // planner expect one user and read the organization whole
                            // through another index for each neighbour (2 s a statement in
                            // a large one; seeding 100,000 users took 12 s or 50-60 s
                            // depending on when autovacuum had last analyzed). A row-value
                            // range has no such estimate: walking that index a step is the
                            // only cheap plan.
                            $crate::store::Backend::Postgres => {
                                b.push(", (SELECT CASE WHEN org_id = ")
                                    .push_bind(org_id.0)
                                    .push(format!(" THEN search_rank END FROM users WHERE (org_id, sort_key) {op} ("))
                                    .push_bind(org_id.0)
                                    .push(", v.column2) AND search_rank IS NOT NULL");
                                format!("org_id {order}, sort_key {order}")
                            }
                            $crate::store::Backend::Sqlite => {
                                b.push(", (SELECT search_rank FROM users WHERE org_id = ")
                                    .push_bind(org_id.0)
                                    .push(format!(" AND sort_key {op} v.column2 AND search_rank IS NOT NULL"));
                                format!("sort_key {order}")
                            }
                        };
                        if let Some(user) = except {
                            b.push(" AND id <> ").push_bind(user.0);
                        }
                        b.push(format!(" ORDER BY {by} LIMIT 1)"));
                    }
                    b.push(" FROM (");
                    b.push_values(part.iter().enumerate(), |mut row, (i, key)| {
                        row.push_bind(i as i64).push_bind(key.to_string());
                    });
                    b.push(") v");
                    let mut rows: Vec<(i64, Option<i64>, Option<i64>)> = b.build_query_as().fetch_all(&mut **tx).await?;
                    rows.sort_unstable_by_key(|(i, _, _)| *i);
                    found.extend(rows.into_iter().map(|(_, prev, next)| (prev, next)));
                }
                Ok(found)
            }

            /// IDs for `count` new users, taken before they are written so that their sort
            /// keys (which end with the ID) and ranks go in with them; first locking the
            /// directory of `lock` (on PostgreSQL in the same statement).
            pub(super) async fn allocate_user_ids(tx: &mut Tx, count: usize, lock: Option<OrgId>) -> StoreResult<Vec<i64>> {
                let mut ids: Vec<i64> = match (BACKEND, lock) {
                    ($crate::store::Backend::Postgres, Some(org_id)) => {
                        sqlx::query_scalar(concat!(
                            "WITH locked AS (",
                            $crate::store::sql::ranks::lock_directory_sql!(),
                            ") SELECT nextval(pg_get_serial_sequence('users', 'id')) FROM generate_series(1, $2)"
                        ))
                        .bind(org_id.0)
                        .bind(count as i64)
                        .fetch_all(&mut **tx)
                        .await?
                    }
                    ($crate::store::Backend::Postgres, None) => {
                        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('users', 'id')) FROM generate_series(1, $1)")
                            .bind(count as i64)
                            .fetch_all(&mut **tx)
                            .await?
                    }
                    // One writer at a time: the next IDs are free until this one commits.
                    ($crate::store::Backend::Sqlite, lock) => {
                        if let Some(org_id) = lock {
                            Self::lock_directory(tx, org_id).await?;
                        }
                        let last: i64 = sqlx::query_scalar(
                            "SELECT MAX(COALESCE((SELECT MAX(id) FROM users), 0), \
                             COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0))",
                        )
                        .fetch_one(&mut **tx)
                        .await?;
                        (last + 1..=last + count as i64).collect()
                    }
                };
                ids.sort_unstable();
                Ok(ids)
            }

            /// Ranks for new users at `sort_keys` (not yet written): the users falling into
            /// one gap between ranked neighbours are placed in it together (`place`). The
            /// users of a gap too narrow for them are left `None` and returned as a run
            /// (indices in directory order), placed together by `spread_around` once
            /// written. In an `empty` directory nobody has neighbours: none are looked up.
            pub(super) async fn ranks_for_batch(
                tx: &mut Tx,
                org_id: OrgId,
                sort_keys: &[String],
                empty: bool,
            ) -> StoreResult<(Vec<Option<i64>>, Vec<Vec<usize>>)> {
                let keys: Vec<&str> = sort_keys.iter().map(String::as_str).collect();
                let neighbours = if empty {
                    vec![(None, None); keys.len()]
                } else {
                    Self::neighbour_ranks(tx, org_id, &keys, None).await?
                };
                let mut order: Vec<usize> = (0..keys.len()).collect();
                order.sort_unstable_by_key(|i| keys[*i]);
                let mut ranks = vec![None; keys.len()];
                let mut crowded = Vec::new();
                for run in order.chunk_by(|a, b| neighbours[*a] == neighbours[*b]) {
                    let (prev, next) = neighbours[run[0]];
                    match $crate::domain::search::place(prev, next, run.len()) {
                        Some(placed) => {
                            for (i, rank) in run.iter().zip(placed) {
                                ranks[*i] = Some(rank);
                            }
                        }
                        None => crowded.push(run.to_vec()),
                    }
                }
                Ok((ranks, crowded))
            }

            /// Re-ranks the users around `sort_key` evenly, in a window that grows until
            /// its ranks have room, and returns the `count` ranks left at `sort_key` among
            /// them (for unranked users whose keys no ranked user's falls between, or
            /// `except`, moving there from elsewhere).
            pub(super) async fn spread_around(
                tx: &mut Tx,
                org_id: OrgId,
                sort_key: &str,
                count: usize,
                except: Option<UserId>,
            ) -> StoreResult<Vec<i64>> {
                #[derive(sqlx::FromRow)]
                struct Ranked {
                    id: i64,
                    org_id: i64,
                    search_rank: i64,
                    username: String,
                    email: String,
                    name_key: Option<String>,
                    mobile_digits: Option<String>,
                }
                const SPACING: i64 = 1 << 16;
                let mut width: i64 = 16 + count as i64;
                loop {
                    // On PostgreSQL a row-value range, as in `neighbour_ranks` (rows of the
                    // next organization along are dropped below).
                    let side = |op: &str, order: &str| {
                        let (range, by) = match BACKEND {
                            $crate::store::Backend::Postgres => (format!("(org_id, sort_key) {op} ($1, $2)"), format!("org_id {order}, sort_key {order}")),
                            $crate::store::Backend::Sqlite => (format!("org_id = $1 AND sort_key {op} $2"), format!("sort_key {order}")),
                        };
                        format!(
                            "SELECT id, org_id, search_rank, username, email, name_key, mobile_digits FROM users \
                             WHERE {range} AND search_rank IS NOT NULL AND id <> $4 ORDER BY {by} LIMIT $3"
                        )
                    };
                    let fetch = |sql: String| {
                        sqlx::query_as::<_, Ranked>(sqlx::AssertSqlSafe(sql)).bind(org_id.0).bind(sort_key.to_owned()).bind(width + 1).bind(except.map_or(0, |u| u.0))
                    };
                    let mut before: Vec<Ranked> = fetch(side("<", "DESC")).fetch_all(&mut **tx).await?;
                    let mut after: Vec<Ranked> = fetch(side(">", "ASC")).fetch_all(&mut **tx).await?;
                    before.retain(|r| r.org_id == org_id.0);
                    after.retain(|r| r.org_id == org_id.0);
                    let lo = (before.len() as i64 > width).then(|| before.pop()).flatten().map(|r| r.search_rank);
                    let hi = (after.len() as i64 > width).then(|| after.pop()).flatten().map(|r| r.search_rank);
                    let whole = lo.is_none() && hi.is_none();
                    let total = before.len() + after.len() + count;
                    let Some(ranks) = $crate::domain::search::spread(lo, hi, total, if whole { 1 } else { SPACING }) else {
                        width *= 8;
                        continue;
                    };
                    before.reverse();
                    let place = before.len();
                    let members: Vec<(Ranked, i64)> = before
                        .into_iter()
                        .chain(after)
                        .zip(ranks.iter().take(place).chain(ranks.iter().skip(place + count)).copied())
                        .filter(|(r, rank)| r.search_rank != *rank)
                        .collect();
                    // Every old posting goes before any new one is written: a new rank may
                    // be one a neighbour held.
                    let mut old = Vec::new();
                    let mut postings = Vec::new();
                    for (r, rank) in &members {
                        let keys = $crate::domain::search::SearchKeys {
                            name: r.name_key.clone().unwrap_or_default(),
                            email: r.email.to_lowercase(),
                            mobile_digits: r.mobile_digits.clone(),
                        }
                        .posting_keys(org_id.0, &r.username);
                        postings.extend(keys.iter().map(|key| (*key, *rank)));
                        old.extend(keys.iter().map(|key| (*key, r.search_rank)));
                    }
                    Self::delete_postings(tx, &old).await?;
                    let moved: Vec<(i64, i64)> = members.iter().map(|(r, rank)| (r.id, *rank)).collect();
                    Self::set_ranks(tx, &moved).await?;
                    Self::insert_postings(tx, &mut postings).await?;
                    tracing::debug!(org_id = org_id.0, moved = members.len(), "directory ranks spread out");
                    return Ok(ranks[place..place + count].to_vec());
                }
            }

            /// Sets users' ranks: (user ID, rank) pairs, a few hundred to a statement. On
            /// PostgreSQL as two arrays unnested: a join with a list of values was planned,
            /// with the statistics of a table still filling up, as a scan of all of it.
            pub(super) async fn set_ranks(tx: &mut Tx, ranks: &[(i64, i64)]) -> StoreResult<()> {
                if BACKEND == $crate::store::Backend::Postgres {
                    let sql = "UPDATE users SET search_rank = v.b FROM unnest($1::int8[], $2::int8[]) AS v(a, b) WHERE users.id = v.a";
                    return Self::with_unnested_pairs(tx, sql, ranks, 400).await;
                }
                let sql = ("UPDATE users SET search_rank = v.column2 FROM (", ") AS v WHERE users.id = v.column1");
                Self::with_pairs(tx, sql, ranks, 400).await
            }

            /// Removes (key, rank) postings, a few hundred to a statement (on PostgreSQL as
            /// two arrays unnested, as in `set_ranks`).
            async fn delete_postings(tx: &mut Tx, pairs: &[(i64, i64)]) -> StoreResult<()> {
                if BACKEND == $crate::store::Backend::Postgres {
                    let sql = "DELETE FROM user_search_postings p USING unnest($1::int8[], $2::int8[]) AS v(a, b) \
                               WHERE p.key = v.a AND p.rank = v.b";
                    return Self::with_unnested_pairs(tx, sql, pairs, 400).await;
                }
                Self::with_pairs(tx, ("DELETE FROM user_search_postings WHERE (key, rank) IN (", ")"), pairs, 400).await
            }

            /// Moves postings: removes `gone`, writes `added` and moves each key's count
            /// of users by `change` (a posting both gone and added stays). On PostgreSQL
            /// one statement, the pairs bound as arrays (up to 5,000 of each).
            pub(super) async fn move_postings(
                tx: &mut Tx,
                gone: &[(i64, i64)],
                added: &[(i64, i64)],
                mut change: std::collections::BTreeMap<i64, i64>,
            ) -> StoreResult<()> {
                let (mut gone, mut added) = (gone.to_vec(), added.to_vec());
                if !gone.is_empty() && !added.is_empty() {
                    use std::collections::BTreeSet;
                    let (gone_set, added_set): (BTreeSet<_>, BTreeSet<_>) = (gone.iter().copied().collect(), added.iter().copied().collect());
                    gone.retain(|p| !added_set.contains(p));
                    added.retain(|p| !gone_set.contains(p));
                }
                change.retain(|_, by| *by != 0);
                if gone.is_empty() && added.is_empty() && change.is_empty() {
                    return Ok(());
                }
                gone.sort_unstable();
                added.sort_unstable();
                if BACKEND == $crate::store::Backend::Postgres && gone.len().max(added.len()).max(change.len()) <= 5_000 {
                    use $crate::store::sql::arrays::pg_arrays;
                    let change: Vec<(i64, i64)> = change.into_iter().collect();
                    let ((gone_keys, gone_ranks), (added_keys, added_ranks), (keys, by)) =
                        (pg_arrays(&gone), pg_arrays(&added), pg_arrays(&change));
                    sqlx::query(
                        "WITH gone AS (DELETE FROM user_search_postings p USING unnest($1::int8[], $2::int8[]) AS v(a, b) \
                         WHERE p.key = v.a AND p.rank = v.b), \
                         added AS (INSERT INTO user_search_postings (key, rank) SELECT * FROM unnest($3::int8[], $4::int8[])) \
                         INSERT INTO user_search_counts (key, users) SELECT * FROM unnest($5::int8[], $6::int8[]) \
                         ON CONFLICT (key) DO UPDATE SET users = user_search_counts.users + excluded.users",
                    )
                    .bind(gone_keys)
                    .bind(gone_ranks)
                    .bind(added_keys)
                    .bind(added_ranks)
                    .bind(keys)
                    .bind(by)
                    .execute(&mut **tx)
                    .await?;
                    return Ok(());
                }
                Self::delete_postings(tx, &gone).await?;
                Self::insert_postings(tx, &mut added).await?;
                Self::count_postings(tx, change).await
            }

            /// Writes (key, rank) postings, in index order so that each statement touches
            /// neighbouring pages.
            pub(super) async fn insert_postings(tx: &mut Tx, postings: &mut [(i64, i64)]) -> StoreResult<()> {
                postings.sort_unstable();
                Self::with_pairs(tx, ("INSERT INTO user_search_postings (key, rank) ", ""), postings, 1000).await
            }

            /// Moves how many users each key is posted for, in key order so that
            /// concurrent writers lock the count rows in the same order.
            pub(super) async fn count_postings(tx: &mut Tx, change: std::collections::BTreeMap<i64, i64>) -> StoreResult<()> {
                let change: Vec<(i64, i64)> = change.into_iter().filter(|(_, by)| *by != 0).collect();
                let sql = (
                    "INSERT INTO user_search_counts (key, users) ",
                    " ON CONFLICT (key) DO UPDATE SET users = user_search_counts.users + excluded.users",
                );
                Self::with_pairs(tx, sql, &change, 500).await
            }

            /// Runs `head VALUES (a, b), (c, d), ... tail` for `per_statement` pairs at a time.
            pub(super) async fn with_pairs(tx: &mut Tx, (head, tail): (&str, &str), pairs: &[(i64, i64)], per_statement: usize) -> StoreResult<()> {
                for part in pairs.chunks(per_statement) {
                    let mut b = sqlx::QueryBuilder::<Db>::new(head);
                    b.push_values(part, |mut row, (a, b)| {
                        row.push_bind(*a).push_bind(*b);
                    });
                    b.push(tail);
                    b.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// PostgreSQL: runs `sql`, which reads the pairs as `unnest($1::int8[],
            /// $2::int8[]) AS v(a, b)`, for `per_statement` pairs at a time.
            async fn with_unnested_pairs(tx: &mut Tx, sql: &'static str, pairs: &[(i64, i64)], per_statement: usize) -> StoreResult<()> {
                for part in pairs.chunks(per_statement) {
                    let (a, b) = $crate::store::sql::arrays::pg_arrays(part);
                    sqlx::query(sql).bind(a).bind(b).execute(&mut **tx).await?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use {lock_directory_sql, ranks_impl};
