//! One row of an import file: its fields by column, checked by the rules of `inviteUser`.

use crate::app::directory::Invitation;
use crate::app::directory::invitee::Invitee;
use crate::domain::values::parse_title;
use crate::domain::{Permission, Product, Role, UserKind};
use std::collections::HashMap;

/// A record's fields by column name (a column the file lacks is empty).
pub(super) struct Fields<'a> {
    pub record: &'a csv::StringRecord,
    pub at: &'a HashMap<String, usize>,
}

impl<'a> Fields<'a> {
    fn get(&self, column: &str) -> &'a str {
        self.at.get(column).map_or("", |i| &self.record[*i])
    }
}

/// One row's fields by the rules of `inviteUser`; the error names the CSV column.
#[allow(clippy::type_complexity)]
pub(super) fn parse_row(
    fields: &Fields<'_>,
) -> Result<(Invitee, UserKind, Vec<Permission>, Vec<String>), (&'static str, String)> {
    let get = |column: &str| fields.get(column);
    let kind = match get("kind").to_uppercase().as_str() {
        "" => UserKind::Staff,
        text => text
            .parse()
            .map_err(|_| ("kind", "must be PROVIDER or STAFF".to_owned()))?,
    };
    let role = match get("role").to_uppercase().as_str() {
        "" => None,
        "OWNER" => Some(Role::Owner),
        text => Some(
            text.parse::<Role>()
                .map_err(|_| ("role", "must be MEMBER, ADMIN or CHAMPION".to_owned()))?,
        ),
    };
    let products = list(get("products"))
        .map(|p| p.to_uppercase().parse::<Product>().map_err(|_| ("products", format!("unknown product {p:?}; the products are EHR, BILLING, PATIENT_PORTAL, TELEHEALTH"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut permissions = list(get("permissions"))
        .map(|p| p.to_uppercase().parse::<Permission>().map_err(|_| ("permissions", format!("unknown permission {p:?}; the permissions are SCHEDULING, CLINICAL_NOTES, PRESCRIBING, BILLING, REPORTING"))))
        .collect::<Result<Vec<_>, _>>()?;
    permissions.sort();
    permissions.dedup();
    let mut practices = Vec::new();
    for name in list(get("practices")) {
        let name = parse_title("practices", name).map_err(|e| ("practices", e.message))?;
        if !practices
            .iter()
            .any(|p: &String| p.to_lowercase() == name.to_lowercase())
        {
            practices.push(name);
        }
    }
    let invitation = Invitation {
        username: get("username").to_owned(),
        first_name: get("first_name").to_owned(),
        last_name: get("last_name").to_owned(),
        email: get("email").to_owned(),
        mobile: Some(get("mobile").to_owned()),
        kind,
        role,
        permissions: permissions.clone(),
        products: (!products.is_empty()).then_some(products),
        practice_ids: Vec::new(),
    };
    let invitee = Invitee::parse(&invitation).map_err(|e| (column(e.field), e.message))?;
    Ok((invitee, kind, permissions, practices))
}

/// A `;`-separated list, blanks left out.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|t| !t.is_empty())
}

/// The CSV column of a GraphQL input field.
fn column(field: Option<&'static str>) -> &'static str {
    match field {
        Some("firstName") => "first_name",
        Some("lastName") => "last_name",
        Some(other) => other,
        None => "row",
    }
}

pub(super) fn csv_problem(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
        csv::ErrorKind::Io(e) => format!("cannot read the file: {e}"),
        _ => format!("not readable as CSV: {error}"),
    }
}
