//! The values of an export: column types, and a file value as a target column takes it.

/// A column's type in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    /// PostgreSQL's 4-byte `integer` (written as `int`).
    Int4,
    Real,
    Text,
    Bool,
    Time,
    Bytes,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Int | Kind::Int4 => "int",
            Kind::Real => "real",
            Kind::Text => "text",
            Kind::Bool => "bool",
            Kind::Time => "time",
            Kind::Bytes => "bytes",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        [
            Kind::Int,
            Kind::Real,
            Kind::Text,
            Kind::Bool,
            Kind::Time,
            Kind::Bytes,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// From a PostgreSQL `information_schema` data type or a SQLite declared type.
    pub(crate) fn of_declared(declared: &str, postgres: bool) -> Kind {
        let declared = declared.to_ascii_lowercase();
        match declared.as_str() {
            "integer" | "smallint" if postgres => Kind::Int4,
            "bigint" | "integer" | "smallint" | "int" | "int8" | "int4" => Kind::Int,
            "boolean" | "bool" => Kind::Bool,
            "bytea" | "blob" => Kind::Bytes,
            "double precision" | "real" => Kind::Real,
            d if d.starts_with("timestamp") => Kind::Time,
            _ => Kind::Text,
        }
    }
}

pub(crate) fn bad_file(message: impl Into<String>) -> crate::store::StoreError {
    crate::store::StoreError::Portable(message.into())
}

/// A value of the file as the target column takes it.
pub(crate) enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Time(Option<crate::domain::Timestamp>),
    Bytes(Option<Vec<u8>>),
}

/// Converts a file value (written as `from`) for a column of type `to`.
pub(crate) fn convert(value: &serde_json::Value, from: Kind, to: Kind) -> Result<Value, String> {
    use base64::Engine as _;
    use serde_json::Value as J;
    let null = value.is_null();
    let wrong = || format!("{value} is not a {} value", from.name());
    Ok(match to {
        Kind::Int | Kind::Int4 => Value::Int(if null {
            None
        } else {
            Some(match value {
                J::Bool(b) => i64::from(*b),
                other => other.as_i64().ok_or_else(wrong)?,
            })
        }),
        Kind::Real => Value::Real(if null {
            None
        } else {
            Some(value.as_f64().ok_or_else(wrong)?)
        }),
        Kind::Bool => Value::Bool(if null {
            None
        } else {
            Some(match value {
                J::Bool(b) => *b,
                other => other.as_i64().ok_or_else(wrong)? != 0,
            })
        }),
        Kind::Bytes => Value::Bytes(if null {
            None
        } else {
            let text = value.as_str().ok_or_else(wrong)?;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| wrong())?,
            )
        }),
        // A time into a text column (SQLite keeps times as text): written as the store
        // writes times, so that they compare as the store's queries expect.
        Kind::Time | Kind::Text if from == Kind::Time || to == Kind::Time => Value::Time(if null {
            None
        } else {
            let text = value.as_str().ok_or_else(wrong)?;
            Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| wrong())?
                    .with_timezone(&chrono::Utc),
            )
        }),
        Kind::Text | Kind::Time => Value::Text(if null {
            None
        } else {
            Some(match value {
                J::String(s) => s.clone(),
                other => other.to_string(),
            })
        }),
    })
}
