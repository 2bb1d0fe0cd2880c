//! importUsers: onboarding in bulk from CSV text, by the rules and with the report of
//! `gatehouse users import`.

use super::types::{actor, app};
use super::{UserError, user_errors};
use crate::app::directory::import::{ImportOptions, ImportReport, RowError};
use async_graphql::{Context, InputObject, Object, SimpleObject};

#[derive(InputObject)]
pub struct ImportUsersInput {
    /// The file: a header row naming the columns (username, first_name, last_name, email;
    /// optional mobile, kind, role, products, permissions, practices), then one user per
    /// row. Bounded by the request body limit (256 KiB: a few thousand rows); larger
    /// files go through `gatehouse users import`.
    csv: String,
    /// Check every row and report, write nothing.
    #[graphql(default = false)]
    dry_run: bool,
    /// Import the good rows even when some are bad (else nothing is written).
    #[graphql(default = false)]
    skip_invalid: bool,
}

/// One bad row of an import.
#[derive(SimpleObject)]
pub struct ImportRowError {
    /// The line of the file, the header being 1.
    row: u64,
    /// The column at fault (`header` for the header row, `row` for the row as a whole).
    field: String,
    message: String,
}

#[derive(SimpleObject)]
pub struct ImportUsersPayload {
    /// Users imported (in a dry run: that would be).
    imported: u64,
    /// Rows left out.
    skipped: u64,
    emails_queued: u64,
    practices_created: u64,
    /// Whether anything was written.
    written: bool,
    /// Every bad row, in file order.
    row_errors: Vec<ImportRowError>,
    user_errors: Vec<UserError>,
}

impl From<RowError> for ImportRowError {
    fn from(e: RowError) -> Self {
        Self {
            row: e.row,
            field: e.field,
            message: e.message,
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl ImportUsersPayload {
    fn new(report: Option<ImportReport>, user_errors: Vec<UserError>) -> Self {
        let report = report.unwrap_or_default();
        Self {
            imported: count(report.imported),
            skipped: count(report.skipped),
            emails_queued: count(report.emails_queued),
            practices_created: count(report.practices_created),
            written: report.written,
            row_errors: report.errors.into_iter().map(Into::into).collect(),
            user_errors,
        }
    }
}

#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Invites the users of a CSV file into the caller's organization (OWNERs only: the
    /// file's roles and permissions are granted as written). Every row is checked by the
    /// rules of inviteUser, duplicates inside the file and against the directory, and the
    /// licenses of the whole file are counted before anything is written; a bad row is
    /// reported with its line and column, and nothing is written unless `skipInvalid`.
    /// Each user is audited and sent the account-setup email.
    async fn import_users(
        &self,
        ctx: &Context<'_>,
        input: ImportUsersInput,
    ) -> async_graphql::Result<ImportUsersPayload> {
        let options = ImportOptions {
            dry_run: input.dry_run,
            skip_invalid: input.skip_invalid,
        };
        let (report, errors) = user_errors(
            app(ctx)?
                .directory()
                .import_users_as(actor(ctx)?, input.csv.as_bytes(), options)
                .await,
        )?;
        Ok(ImportUsersPayload::new(report, errors))
    }
}
