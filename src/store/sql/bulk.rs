//! Creating users in batches: the one path by which every user is created, one at a time
//! (`inviteUser`, an organization's owner) or thousands at once (an import). Licenses are
//! taken per product and kind for the whole batch, rows go in as multi-row statements,
//! posting counts move once per batch, and the audit chain is extended in memory and
//! written in one pass.

macro_rules! bulk_impl {
    ($store:ty) => {
        impl $store {
            /// Creates users of `org_id` (each `creation.user.org_id` is ignored) with their
            /// licenses, permissions, practices, search postings, audit events and setup
            /// emails; returns their IDs in the order given. Their audit events are added
            /// to `audits`, for the caller to append to the chain with whatever else its
            /// transaction records (one write of the chain's head for all). `NoLicense` or
            /// a practice of another organization (`NotFound`) fails the whole batch.
            /// `empty` when the organization's directory is known to be empty (created in
            /// this transaction): the first batch then has no neighbours to look up.
            pub(super) async fn create_users_in(
                tx: &mut Tx,
                org_id: OrgId,
                creations: &[UserCreation],
                audits: &mut Vec<AuditEntry>,
                empty: bool,
            ) -> StoreResult<Vec<UserId>> {
                use std::collections::BTreeMap;
                let mut ids = Vec::with_capacity(creations.len());
                let mut counts = BTreeMap::<i64, i64>::new();
                let last = creations.len().div_ceil(200).saturating_sub(1);
                for (n, chunk) in creations.chunks(200).enumerate() {
                    // The directory is locked with the first IDs taken, then the license
                    // pools: on PostgreSQL every write takes the directory, pools, users'
                    // rows, and the organization's audit chain in that order.
                    let chunk_ids = Self::allocate_user_ids(tx, chunk.len(), (n == 0).then_some(org_id)).await?;
                    if n == 0 {
                        Self::take_licenses_for(tx, org_id, creations).await?;
                    }
                    let keys: Vec<_> = chunk
                        .iter()
                        .map(|c| $crate::domain::search::SearchKeys::new(&c.user.first_name, &c.user.last_name, &c.user.email, c.user.mobile.as_deref()))
                        .collect();
                    let sort_keys: Vec<String> = chunk
                        .iter()
                        .zip(&chunk_ids)
                        .map(|(c, id)| $crate::domain::search::sort_key(&c.user.first_name, &c.user.last_name, *id))
                        .collect();
                    let (ranks, crowded) = Self::ranks_for_batch(tx, org_id, &sort_keys, empty && n == 0).await?;
                    let mut insert = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO users (id, org_id, username, email, first_name, last_name, mobile, kind, role, status, \
                         password_hash, encryption_key, created_at, updated_at, name_key, mobile_digits, mobile_reversed, \
                         sort_key, search_rank) ",
                    );
                    if BACKEND == $crate::store::Backend::Postgres {
                        insert.push("OVERRIDING SYSTEM VALUE ");
                    }
                    let rows = chunk.iter().zip(&keys).zip(&chunk_ids).zip(sort_keys.iter().zip(&ranks));
                    insert.push_values(rows, |mut row, (((c, keys), id), (sort_key, rank))| {
                        let new = &c.user;
                        let status = if new.password_hash.is_some() { UserStatus::Active } else { UserStatus::Invited };
                        row.push_bind(*id)
                            .push_bind(org_id.0)
                            .push_bind(new.username.clone())
                            .push_bind(new.email.clone())
                            .push_bind(new.first_name.clone())
                            .push_bind(new.last_name.clone())
                            .push_bind(new.mobile.clone())
                            .push_bind(new.kind.as_str())
                            .push_bind(new.role.as_str())
                            .push_bind(status.as_str())
                            .push_bind(new.password_hash.clone())
                            .push_bind(new.encryption_key.clone())
                            .push_bind(new.created_at)
                            .push_bind(new.created_at)
                            .push_bind(keys.name.clone())
                            .push_bind(keys.mobile_digits.clone())
                            .push_bind(keys.mobile_digits.as_deref().map(|d| d.chars().rev().collect::<String>()))
                            .push_bind(sort_key.clone())
                            .push_bind(*rank);
                    });
                    insert.build().execute(&mut **tx).await?;

                    let mut postings = Vec::new();
                    let mut crowded_keys = vec![Vec::new(); chunk.len()];
                    for (i, ((c, keys), rank)) in chunk.iter().zip(&keys).zip(&ranks).enumerate() {
                        let keys = keys.posting_keys(org_id.0, &c.user.username);
                        for key in &keys {
                            *counts.entry(*key).or_default() += 1;
                        }
                        match rank {
                            Some(rank) => postings.extend(keys.into_iter().map(|key| (key, *rank))),
                            None => crowded_keys[i] = keys,
                        }
                    }
                    // The counts go with the last chunk's postings.
                    let change = if n == last { std::mem::take(&mut counts) } else { BTreeMap::new() };
                    Self::move_postings(tx, &[], &postings, change).await?;
                    // Squeezed into a used-up gap: each such run placed at once, spreading
                    // its neighbourhood out (postings and all).
                    for run in crowded {
                        let placed = Self::spread_around(tx, org_id, &sort_keys[run[0]], run.len(), None).await?;
                        let ranked: Vec<(i64, i64)> = run.iter().map(|i| chunk_ids[*i]).zip(placed).collect();
                        Self::set_ranks(tx, &ranked).await?;
                        let mut postings: Vec<(i64, i64)> = run
                            .iter()
                            .zip(&ranked)
                            .flat_map(|(i, (_, rank))| crowded_keys[*i].iter().map(move |key| (*key, *rank)))
                            .collect();
                        Self::insert_postings(tx, &mut postings).await?;
                    }

                    let pairs = |of: &dyn Fn(&UserCreation) -> Vec<String>| -> Vec<(i64, String)> {
                        let mut pairs: Vec<(i64, String)> = chunk.iter().zip(&chunk_ids).flat_map(|(c, id)| of(c).into_iter().map(move |v| (*id, v))).collect();
                        pairs.sort();
                        pairs.dedup();
                        pairs
                    };
                    let products = pairs(&|c| c.user.products.iter().map(|p| p.as_str().to_owned()).collect());
                    let permissions = pairs(&|c| c.user.permissions.iter().map(|p| p.as_str().to_owned()).collect());
                    let mut practices: Vec<(i64, i64)> = chunk
                        .iter()
                        .zip(&chunk_ids)
                        .flat_map(|(c, id)| c.user.practice_ids.iter().map(move |p| (*id, p.0)))
                        .collect();
                    practices.sort();
                    practices.dedup();
                    Self::insert_memberships(tx, &products, &permissions, &practices).await?;

                    audits.extend(chunk.iter().zip(&chunk_ids).map(|(c, id)| {
                        let mut audit = c.audit.clone();
                        audit.org_id = org_id;
                        audit.subject_id = Some(UserId(*id));
                        audit
                    }));
                    let emails: Vec<(OutboxMessage, Timestamp)> = chunk
                        .iter()
                        .zip(&chunk_ids)
                        .filter_map(|(c, id)| c.setup_email.map(|email| (email(UserId(*id)), c.user.created_at)))
                        .collect();
                    for part in emails.chunks(500) {
                        let mut insert = sqlx::QueryBuilder::<Db>::new("INSERT INTO job_outbox (kind, payload, created_at, available_at) ");
                        insert.push_values(part, |mut row, (job, at)| {
                            row.push_bind(job.kind.clone()).push_bind(job.payload.clone()).push_bind(*at).push_bind(*at);
                        });
                        insert.build().execute(&mut **tx).await?;
                    }
                    ids.extend(chunk_ids.iter().copied().map(UserId));
                }
                Self::count_postings(tx, counts).await?;
                Ok(ids)
            }

            /// One license per product for each user, taken per product and kind for the
            /// whole batch: all or none.
            async fn take_licenses_for(tx: &mut Tx, org_id: OrgId, creations: &[UserCreation]) -> StoreResult<()> {
                let mut needed = std::collections::BTreeMap::<(&str, &str), (Product, $crate::domain::UserKind, i64)>::new();
                for c in creations {
                    let mut products = c.user.products.clone();
                    products.sort();
                    products.dedup();
                    for product in products {
                        needed
                            .entry((product.as_str(), c.user.kind.as_str()))
                            .or_insert((product, c.user.kind, 0))
                            .2 += 1;
                    }
                }
                if needed.is_empty() {
                    return Ok(());
                }
                // One statement for every pool: it takes from those with room and names
                // them; a pool it did not name is the one used up.
                let mut take = sqlx::QueryBuilder::<Db>::new("UPDATE license_pools SET used = used + CASE");
                for (product, kind, count) in needed.values() {
                    take.push(" WHEN product = ").push_bind(product.as_str());
                    take.push(" AND kind = ").push_bind(kind.as_str());
                    take.push(" THEN ").push_bind(*count);
                }
                take.push(" END WHERE org_id = ").push_bind(org_id.0).push(" AND (");
                for (i, (product, kind, count)) in needed.values().enumerate() {
                    take.push(if i == 0 { "(product = " } else { " OR (product = " }).push_bind(product.as_str());
                    take.push(" AND kind = ").push_bind(kind.as_str());
                    take.push(" AND used + ").push_bind(*count).push(" <= total)");
                }
                take.push(") RETURNING product, kind");
                let taken: Vec<(String, String)> = take.build_query_as().fetch_all(&mut **tx).await?;
                let short = needed.values().find(|(product, kind, _)| {
                    !taken.iter().any(|(p, k)| p == product.as_str() && k == kind.as_str())
                });
                match short {
                    Some((product, kind, _)) => Err(StoreError::NoLicense { product: *product, kind: *kind }),
                    None => Ok(()),
                }
            }

            /// Every practice named in the batch must be one of the organization's.
            pub(super) async fn check_practices(tx: &mut Tx, org_id: OrgId, creations: &[UserCreation]) -> StoreResult<()> {
                let mut named: Vec<i64> = creations.iter().flat_map(|c| c.user.practice_ids.iter().map(|p| p.0)).collect();
                named.sort();
                named.dedup();
                for part in named.chunks(500) {
                    let mut b = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM practices WHERE org_id = ");
                    b.push_bind(org_id.0).push(" AND id IN (");
                    let mut list = b.separated(", ");
                    for id in part {
                        list.push_bind(*id);
                    }
                    b.push(")");
                    let found: i64 = b.build_query_scalar().fetch_one(&mut **tx).await?;
                    if found != part.len() as i64 {
                        return Err(StoreError::NotFound);
                    }
                }
                Ok(())
            }

            /// Writes new users' products, permissions and practices: on PostgreSQL in one
            /// statement (the pairs bound as arrays), on SQLite a statement for each.
            async fn insert_memberships(
                tx: &mut Tx,
                products: &[(i64, String)],
                permissions: &[(i64, String)],
                practices: &[(i64, i64)],
            ) -> StoreResult<()> {
                if BACKEND == $crate::store::Backend::Postgres {
                    use $crate::store::sql::arrays::{pg_arrays, pg_int_array, pg_text_array};
                    let ids = |pairs: &[(i64, String)]| pg_int_array(pairs.iter().map(|(id, _)| *id));
                    let values = |pairs: &[(i64, String)]| pg_text_array(pairs.iter().map(|(_, v)| v.as_str()));
                    let (practice_users, practice_ids) = pg_arrays(practices);
                    sqlx::query(
                        "WITH products AS (INSERT INTO user_products (user_id, product) \
                         SELECT * FROM unnest($1::int8[], $2::text[])), \
                         permissions AS (INSERT INTO user_permissions (user_id, permission) \
                         SELECT * FROM unnest($3::int8[], $4::text[])) \
                         INSERT INTO user_practices (user_id, practice_id) SELECT * FROM unnest($5::int8[], $6::int8[])",
                    )
                    .bind(ids(products))
                    .bind(values(products))
                    .bind(ids(permissions))
                    .bind(values(permissions))
                    .bind(practice_users)
                    .bind(practice_ids)
                    .execute(&mut **tx)
                    .await?;
                    return Ok(());
                }
                Self::insert_pairs(tx, "INSERT INTO user_products (user_id, product) ", products).await?;
                Self::insert_pairs(tx, "INSERT INTO user_permissions (user_id, permission) ", permissions).await?;
                Self::with_pairs(tx, ("INSERT INTO user_practices (user_id, practice_id) ", ""), practices, 500).await
            }

            async fn insert_pairs(tx: &mut Tx, sql: &str, pairs: &[(i64, String)]) -> StoreResult<()> {
                for part in pairs.chunks(500) {
                    let mut insert = sqlx::QueryBuilder::<Db>::new(sql);
                    insert.push_values(part, |mut row, (id, value)| {
                        row.push_bind(*id).push_bind(value.clone());
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Appends events to one organization's audit chain: the sequence moves once,
            /// the hashes are chained in memory, the rows go in as multi-row statements.
            pub(super) async fn append_audits_in(tx: &mut Tx, org_id: OrgId, entries: &[AuditEntry]) -> StoreResult<()> {
                Self::append_audits_after(tx, org_id, entries, None).await
            }

            /// `append_audits_in`, for an organization whose chain is known to be where
            /// `start` says (`(0, GENESIS)` when this transaction created it): its head is
            /// not read first.
            pub(super) async fn append_audits_after(
                tx: &mut Tx,
                org_id: OrgId,
                entries: &[AuditEntry],
                start: Option<(i64, Vec<u8>)>,
            ) -> StoreResult<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let count = entries.len() as i64;
                let (mut seq, mut prev) = match start {
                    Some(start) => start,
                    None => {
                        let (last, head): (i64, Vec<u8>) = sqlx::query_as(
                            "UPDATE organizations SET audit_seq = audit_seq + $2 WHERE id = $1 \
                             RETURNING audit_seq, audit_head",
                        )
                        .bind(org_id.0)
                        .bind(count)
                        .fetch_one(&mut **tx)
                        .await?;
                        (last - count, head)
                    }
                };
                let first = seq;
                let mut rows = Vec::with_capacity(entries.len());
                for entry in entries {
                    seq += 1;
                    let (details, hash) = Self::chained(entry, seq, &prev);
                    rows.push((entry, seq, details, std::mem::replace(&mut prev, hash.clone()), hash));
                }
                // The sequence already moved when the head was read; else it moves here. On
                // PostgreSQL the head moves in the statement of the last events.
                let postgres = BACKEND == $crate::store::Backend::Postgres;
                let parts = rows.chunks(400).count();
                for (n, part) in rows.chunks(400).enumerate() {
                    let last = n + 1 == parts;
                    let mut insert = sqlx::QueryBuilder::<Db>::new(if postgres && last { "WITH event AS (" } else { "" });
                    insert.push(
                        "INSERT INTO audit_events (org_id, seq, at, action, actor_id, subject_id, \
                         request_id, ip, details, prev_hash, hash) ",
                    );
                    insert.push_values(part, |mut row, (entry, seq, details, prev, hash)| {
                        row.push_bind(entry.org_id.0)
                            .push_bind(*seq)
                            .push_bind(entry.at)
                            .push_bind(entry.action)
                            .push_bind(entry.actor_id.map(|u| u.0))
                            .push_bind(entry.subject_id.map(|u| u.0))
                            .push_bind(entry.request_id)
                            .push_bind(entry.ip.clone())
                            .push_bind(details.clone())
                            .push_bind(prev.clone())
                            .push_bind(hash.clone());
                    });
                    if postgres && last {
                        insert.push(") UPDATE organizations SET audit_head = ").push_bind(prev.clone())
                            .push(", audit_seq = ").push_bind(first + count)
                            .push(" WHERE id = ").push_bind(org_id.0);
                    }
                    insert.build().execute(&mut **tx).await?;
                }
                if !postgres {
                    sqlx::query("UPDATE organizations SET audit_head = $2, audit_seq = $3 WHERE id = $1")
                        .bind(org_id.0)
                        .bind(&prev)
                        .bind(first + count)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// An event's details as stored and its hash after `prev` in the chain.
            pub(super) fn chained(entry: &AuditEntry, seq: i64, prev: &[u8]) -> (String, Vec<u8>) {
                let details = entry.details.to_string();
                let canonical = audit::EventContent {
                    org_id: entry.org_id.0,
                    seq,
                    at: &entry.at,
                    action: entry.action,
                    actor_id: entry.actor_id.map(|u| u.0),
                    subject_id: entry.subject_id.map(|u| u.0),
                    request_id: entry.request_id,
                    ip: entry.ip.as_deref(),
                    details: &details,
                }
                .canonical();
                let hash = audit::chain_hash(prev, &canonical).to_vec();
                (details, hash)
            }
        }
    };
}

pub(crate) use bulk_impl;
