//! SQL of the `SearchStore`: running a users search as `store::search` plans it, and
//! filling in the search keys of rows written before search existed.

macro_rules! search_impl {
    ($store:ty) => {
        impl $store {
            /// Starts the page after the cursor: a sort key, or for a walk in rank order,
            /// the rank of the last user at or before it.
            fn push_after(b: &mut sqlx::QueryBuilder<Db>, q: &$crate::store::UserSearch, order: &str, ranked: bool) {
                let Some(after) = &q.after else { return };
                b.push(" AND ").push(order).push(" > ");
                if ranked {
                    b.push("COALESCE((SELECT c.search_rank FROM users c WHERE c.org_id = ")
                        .push_bind(q.org_id.0)
                        .push(" AND c.sort_key <= ")
                        .push_bind(after.clone())
                        .push(" ORDER BY c.sort_key DESC LIMIT 1), ")
                        .push_bind(i64::MIN)
                        .push(")");
                } else {
                    b.push_bind(after.clone());
                }
            }

            /// The users whose `field` starts with `start`: a range of the field's index
            /// (byte-wise, so every such value sorts below `start` followed by the last
            /// code point).
            pub(super) fn push_field_range(b: &mut sqlx::QueryBuilder<Db>, field: SearchField, start: &str) {
                let column = $crate::store::sql::field_column(field, BACKEND);
                b.push(format!(" AND {column} >= ")).push_bind(start.to_owned());
                b.push(format!(" AND {column} < ")).push_bind(format!("{start}{}", char::MAX));
            }

            /// The FROM and WHERE of a users search: walking the postings of `walk`'s lead
            /// in directory order (each of its probes looked up beside it), or else the
            /// organization's users of one status or in directory order, or a field's
            /// range; then every condition checked on the user row. CROSS JOIN keeps that
            /// order on SQLite. `lateral` (PostgreSQL): the lead's postings are the only
            /// way in, each posting's probes and user looked up by its rank inside a fenced subquery,
            /// so that the plan is the same whatever the values: PostgreSQL then plans it
            /// once per connection (a generic plan), not at every search. Joined, the
            /// planner could start from the organization's users instead, reading all
            /// 100,000 of the largest to test each against the text.
            /// `counting` (PostgreSQL): every match is wanted, so the rarest probe's list,
            /// when the planner found it short, is read whole and intersected with the lead's (a hashed set, a few
            /// tenths of a microsecond a posting) instead of probed posting by posting (an
            /// index descent each, about 2 µs).
            fn push_user_matches(b: &mut sqlx::QueryBuilder<Db>, q: &$crate::store::UserSearch, driver: &SearchDriver, walk: Option<&PostingWalk>, lateral: bool, counting: bool) {
                match (walk, driver) {
                    (Some(walk), _) if lateral => {
                        // The rarest probe, when it is intersected instead of probed.
                        let intersected = walk.probes.first().filter(|_| counting && walk.read_rarest_whole);
                        if let Some(probe) = intersected {
                            b.push(" FROM (SELECT rank FROM user_search_postings WHERE key = ").push_bind(walk.lead);
                            b.push(" INTERSECT SELECT rank FROM user_search_postings WHERE key = ").push_bind(*probe).push(") p0");
                        } else {
                            b.push(" FROM user_search_postings p0");
                        }
                        b.push(" CROSS JOIN LATERAL (SELECT u.* FROM users u WHERE");
                        let skipped = usize::from(intersected.is_some());
                        for (i, probe) in walk.probes.iter().enumerate().skip(skipped) {
                            let p = format!("p{}", i + 1);
                            b.push(format!(" EXISTS (SELECT 1 FROM user_search_postings {p} WHERE {p}.key = "))
                                .push_bind(*probe)
                                .push(format!(" AND {p}.rank = p0.rank) AND"));
                        }
                        b.push(" u.org_id = ").push_bind(q.org_id.0);
                        b.push(" AND u.search_rank = p0.rank");
                        Self::push_conditions(b, q);
                        b.push(" OFFSET 0) u");
                        if intersected.is_none() {
                            b.push(" WHERE p0.key = ").push_bind(walk.lead);
                        }
                        return;
                    }
                    (Some(walk), _) => {
                        b.push(" FROM user_search_postings p0");
                        for i in 1..=walk.probes.len() {
                            b.push(format!(" CROSS JOIN user_search_postings p{i}"));
                        }
                        b.push(" CROSS JOIN users u WHERE p0.key = ").push_bind(walk.lead);
                        for (i, probe) in walk.probes.iter().enumerate() {
                            b.push(format!(" AND p{}.key = ", i + 1))
                                .push_bind(*probe)
                                .push(format!(" AND p{}.rank = p0.rank", i + 1));
                        }
                        b.push(" AND u.org_id = ").push_bind(q.org_id.0).push(" AND u.search_rank = p0.rank");
                    }
                    (None, SearchDriver::Field { field, start }) => {
                        b.push(" FROM users u WHERE u.org_id = ").push_bind(q.org_id.0);
                        Self::push_field_range(b, *field, start);
                    }
                    _ => {
                        b.push(" FROM users u WHERE u.org_id = ").push_bind(q.org_id.0);
                    }
                }
                Self::push_conditions(b, q);
            }

            /// What every match satisfies, on the user row `u`.
            fn push_conditions(b: &mut sqlx::QueryBuilder<Db>, q: &$crate::store::UserSearch) {
                fn like_escape(text: &str) -> String {
                    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                }
                // Backslash escapes by default on PostgreSQL; an ESCAPE clause there would
                // be a call per row in a plan made before the pattern is known.
                let escape = if BACKEND == $crate::store::Backend::Postgres { "" } else { " ESCAPE '\\'" };
                if let Some(practice) = q.practice_id {
                    b.push(" AND EXISTS (SELECT 1 FROM user_practices up WHERE up.user_id = u.id AND up.practice_id = ")
                        .push_bind(practice.0)
                        .push(")");
                }
                if let Some(status) = q.status {
                    b.push(" AND u.status = ").push_bind(status.as_str());
                }
                if let Some(kind) = q.kind {
                    b.push(" AND u.kind = ").push_bind(kind.as_str());
                }
                match q.locked {
                    Some(true) => {
                        b.push(" AND u.locked_until > ").push_bind(q.now);
                    }
                    Some(false) => {
                        b.push(" AND (u.locked_until IS NULL OR u.locked_until <= ").push_bind(q.now).push(")");
                    }
                    None => {}
                }
                if let Some(name) = &q.name {
                    b.push(" AND u.name_key LIKE ").push_bind(format!("%{}%", like_escape(name))).push(escape);
                }
                if let Some(username) = &q.username {
                    b.push(" AND u.username LIKE ").push_bind(format!("{}%", like_escape(username))).push(escape);
                }
                if let Some(email) = &q.email {
                    b.push(" AND lower(u.email) LIKE ").push_bind(format!("{}%", like_escape(email))).push(escape);
                }
                if let Some(mobile) = &q.mobile {
                    b.push(" AND u.mobile_digits LIKE ").push_bind(format!("%{}", like_escape(mobile))).push(escape);
                }
                if let Some(any) = &q.any {
                    let text = like_escape(&any.text);
                    b.push(" AND (u.name_key LIKE ").push_bind(format!("%{text}%")).push(escape);
                    b.push(" OR u.username LIKE ").push_bind(format!("{text}%")).push(escape);
                    b.push(" OR lower(u.email) LIKE ").push_bind(format!("{text}%")).push(escape);
                    if let Some(digits) = &any.digits {
                        b.push(" OR u.mobile_digits LIKE ").push_bind(format!("%{}", like_escape(digits))).push(escape);
                    }
                    b.push(")");
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SearchStore for $store {
            async fn search_users(&self, q: $crate::store::UserSearch) -> StoreResult<$crate::store::UserPage> {
                use $crate::store::UserPage;
                // No stored name, username, email or number holds a NUL (PostgreSQL text
                // cannot): a query with one matches nobody.
                let nul = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains('\0'));
                if [&q.name, &q.username, &q.email, &q.mobile].into_iter().any(nul)
                    || q.any.as_ref().is_some_and(|a| a.text.contains('\0'))
                {
                    return Ok($crate::store::UserPage::none(q.with_total));
                }
                let search_key = $crate::store::SearchTotals::key(&q);
                let remember = $crate::store::search::Questions::remembers(&q);
                // A recent plan is reused; then the directory's version (for a remembered
                // total) comes with the page.
                let (driver, version) = match self.plans.get(&search_key) {
                    Some(driver) => (driver, None),
                    None => match self.plan_search(&q).await? {
                        Some((driver, version)) => {
                            self.plans.put(search_key, driver.clone());
                            (driver, Some(version))
                        }
                        None => return Ok(UserPage::none(q.with_total)),
                    },
                };
                // One walk per alternative of a union; none when the users are read otherwise.
                let walks: Vec<Option<&PostingWalk>> = match &driver {
                    SearchDriver::Postings(walks) => walks.iter().map(Some).collect(),
                    _ => vec![None],
                };
                // The order to page by; a field range is sorted after reading (the
                // expression keeps the directory-order index out of the plan).
                let (order, ranked) = match &driver {
                    SearchDriver::Directory => ("u.sort_key", false),
                    SearchDriver::Status(_) => ("u.search_rank", true),
                    SearchDriver::Postings(_) => ("p0.rank", true),
                    SearchDriver::Field { .. } => ("(u.sort_key || '')", false),
                };
                // On PostgreSQL a postings-led search is written so that it has one plan
                // (see `push_user_matches`) and runs on the connections that plan once;
                // the others are planned for their values on connections of their own.
                let lateral = BACKEND == $crate::store::Backend::Postgres;
                let pool = match &driver {
                    SearchDriver::Postings(_) if lateral => &self.postings,
                    _ => &self.search,
                };
                // A union takes each alternative's first page in order (so that each stops
                // early, whatever the database estimates), then the first page of those.
                let union = walks.len() > 1;
                let mut b = sqlx::QueryBuilder::<Db>::new("");
                for (i, walk) in walks.iter().enumerate() {
                    if i > 0 {
                        b.push(" UNION ALL ");
                    }
                    if union {
                        b.push("SELECT * FROM (");
                    }
                    b.push("SELECT ").push(user_columns!()).push(", u.sort_key AS sort_key, ").push(order).push(" AS page_order");
                    if remember && version.is_none() {
                        b.push(", (SELECT version FROM directory_versions WHERE org_id = ")
                            .push_bind(q.org_id.0)
                            .push(") AS directory_version");
                    }
                    Self::push_user_matches(&mut b, &q, &driver, *walk, lateral, false);
                    Self::push_after(&mut b, &q, order, ranked);
                    b.push(" ORDER BY ").push(order);
                    if union {
                        b.push(" LIMIT ").push_bind(q.limit).push(format!(") arm{i}"));
                    }
                }
                if union {
                    b.push(" ORDER BY page_order");
                }
                // A user found under several keys of a union comes once per key.
                b.push(" LIMIT ").push_bind(q.limit * walks.len() as i64);
                #[derive(sqlx::FromRow)]
                struct Row {
                    #[sqlx(flatten)]
                    user: UserRow,
                    sort_key: String,
                    #[sqlx(default)]
                    directory_version: Option<i64>,
                }
                let mut rows: Vec<Row> = b.build_query_as().fetch_all(pool).await?;
                let version = version.or_else(|| rows.first().and_then(|r| r.directory_version));
                let remembered = version.filter(|_| remember).map(|version| {
                    let known = self.totals.get(q.org_id, &search_key, version);
                    (search_key, version, known)
                });
                rows.dedup_by(|a, b| a.sort_key == b.sort_key);
                rows.truncate(q.limit.max(0) as usize);

                let total = match remembered {
                    _ if !q.with_total => None,
                    Some((_, _, Some(known))) => Some(known),
                    // The first page holds every match: nothing more to count.
                    _ if q.after.is_none() && (rows.len() as i64) < q.limit => Some(rows.len() as i64),
                    remembered => {
                        let mut b = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM (");
                        for (i, walk) in walks.iter().enumerate() {
                            if i > 0 {
                                b.push(" UNION ");
                            }
                            b.push("SELECT u.id");
                            Self::push_user_matches(&mut b, &q, &driver, *walk, lateral, true);
                        }
                        b.push(") matches");
                        let total: i64 = b.build_query_scalar().fetch_one(pool).await?;
                        if let Some((key, version, _)) = remembered {
                            self.totals.put(q.org_id, key, version, total);
                        }
                        Some(total)
                    }
                };
                let users = rows
                    .into_iter()
                    .map(|r| Ok((r.sort_key, User::try_from(r.user)?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(UserPage { users, total })
            }

            async fn reindex_users(&self) -> StoreResult<u64> {
                // Mobiles indexed before their reversed digits were kept.
                loop {
                    let rows: Vec<(i64, String)> = sqlx::query_as(crate::store::search::UNREVERSED_MOBILES)
                    .fetch_all(&self.pool)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    let mut tx = self.begin_write().await?;
                    for (id, digits) in rows {
                        sqlx::query("UPDATE users SET mobile_reversed = $2 WHERE id = $1")
                            .bind(id)
                            .bind(digits.chars().rev().collect::<String>())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                }
                self.backfill_short_name_pieces().await?;
                let mut done = 0u64;
                loop {
                    let ids: Vec<(i64, i64)> = sqlx::query_as(crate::store::search::UNRANKED_USERS)
                        .fetch_all(&self.pool)
                        .await?;
                    if ids.is_empty() {
                        return Ok(done);
                    }
                    let mut tx = self.begin_write().await?;
                    for (id, org_id) in &ids {
                        Self::index_user_in(&mut tx, OrgId(*org_id), UserId(*id)).await?;
                    }
                    tx.commit().await?;
                    done += ids.len() as u64;
                }
            }
        }
    };
}

pub(crate) use search_impl;
