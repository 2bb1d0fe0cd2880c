//! SQL of the `PortableStore`: reading every table from one snapshot into JSON lines, and
//! loading them into an empty database, whichever kind wrote them.

mod values;

pub(crate) use values::{Kind, Value, bad_file, convert};

macro_rules! portable_impl {
    ($store:ty) => {
        impl $store {
            /// Every table's columns with their types, in column order.
            async fn table_columns(
                conn: &mut <Db as sqlx::Database>::Connection,
                table: &str,
            ) -> StoreResult<Vec<(String, $crate::store::sql::portable::Kind)>> {
                use $crate::store::sql::portable::Kind;
                let rows: Vec<(String, String)> = match BACKEND {
                    $crate::store::Backend::Sqlite => {
                        sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                            .bind(table)
                            .fetch_all(&mut *conn)
                            .await?
                    }
                    $crate::store::Backend::Postgres => {
                        sqlx::query_as(
                            "SELECT column_name::text, data_type::text FROM information_schema.columns \
                             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                        )
                        .bind(table)
                        .fetch_all(&mut *conn)
                        .await?
                    }
                };
                let postgres = BACKEND == $crate::store::Backend::Postgres;
                Ok(rows.into_iter().map(|(name, declared)| (name, Kind::of_declared(&declared, postgres))).collect())
            }

            async fn table_names(conn: &mut <Db as sqlx::Database>::Connection) -> StoreResult<Vec<String>> {
                let sql = match BACKEND {
                    $crate::store::Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
                    $crate::store::Backend::Postgres => {
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    }
                };
                Ok(sqlx::query_scalar(sql).fetch_all(&mut *conn).await?)
            }

            /// The queue is not part of an export: a job handed to it before the snapshot
            /// but not yet done would be lost. Every job acts once however often it runs
            /// (a request moves on only from its status; an email is sent once by its key),
            /// so each one whose effect the data does not show goes back to the outbox.
            async fn reopen_unfinished_jobs(conn: &mut <Db as sqlx::Database>::Connection) -> StoreResult<u64> {
                let request_id = match BACKEND {
                    $crate::store::Backend::Sqlite => "CAST(json_extract(o.payload, '$.request_id') AS INTEGER)",
                    $crate::store::Backend::Postgres => "((o.payload::jsonb) ->> 'request_id')::bigint",
                };
                let sql = format!(
                    "UPDATE job_outbox SET relayed_at = NULL, attempts = 0, last_error = NULL \
                     WHERE relayed_at IS NOT NULL AND id IN ( \
                       SELECT o.id FROM job_outbox o WHERE o.relayed_at IS NOT NULL AND ( \
                         (o.kind IN ('email', 'account_setup_email') \
                          AND NOT EXISTS (SELECT 1 FROM email_deliveries d WHERE d.email_key = 'outbox-' || o.id)) \
                         OR (o.kind = 'route_request' AND EXISTS ( \
                          SELECT 1 FROM requests r WHERE r.id = {request_id} AND r.status = 'SUBMITTED')) \
                         OR (o.kind = 'apply_request' AND EXISTS ( \
                          SELECT 1 FROM requests r WHERE r.id = {request_id} AND r.status = 'APPROVED'))))"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::PortableStore for $store {
            async fn export(
                &self,
                out: &mut (dyn std::io::Write + Send),
                progress: &(dyn for<'t> Fn(&'t str, u64) + Send + Sync),
            ) -> StoreResult<u64> {
                use $crate::store::portable::{DERIVED, FORMAT, TABLES};
                use $crate::store::sql::portable::{Kind, bad_file};
                use base64::Engine as _;
                use futures_util::TryStreamExt as _;
                use sqlx::Row as _;
                let write = |out: &mut (dyn std::io::Write + Send), line: serde_json::Value| {
                    writeln!(out, "{line}").map_err(|e| bad_file(format!("cannot write the export: {e}")))
                };
                let mut tx = self.pool.begin().await?;
                if BACKEND == $crate::store::Backend::Postgres {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
                }
                let unknown: Vec<String> = Self::table_names(&mut tx)
                    .await?
                    .into_iter()
                    .filter(|t| !TABLES.contains(&t.as_str()) && !DERIVED.contains(&t.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    return Err(bad_file(format!("tables unknown to the export: {}", unknown.join(", "))));
                }
                let migration: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
                    .fetch_one(&mut *tx)
                    .await?;
                let source = match BACKEND {
                    $crate::store::Backend::Sqlite => "sqlite",
                    $crate::store::Backend::Postgres => "postgres",
                };
                write(out, serde_json::json!({ "gatehouse_export": FORMAT, "migration": migration, "source": source }))?;
                let mut total = 0u64;
                for table in TABLES {
                    let columns = Self::table_columns(&mut tx, table).await?;
                    let header: Vec<[&str; 2]> = columns.iter().map(|(name, kind)| [name.as_str(), kind.name()]).collect();
                    write(out, serde_json::json!({ "table": table, "columns": header }))?;
                    let list = columns.iter().map(|(name, _)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ");
                    let sql = format!("SELECT {list} FROM {table} ORDER BY {}", 1);
                    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
                    let mut count = 0u64;
                    while let Some(row) = rows.try_next().await? {
                        let mut values = Vec::with_capacity(columns.len());
                        for (i, (_, kind)) in columns.iter().enumerate() {
                            let value = match kind {
                                Kind::Int => serde_json::json!(row.try_get::<Option<i64>, _>(i)?),
                                Kind::Int4 => serde_json::json!(row.try_get::<Option<i32>, _>(i)?),
                                Kind::Real => serde_json::json!(row.try_get::<Option<f64>, _>(i)?),
                                Kind::Bool => serde_json::json!(row.try_get::<Option<bool>, _>(i)?),
                                Kind::Bytes => serde_json::json!(row
                                    .try_get::<Option<Vec<u8>>, _>(i)?
                                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b))),
                                Kind::Time => serde_json::json!(row
                                    .try_get::<Option<Timestamp>, _>(i)?
                                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))),
                                Kind::Text => serde_json::json!(row.try_get::<Option<String>, _>(i)?),
                            };
                            values.push(value);
                        }
                        write(out, serde_json::Value::Array(values))?;
                        count += 1;
                        if count.is_multiple_of(10_000) {
                            progress(table, count);
                        }
                    }
                    progress(table, count);
                    total += count;
                }
                write(out, serde_json::json!({ "end": true, "rows": total }))?;
                out.flush().map_err(|e| bad_file(format!("cannot write the export: {e}")))?;
                tx.commit().await?;
                Ok(total)
            }

            async fn import(
                &self,
                input: &mut (dyn std::io::BufRead + Send),
                progress: &(dyn for<'t> Fn(&'t str, u64) + Send + Sync),
            ) -> StoreResult<u64> {
                use $crate::store::portable::{FORMAT, TABLES};
                use $crate::store::sql::portable::{Kind, Value, bad_file, convert};
                let mut lines = std::io::BufRead::lines(&mut *input).enumerate().map(|(n, line)| {
                    let line = line.map_err(|e| bad_file(format!("cannot read the file: {e}")))?;
                    serde_json::from_str::<serde_json::Value>(&line)
                        .map_err(|e| bad_file(format!("line {}: not JSON: {e}", n + 1)))
                        .map(|v| (n + 1, v))
                });
                let (_, first) = lines.next().ok_or_else(|| bad_file("the file is empty"))??;
                if first["gatehouse_export"].as_i64() != Some(FORMAT) {
                    return Err(bad_file("line 1: not a Gatehouse export"));
                }
                let mut tx = self.begin_write().await?;
                let migration: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
                    .fetch_one(&mut *tx)
                    .await?;
                if first["migration"].as_i64() != Some(migration) {
                    return Err(bad_file(format!(
                        "the file was written at migration {}, this database is at {migration}: use the same Gatehouse version for both",
                        first["migration"]
                    )));
                }
                let organizations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations").fetch_one(&mut *tx).await?;
                if organizations > 0 {
                    return Err(bad_file("this database is not empty: import into a new database"));
                }
                if BACKEND == $crate::store::Backend::Sqlite {
                    sqlx::query("PRAGMA soft_heap_limit = 0").execute(&mut *tx).await?;
                    sqlx::query("PRAGMA cache_size = -262144").execute(&mut *tx).await?;
                }
                /// The table being loaded: its columns as the file names them, the target's
                /// type of each, and rows waiting for a multi-row insert.
                struct Loading {
                    table: String,
                    from: Vec<Kind>,
                    to: Vec<Kind>,
                    sql: String,
                    rows: Vec<Vec<Value>>,
                    count: u64,
                }
                async fn flush(tx: &mut Tx, loading: &mut Loading) -> StoreResult<()> {
                    if loading.rows.is_empty() {
                        return Ok(());
                    }
                    let mut insert = sqlx::QueryBuilder::<Db>::new(&loading.sql);
                    insert.push_values(loading.rows.drain(..), |mut b, row| {
                        for value in row {
                            match value {
                                Value::Int(v) => { b.push_bind(v); }
                                Value::Real(v) => { b.push_bind(v); }
                                Value::Text(v) => { b.push_bind(v); }
                                Value::Bool(v) => { b.push_bind(v); }
                                Value::Time(v) => { b.push_bind(v); }
                                Value::Bytes(v) => { b.push_bind(v); }
                            }
                        }
                    });
                    insert.build().execute(&mut **tx).await?;
                    Ok(())
                }
                let mut loading: Option<Loading> = None;
                let mut total = 0u64;
                let mut ended = false;
                let mut seen = Vec::new();
                for line in lines {
                    let (n, value) = line?;
                    if ended {
                        return Err(bad_file(format!("line {n}: more after the end")));
                    }
                    match value {
                        serde_json::Value::Array(values) => {
                            let current = loading.as_mut().ok_or_else(|| bad_file(format!("line {n}: a row before any table")))?;
                            if values.len() != current.from.len() {
                                return Err(bad_file(format!("line {n}: {} values for {} columns", values.len(), current.from.len())));
                            }
                            let row = values
                                .iter()
                                .zip(current.from.iter().zip(&current.to))
                                .map(|(v, (from, to))| convert(v, *from, *to))
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(|e| bad_file(format!("line {n}: {e}")))?;
                            current.rows.push(row);
                            current.count += 1;
                            total += 1;
                            // Within both databases' limits on bound values.
                            if current.rows.len() * current.from.len() >= 30_000 {
                                flush(&mut tx, current).await?;
                                progress(&current.table, current.count);
                            }
                        }
                        serde_json::Value::Object(header) if header.contains_key("table") => {
                            if let Some(mut done) = loading.take() {
                                flush(&mut tx, &mut done).await?;
                                progress(&done.table, done.count);
                            }
                            let table = header["table"].as_str().unwrap_or_default().to_owned();
                            if !TABLES.contains(&table.as_str()) || seen.contains(&table) {
                                return Err(bad_file(format!("line {n}: unknown or repeated table {table:?}")));
                            }
                            seen.push(table.clone());
                            let target = Self::table_columns(&mut tx, &table).await?;
                            let mut names = Vec::new();
                            let (mut from, mut to) = (Vec::new(), Vec::new());
                            for column in header["columns"].as_array().into_iter().flatten() {
                                let name = column[0].as_str().unwrap_or_default();
                                let kind = column[1].as_str().and_then(Kind::parse);
                                let found = target.iter().find(|(t, _)| t == name);
                                match (kind, found) {
                                    (Some(kind), Some((_, target_kind))) => {
                                        names.push(format!("\"{name}\""));
                                        from.push(kind);
                                        to.push(*target_kind);
                                    }
                                    _ => return Err(bad_file(format!("line {n}: {table} has no column {name:?} here"))),
                                }
                            }
                            let overriding = if BACKEND == $crate::store::Backend::Postgres
                                && target.iter().any(|(c, _)| c == "id")
                                && names.iter().any(|c| c == "\"id\"")
                            {
                                " OVERRIDING SYSTEM VALUE "
                            } else {
                                " "
                            };
                            let sql = format!("INSERT INTO {table} ({}){overriding}", names.join(", "));
                            loading = Some(Loading { table, from, to, sql, rows: Vec::new(), count: 0 });
                        }
                        serde_json::Value::Object(end) if end.get("end") == Some(&serde_json::Value::Bool(true)) => {
                            if end["rows"].as_u64() != Some(total) {
                                return Err(bad_file(format!("line {n}: the file says {} rows, it holds {total}", end["rows"])));
                            }
                            ended = true;
                        }
                        _ => return Err(bad_file(format!("line {n}: neither a table, a row nor the end"))),
                    }
                }
                if !ended {
                    return Err(bad_file("the file ends before its last line: it was cut short"));
                }
                if let Some(mut done) = loading.take() {
                    flush(&mut tx, &mut done).await?;
                    progress(&done.table, done.count);
                }
                Self::reopen_unfinished_jobs(&mut tx).await?;
                if BACKEND == $crate::store::Backend::Postgres {
                    // Identities continue after the loaded rows.
                    for table in TABLES {
                        let columns = Self::table_columns(&mut tx, table).await?;
                        if columns.iter().any(|(c, _)| c == "id") {
                            let has_identity: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, 'id')")
                                .bind(*table)
                                .fetch_one(&mut *tx)
                                .await?;
                            if has_identity.is_some() {
                                sqlx::query(sqlx::AssertSqlSafe(format!(
                                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                                )))
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                    }
                } else {
                    use $crate::store::{SQLITE_CACHE_SIZE, SQLITE_HEAP_LIMIT};
                    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {SQLITE_CACHE_SIZE}"))).execute(&mut *tx).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT}"))).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(total)
            }
        }
    };
}

pub(crate) use portable_impl;
