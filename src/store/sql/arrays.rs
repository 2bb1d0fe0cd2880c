//! Values bound as PostgreSQL arrays (`unnest($1::int8[], …)`), written as array
//! literals in text: the store's SQL is compiled for both databases, and SQLite has no
//! array type.

/// Integers as a PostgreSQL array literal (`{1,2}`).
pub(crate) fn pg_int_array(values: impl Iterator<Item = i64>) -> String {
    let list: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("{{{}}}", list.join(","))
}

/// Pairs as two PostgreSQL array literals.
pub(crate) fn pg_arrays(pairs: &[(i64, i64)]) -> (String, String) {
    (
        pg_int_array(pairs.iter().map(|p| p.0)),
        pg_int_array(pairs.iter().map(|p| p.1)),
    )
}

/// Text values as a PostgreSQL array literal, each quoted (bound as text, as above).
pub(crate) fn pg_text_array<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = values
        .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_what_would_end_an_element() {
        assert_eq!(
            pg_arrays(&[(1, -2), (3, 4)]),
            ("{1,3}".into(), "{-2,4}".into())
        );
        assert_eq!(pg_int_array(std::iter::empty()), "{}");
        assert_eq!(
            pg_text_array(["EHR", r#"a"b\c,d}"#].into_iter()),
            r#"{"EHR","a\"b\\c,d}"}"#
        );
    }
}
