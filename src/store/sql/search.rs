//! SQL of the `SearchStore`: running a users search as `store::search` plans it, and
//! filling in the search keys of rows written before search existed.

macro_rules! search_impl {
    ($store:ty) => {
        impl $store {
            /// Recomputes a user's matching keys, sort key and trigram postings from their
            /// current name, email and mobile.
            pub(super) async fn index_user_in(tx: &mut Tx, user_id: UserId) -> StoreResult<()> {
                #[derive(sqlx::FromRow)]
                struct Row {
                    org_id: i64,
                    username: String,
                    first_name: String,
                    last_name: String,
                    email: String,
                    mobile: Option<String>,
                    sort_key: Option<String>,
                }
                let row: Row = sqlx::query_as(
                    "SELECT org_id, username, first_name, last_name, email, mobile, sort_key FROM users WHERE id = $1",
                )
                .bind(user_id.0)
                .fetch_one(&mut **tx)
                .await?;
                let keys = $crate::domain::search::SearchKeys::new(&row.first_name, &row.last_name, &row.email, row.mobile.as_deref());
                let sort_key = $crate::domain::search::sort_key(&row.first_name, &row.last_name, user_id.0);
                // How many users carry each trigram moves by the difference between the
                // user's old and new trigrams, applied in trigram order so that concurrent
                // writers lock the count rows in the same order.
                let mut change = std::collections::BTreeMap::<String, i64>::new();
                if let Some(old) = &row.sort_key {
                    let old_grams: Vec<String> = sqlx::query_scalar(
                        "DELETE FROM user_search_grams WHERE org_id = $1 AND sort_key = $2 RETURNING gram",
                    )
                    .bind(row.org_id)
                    .bind(old)
                    .fetch_all(&mut **tx)
                    .await?;
                    for gram in old_grams {
                        *change.entry(gram).or_default() -= 1;
                    }
                }
                sqlx::query(
                    "UPDATE users SET sort_key = $2, name_key = $3, mobile_digits = $4, mobile_reversed = $5 WHERE id = $1",
                )
                    .bind(user_id.0)
                    .bind(&sort_key)
                    .bind(&keys.name)
                    .bind(keys.mobile_digits.as_deref())
                    .bind(keys.mobile_digits.as_deref().map(|d| d.chars().rev().collect::<String>()))
                    .execute(&mut **tx)
                    .await?;
                let grams = keys.grams(&row.username);
                for chunk in grams.chunks(200) {
                    let mut insert = sqlx::QueryBuilder::<Db>::new("INSERT INTO user_search_grams (org_id, gram, sort_key, user_id) ");
                    insert.push_values(chunk, |mut values, gram| {
                        values.push_bind(row.org_id).push_bind(gram).push_bind(&sort_key).push_bind(user_id.0);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                for gram in grams {
                    *change.entry(gram).or_default() += 1;
                }
                change.retain(|_, by| *by != 0);
                let change: Vec<_> = change.into_iter().collect();
                for chunk in change.chunks(200) {
                    let mut upsert = sqlx::QueryBuilder::<Db>::new("INSERT INTO user_search_gram_counts (org_id, gram, users) ");
                    upsert.push_values(chunk, |mut values, (gram, by)| {
                        values.push_bind(row.org_id).push_bind(gram).push_bind(*by);
                    });
                    upsert.push(
                        " ON CONFLICT (org_id, gram) DO UPDATE \
                         SET users = user_search_gram_counts.users + excluded.users",
                    );
                    upsert.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// The users whose `field` starts with `start`: a range of the field's index
            /// (byte-wise, so every such value sorts below `start` followed by the last
            /// code point).
            fn push_field_range(b: &mut sqlx::QueryBuilder<Db>, field: SearchField, start: &str) {
                let column = $crate::store::sql::field_column(field, BACKEND);
                b.push(format!(" AND {column} >= ")).push_bind(start.to_owned());
                b.push(format!(" AND {column} < ")).push_bind(format!("{start}{}", char::MAX));
            }

            /// The FROM and WHERE of a users search: walking the postings of `grams[0]` in
            /// directory order (each further trigram looked up beside it) or, without
            /// trigrams, the organization's users in directory order; then every condition
            /// checked on the user row. CROSS JOIN keeps that order on SQLite.
            fn push_user_matches(b: &mut sqlx::QueryBuilder<Db>, q: &$crate::store::UserSearch, driver: &SearchDriver) {
                fn like_escape(text: &str) -> String {
                    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                }
                match driver {
                    SearchDriver::Directory => {
                        b.push(" FROM users u WHERE u.org_id = ").push_bind(q.org_id.0);
                    }
                    SearchDriver::Field { field, start } => {
                        b.push(" FROM users u WHERE u.org_id = ").push_bind(q.org_id.0);
                        Self::push_field_range(b, *field, start);
                    }
                    SearchDriver::Grams(grams) => {
                        b.push(" FROM user_search_grams g0");
                        for i in 1..grams.len() {
                            b.push(format!(" CROSS JOIN user_search_grams g{i}"));
                        }
                        b.push(" CROSS JOIN users u WHERE g0.org_id = ").push_bind(q.org_id.0);
                        b.push(" AND g0.gram = ").push_bind(grams[0].clone());
                        for (i, gram) in grams.iter().enumerate().skip(1) {
                            b.push(format!(" AND g{i}.org_id = g0.org_id AND g{i}.gram = "))
                                .push_bind(gram.clone())
                                .push(format!(" AND g{i}.sort_key = g0.sort_key AND g{i}.user_id = g0.user_id"));
                        }
                        b.push(" AND u.id = g0.user_id");
                    }
                }
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
                    b.push(" AND u.name_key LIKE ").push_bind(format!("%{}%", like_escape(name))).push(" ESCAPE '\\'");
                }
                if let Some(username) = &q.username {
                    b.push(" AND u.username LIKE ").push_bind(format!("{}%", like_escape(username))).push(" ESCAPE '\\'");
                }
                if let Some(email) = &q.email {
                    b.push(" AND lower(u.email) LIKE ").push_bind(format!("{}%", like_escape(email))).push(" ESCAPE '\\'");
                }
                if let Some(mobile) = &q.mobile {
                    b.push(" AND u.mobile_digits LIKE ").push_bind(format!("%{}", like_escape(mobile))).push(" ESCAPE '\\'");
                }
                if let Some(any) = &q.any {
                    let text = like_escape(&any.text);
                    b.push(" AND (u.name_key LIKE ").push_bind(format!("%{text}%")).push(" ESCAPE '\\'");
                    b.push(" OR u.username LIKE ").push_bind(format!("{text}%")).push(" ESCAPE '\\'");
                    b.push(" OR lower(u.email) LIKE ").push_bind(format!("{text}%")).push(" ESCAPE '\\'");
                    if let Some(digits) = &any.digits {
                        b.push(" OR u.mobile_digits LIKE ").push_bind(format!("%{}", like_escape(digits))).push(" ESCAPE '\\'");
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
                // One statement reads the statistics the plan needs: how many users carry
                // each trigram (the rarest leads), how many (up to a bound) start each
                // prefix-matched field with the query, and, when a total is wanted, the
                // directory's version (a total is counted once per version).
                use $crate::store::search::{FIELD_READ_LIMIT, Plan, Questions};
                let questions = Questions::of(&q);
                let remember = questions.remember;
                let mut version = 0;
                let mut driver = SearchDriver::Directory;
                if questions.any() {
                    let mut b = sqlx::QueryBuilder::<Db>::new("SELECT gram, users FROM user_search_gram_counts WHERE org_id = ");
                    b.push_bind(q.org_id.0).push(" AND users > 0 AND gram IN (");
                    let mut list = b.separated(", ");
                    list.push_bind("");
                    for gram in &questions.grams {
                        list.push_bind(gram);
                    }
                    b.push(")");
                    for (field, start) in &questions.fields {
                        b.push(format!(" UNION ALL SELECT '{}', COUNT(*) FROM (SELECT 1 FROM users u WHERE u.org_id = ", field.label()))
                            .push_bind(q.org_id.0);
                        Self::push_field_range(&mut b, *field, start);
                        b.push(format!(" LIMIT {}) f", FIELD_READ_LIMIT + 1));
                    }
                    if remember {
                        b.push(" UNION ALL SELECT NULL, version FROM directory_versions WHERE org_id = ").push_bind(q.org_id.0);
                    }
                    let rows: Vec<(Option<String>, i64)> = b.build_query_as().fetch_all(&self.pool).await?;
                    let mut grams = Vec::with_capacity(questions.grams.len());
                    let mut fields = Vec::new();
                    for (label, n) in rows {
                        match label {
                            None => version = n,
                            Some(label) => match questions.fields.iter().find(|(f, _)| f.label() == label) {
                                Some((field, _)) => fields.push((*field, n)),
                                None => grams.push((n, label)),
                            },
                        }
                    }
                    driver = match $crate::store::search::plan(&questions, grams, &fields) {
                        Plan::Nothing => return Ok(UserPage::none(q.with_total)),
                        Plan::Read(driver) => driver,
                    };
                }
                let remembered = remember.then(|| {
                    let key = $crate::store::SearchTotals::key(&q);
                    let known = self.totals.get(q.org_id, &key, version);
                    (key, version, known)
                });

                // The order to page by; a field range is sorted after reading (the
                // expression keeps the directory-order index out of the plan).
                let key = match &driver {
                    SearchDriver::Directory => "u.sort_key",
                    SearchDriver::Grams(_) => "g0.sort_key",
                    SearchDriver::Field { .. } => "(u.sort_key || '')",
                };
                let mut b = sqlx::QueryBuilder::<Db>::new("SELECT ");
                b.push(user_columns!()).push(", u.sort_key AS sort_key");
                Self::push_user_matches(&mut b, &q, &driver);
                if let Some(after) = &q.after {
                    b.push(" AND ").push(key).push(" > ").push_bind(after.clone());
                }
                b.push(" ORDER BY ").push(key).push(" LIMIT ").push_bind(q.limit);
                #[derive(sqlx::FromRow)]
                struct Row {
                    #[sqlx(flatten)]
                    user: UserRow,
                    sort_key: String,
                }
                let rows: Vec<Row> = b.build_query_as().fetch_all(&self.pool).await?;

                let total = match remembered {
                    _ if !q.with_total => None,
                    Some((_, _, Some(known))) => Some(known),
                    // The first page holds every match: nothing more to count.
                    _ if q.after.is_none() && (rows.len() as i64) < q.limit => Some(rows.len() as i64),
                    remembered => {
                        let mut b = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*)");
                        Self::push_user_matches(&mut b, &q, &driver);
                        let total: i64 = b.build_query_scalar().fetch_one(&self.pool).await?;
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
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT id, mobile_digits FROM users \
                         WHERE mobile_digits IS NOT NULL AND mobile_reversed IS NULL ORDER BY id LIMIT 500",
                    )
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
                let mut done = 0u64;
                loop {
                    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE sort_key IS NULL ORDER BY id LIMIT 500")
                        .fetch_all(&self.pool)
                        .await?;
                    if ids.is_empty() {
                        return Ok(done);
                    }
                    let mut tx = self.begin_write().await?;
                    for id in &ids {
                        Self::index_user_in(&mut tx, UserId(*id)).await?;
                    }
                    tx.commit().await?;
                    done += ids.len() as u64;
                }
            }
        }
    };
}

pub(crate) use search_impl;
