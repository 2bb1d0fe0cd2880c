//! The checks of an import that look across rows: duplicates and licenses.

use super::{GoodRow, ImportReport, RowError};
use crate::app::AppResult;
use crate::domain::{OrgId, Product, UserKind};
use std::collections::{BTreeMap, HashMap};

impl crate::app::directory::Directory {
    /// A username or email twice in the file, or already someone's.
    pub(super) async fn check_duplicates(
        &self,
        good: &mut Vec<GoodRow>,
        report: &mut ImportReport,
    ) -> AppResult<()> {
        let usernames: Vec<String> = good
            .iter()
            .map(|g| g.invitee.username.as_str().to_owned())
            .collect();
        let emails: Vec<String> = good
            .iter()
            .map(|g| g.invitee.email.as_str().to_lowercase())
            .collect();
        let (taken_names, taken_emails) = self.store.taken_identities(&usernames, &emails).await?;
        let mut first_name_row = HashMap::new();
        let mut first_email_row = HashMap::new();
        good.retain(|g| {
            let problem = if taken_names.contains(&g.invitee.username.as_str().to_owned()) {
                Some(("username", "That username is already taken.".to_owned()))
            } else if taken_emails.contains(&g.invitee.email.as_str().to_lowercase()) {
                Some(("email", "That email is already taken.".to_owned()))
            } else if let Some(first) =
                first_name_row.insert(g.invitee.username.as_str().to_owned(), g.row)
            {
                first_name_row.insert(g.invitee.username.as_str().to_owned(), first);
                Some(("username", format!("the same username as row {first}")))
            } else if let Some(first) =
                first_email_row.insert(g.invitee.email.as_str().to_lowercase(), g.row)
            {
                first_email_row.insert(g.invitee.email.as_str().to_lowercase(), first);
                Some(("email", format!("the same email as row {first}")))
            } else {
                None
            };
            let keep = problem.is_none();
            if let Some((field, message)) = problem {
                report.errors.push(RowError {
                    row: g.row,
                    field: field.into(),
                    message,
                });
            }
            keep
        });
        Ok(())
    }

    /// The licenses of the whole file, taken row by row in file order from what the pools
    /// have left: a row past a pool's end is a bad row.
    pub(super) async fn check_licenses(
        &self,
        org_id: OrgId,
        good: &mut Vec<GoodRow>,
        report: &mut ImportReport,
    ) -> AppResult<()> {
        let pools = self.store.license_pools(org_id).await?;
        let mut left: BTreeMap<(Product, UserKind), i64> = pools
            .iter()
            .map(|p| ((p.product, p.kind), i64::from(p.available())))
            .collect();
        let mut wanted: BTreeMap<(Product, UserKind), i64> = BTreeMap::new();
        for g in good.iter() {
            for product in &g.invitee.products {
                *wanted.entry((*product, g.kind)).or_default() += 1;
            }
        }
        good.retain(|g| {
            let short = g.invitee.products.iter().find(|p| left.get(&(**p, g.kind)).copied().unwrap_or(0) <= 0);
            if let Some(product) = short {
                let available = pools.iter().find(|p| p.product == *product && p.kind == g.kind).map_or(0, |p| p.available());
                report.errors.push(RowError {
                    row: g.row,
                    field: "products".into(),
                    message: format!(
                        "No {product} license is left for {} users: the file needs {}, {available} are available; request more licenses first.",
                        g.kind, wanted[&(*product, g.kind)]
                    ),
                });
                return false;
            }
            for product in &g.invitee.products {
                *left.entry((*product, g.kind)).or_default() -= 1;
            }
            true
        });
        Ok(())
    }
}
