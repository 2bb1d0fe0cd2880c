//! Bulk onboarding: a CSV file of users, every row checked by the rules of `inviteUser`,
//! duplicates looked for inside the file and against the database, the licenses of the
//! whole file counted before anything is written, then everything written at once.

mod checks;
mod row;

use super::invitee::Invitee;
use crate::app::policy::Action;
use crate::app::{Actor, AppResult};
use crate::domain::{OrgId, Organization, Permission, UserKind};
use crate::store::{AuditEntry, UserCreation, UserImport};
use row::{Fields, csv_problem, parse_row};
use std::collections::HashMap;

/// The columns a file may have; the first four are required.
pub const COLUMNS: [&str; 10] = [
    "username",
    "first_name",
    "last_name",
    "email",
    "mobile",
    "kind",
    "role",
    "products",
    "permissions",
    "practices",
];
const REQUIRED: usize = 4;
/// Rows in one file.
pub const MAX_ROWS: usize = 200_000;

/// A problem with one row: `row` counts the file's lines, the header being row 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}: {}: {}", self.row, self.field, self.message)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Import the good rows and report the bad ones, instead of importing nothing.
    pub skip_invalid: bool,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Every bad row, in file order.
    pub errors: Vec<RowError>,
    /// Good rows: imported, or to be imported in a dry run.
    pub imported: usize,
    pub skipped: usize,
    pub emails_queued: usize,
    pub practices_created: usize,
    /// Whether anything was written.
    pub written: bool,
}

/// Where a long import is: rows checked, then users written.
#[derive(Debug, Clone, Copy)]
pub enum ImportProgress {
    Checked(usize),
    Written { done: usize, of: usize },
}

/// One row that passed every check.
struct GoodRow {
    row: u64,
    invitee: Invitee,
    kind: UserKind,
    permissions: Vec<Permission>,
    practices: Vec<String>,
}

impl super::Directory {
    /// The organizations an operator's words name: the one with that ID (`id`, parsed by
    /// the caller from what was typed), else every one of that exact name (names are
    /// not unique: more than one is for the caller to refuse as ambiguous).
    pub async fn find_organization(
        &self,
        id: Option<OrgId>,
        name: &str,
    ) -> AppResult<Vec<Organization>> {
        if let Some(id) = id {
            match self.store.organization(id).await {
                Ok(org) => return Ok(vec![org]),
                Err(crate::store::StoreError::NotFound) => {}
                Err(other) => return Err(other.into()),
            }
        }
        let mut named = Vec::new();
        for id in self.store.organization_ids().await? {
            let org = self.store.organization(id).await?;
            if org.name == name {
                named.push(org);
            }
        }
        Ok(named)
    }

    /// Imports the users of a CSV file into an organization, as an operator: roles and
    /// permissions are granted as written (an operator answers for the file as an owner
    /// would), each user is INVITED, audited and sent the setup email.
    pub async fn import_users(
        &self,
        org_id: OrgId,
        file: &[u8],
        options: ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<ImportReport> {
        self.import(org_id, None, file, options, progress).await
    }

    /// The same import into the caller's organization, by an OWNER (who may grant what
    /// the file asks for); its audit events name the caller.
    pub async fn import_users_as(
        &self,
        actor: &Actor,
        file: &[u8],
        options: ImportOptions,
    ) -> AppResult<ImportReport> {
        actor.require(Action::ImportUsers)?;
        self.import(actor.org_id(), Some(actor), file, options, &|_| {})
            .await
    }

    async fn import(
        &self,
        org_id: OrgId,
        by: Option<&Actor>,
        file: &[u8],
        options: ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<ImportReport> {
        let mut report = ImportReport::default();
        let good = self.check_rows(org_id, file, &mut report, progress).await?;
        let bad_rows = report
            .errors
            .iter()
            .map(|e| e.row)
            .collect::<std::collections::BTreeSet<u64>>()
            .len();
        if !report.errors.is_empty() && !options.skip_invalid {
            // Nothing is written: every row is left out.
            report.skipped = good.len() + bad_rows;
            return Ok(report);
        }
        report.imported = good.len();
        report.skipped = bad_rows;
        let known: Vec<String> = self
            .store
            .practices(org_id)
            .await?
            .into_iter()
            .map(|p| p.name.to_lowercase())
            .collect();
        let mut new_practices: Vec<String> = Vec::new();
        for name in good.iter().flat_map(|g| &g.practices) {
            let lower = name.to_lowercase();
            if !known.contains(&lower) && !new_practices.iter().any(|n| n.to_lowercase() == lower) {
                new_practices.push(name.clone());
            }
        }
        report.practices_created = new_practices.len();
        if options.dry_run || good.is_empty() {
            return Ok(report);
        }
        let at = self.now();
        let event = |action| match by {
            Some(actor) => actor.audit(action),
            None => AuditEntry::new(org_id, at, action),
        };
        let audit = |action| event(action).details(serde_json::json!({ "via": "import" }));
        let users = good
            .into_iter()
            .map(|g| {
                let creation = UserCreation {
                    user: crate::store::NewUser {
                        org_id,
                        username: g.invitee.username.as_str().to_owned(),
                        email: g.invitee.email.as_str().to_owned(),
                        first_name: g.invitee.first.as_str().to_owned(),
                        last_name: g.invitee.last.as_str().to_owned(),
                        mobile: g.invitee.mobile.map(|m| m.as_str().to_owned()),
                        kind: g.kind,
                        role: g.invitee.role,
                        products: g.invitee.products.clone(),
                        permissions: g.permissions.clone(),
                        practice_ids: Vec::new(),
                        password_hash: None,
                        encryption_key: crate::app::identity::crypto::random_bytes::<32>()
                            .to_vec(),
                        created_at: at,
                    },
                    audit: event("user.invited").details(
                        serde_json::json!({
                            "via": "import",
                            "row": g.row,
                            "username": g.invitee.username.as_str(),
                            "role": g.invitee.role.as_str(),
                            "kind": g.kind.as_str(),
                            "products": g.invitee.products.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                            "permissions": g.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                            "practices": g.practices,
                        }),
                    ),
                    setup_email: Some(crate::app::jobs::invitation_email),
                };
                (creation, g.practices)
            })
            .collect::<Vec<_>>();
        let of = users.len();
        let import = UserImport {
            org_id,
            new_practices: new_practices
                .into_iter()
                .map(|name| (name, audit("practice.created")))
                .collect(),
            users,
        };
        self.store
            .import_users(import, &|done| {
                progress(ImportProgress::Written { done, of })
            })
            .await?;
        report.written = true;
        report.emails_queued = of;
        Ok(report)
    }

    /// Every row checked alone, then against the others, the database and the licenses;
    /// problems go to `report.errors` and the rows without any are returned.
    async fn check_rows(
        &self,
        org_id: OrgId,
        file: &[u8],
        report: &mut ImportReport,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<Vec<GoodRow>> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(file);
        let header_error = |field: &str, message: String| RowError {
            row: 1,
            field: field.to_owned(),
            message,
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(header) => header
                .iter()
                .map(|c| c.trim_start_matches('\u{feff}').to_lowercase())
                .collect(),
            Err(e) => {
                report.errors.push(header_error("header", csv_problem(&e)));
                return Ok(Vec::new());
            }
        };
        let mut at = HashMap::new();
        for (i, column) in columns.iter().enumerate() {
            if !COLUMNS.contains(&column.as_str()) {
                report.errors.push(header_error(
                    "header",
                    format!(
                        "unknown column {column:?}; the columns are {}",
                        COLUMNS.join(", ")
                    ),
                ));
            } else if at.insert(column.clone(), i).is_some() {
                report.errors.push(header_error(
                    "header",
                    format!("the column {column:?} is named twice"),
                ));
            }
        }
        for column in &COLUMNS[..REQUIRED] {
            if !at.contains_key(*column) {
                report.errors.push(header_error(
                    "header",
                    format!("the column {column:?} is missing"),
                ));
            }
        }
        if !report.errors.is_empty() {
            return Ok(Vec::new());
        }
        let mut good = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let row = e.position().map_or(reader.position().line(), |p| p.line());
                    report.errors.push(RowError {
                        row,
                        field: "row".into(),
                        message: csv_problem(&e),
                    });
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        break;
                    }
                    continue;
                }
            }
            let row = record
                .position()
                .map_or(reader.position().line(), |p| p.line());
            if good.len() + report.errors.len() >= MAX_ROWS {
                report.errors.push(RowError {
                    row,
                    field: "row".into(),
                    message: format!("a file holds at most {MAX_ROWS} rows"),
                });
                break;
            }
            if record.len() != columns.len() {
                report.errors.push(RowError {
                    row,
                    field: "row".into(),
                    message: format!(
                        "{} fields where the header names {}",
                        record.len(),
                        columns.len()
                    ),
                });
                continue;
            }
            let fields = Fields {
                record: &record,
                at: &at,
            };
            match parse_row(&fields) {
                Ok((invitee, kind, permissions, practices)) => good.push(GoodRow {
                    row,
                    invitee,
                    kind,
                    permissions,
                    practices,
                }),
                Err((field, message)) => report.errors.push(RowError {
                    row,
                    field: field.into(),
                    message,
                }),
            }
            if (good.len() + report.errors.len()).is_multiple_of(1000) {
                progress(ImportProgress::Checked(good.len() + report.errors.len()));
            }
        }
        progress(ImportProgress::Checked(good.len() + report.errors.len()));
        self.check_duplicates(&mut good, report).await?;
        self.check_licenses(org_id, &mut good, report).await?;
        report.errors.sort_by_key(|e| e.row);
        Ok(good)
    }
}
