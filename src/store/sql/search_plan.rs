//! Planning a users search: one statement reads the statistics `store::search::plan`
//! needs, on the connections kept for searches.

macro_rules! search_plan_impl {
    ($store:ty) => {
        impl $store {
            /// Reads what the plan needs in one statement (how many users carry each
            /// posting key, how many, up to a bound, start each prefix-matched field with
            /// the query or have the status, and the directory's version when a total may
            /// be remembered) and plans; `None` when nothing can match.
            pub(super) async fn plan_search(&self, q: &$crate::store::UserSearch) -> StoreResult<Option<(SearchDriver, i64)>> {
                use $crate::store::search::{Answers, FIELD_READ_LIMIT, Plan, Questions, STATUS_COUNT_LIMIT};
                let questions = Questions::of(q);
                if !questions.any() {
                    return Ok(Some((SearchDriver::Directory, 0)));
                }
                let mut b = sqlx::QueryBuilder::<Db>::new("SELECT 'key', key, users FROM user_search_counts WHERE users > 0 AND key IN (");
                let mut list = b.separated(", ");
                list.push_bind(0i64);
                for key in questions.keys() {
                    list.push_bind(key);
                }
                b.push(")");
                for (field, start) in &questions.fields {
                    b.push(format!(" UNION ALL SELECT '{}', 0, COUNT(*) FROM (SELECT 1 FROM users u WHERE u.org_id = ", field.label()))
                        .push_bind(q.org_id.0);
                    Self::push_field_range(&mut b, *field, start);
                    b.push(format!(" LIMIT {}) f", FIELD_READ_LIMIT + 1));
                }
                if let Some(status) = questions.status {
                    b.push(" UNION ALL SELECT '#status', 0, COUNT(*) FROM (SELECT 1 FROM users u WHERE u.org_id = ")
                        .push_bind(q.org_id.0)
                        .push(" AND u.status = ")
                        .push_bind(status.as_str())
                        .push(format!(" LIMIT {STATUS_COUNT_LIMIT}) s"));
                }
                if questions.remember {
                    b.push(" UNION ALL SELECT '#version', 0, version FROM directory_versions WHERE org_id = ").push_bind(q.org_id.0);
                }
                let rows: Vec<(String, i64, i64)> = b.build_query_as().fetch_all(&self.search).await?;
                let mut answers = Answers::default();
                let mut version = 0;
                for (label, key, n) in rows {
                    match label.as_str() {
                        "key" => {
                            answers.postings.insert(key, n);
                        }
                        "#status" => answers.status = Some(n),
                        "#version" => version = n,
                        label => {
                            if let Some((field, _)) = questions.fields.iter().find(|(f, _)| f.label() == label) {
                                answers.fields.push((*field, n));
                            }
                        }
                    }
                }
                Ok(match $crate::store::search::plan(&questions, &answers) {
                    Plan::Nothing => None,
                    Plan::Read(driver) => Some((driver, version)),
                })
            }

        }
    };
}

pub(crate) use search_plan_impl;
