//! `gatehouse users import`: bulk onboarding from a CSV file.

use anyhow::Context as _;
use clap::Args;
use gatehouse::app::directory::import::{ImportOptions, ImportProgress};
use gatehouse::config::Config;
use gatehouse::domain::OrgId;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Args)]
pub struct Import {
    /// The organization: its ID or its exact name.
    #[arg(long)]
    org: String,
    /// UTF-8 CSV with a header row: username, first_name, last_name, email (required),
    /// mobile, kind, role, products, permissions, practices (lists separated by `;`).
    file: PathBuf,
    /// Check every row, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import the good rows and report the bad ones (without it, any bad row means
    /// nothing is written).
    #[arg(long)]
    skip_invalid: bool,
}

pub async fn import(args: Import, config: Config) -> anyhow::Result<ExitCode> {
    let file = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let app = gatehouse::build_app(config).await?;
    let directory = app.directory();
    let mut found = directory
        .find_organization(OrgId::from_global(args.org.trim()), &args.org)
        .await?;
    let org = match found.len() {
        1 => found.remove(0),
        0 => {
            eprintln!(
                "gatehouse: --org: no organization has the ID or the name {:?}",
                args.org
            );
            return Ok(ExitCode::from(2));
        }
        n => {
            let ids: Vec<String> = found.iter().map(|org| org.id.to_global()).collect();
            eprintln!(
                "gatehouse: --org: {n} organizations are named {:?} ({}); give the ID of one",
                args.org,
                ids.join(", ")
            );
            return Ok(ExitCode::from(2));
        }
    };
    let progress = Progress::new();
    let options = ImportOptions {
        dry_run: args.dry_run,
        skip_invalid: args.skip_invalid,
    };
    let report = directory
        .import_users(org.id, &file, options, &|step| progress.show(step))
        .await?;
    progress.finish();
    for error in &report.errors {
        println!("{error}");
    }
    let created = if report.practices_created > 0 {
        format!(", practices created {}", report.practices_created)
    } else {
        String::new()
    };
    if report.written {
        println!(
            "imported {}, skipped {}, emails queued {}{created}",
            report.imported, report.skipped, report.emails_queued
        );
    } else if args.dry_run && (report.errors.is_empty() || args.skip_invalid) {
        println!(
            "dry run, nothing written: would import {}, skip {}, queue {} emails{}",
            report.imported,
            report.skipped,
            report.imported,
            created.replace("practices created", "create practices")
        );
    } else {
        println!(
            "imported 0, skipped {}, emails queued 0 (nothing written)",
            report.skipped
        );
    }
    let failed = !report.errors.is_empty() && (!args.skip_invalid || report.imported == 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar on a terminal; plain lines every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<std::time::Instant>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            last_line: Mutex::new(std::time::Instant::now()),
        }
    }

    fn show(&self, step: ImportProgress) {
        let (message, done, of) = match step {
            ImportProgress::Checked(n) => ("checking rows", n, None),
            ImportProgress::Written { done, of } => ("writing users", done, Some(of)),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_message(message);
                if let Some(of) = of {
                    bar.set_length(of as u64);
                }
                bar.set_position(done as u64);
            }
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= std::time::Duration::from_secs(2) || of == Some(done) {
                    *last = std::time::Instant::now();
                    match of {
                        Some(of) => eprintln!("gatehouse: {message}: {done} of {of}"),
                        None => eprintln!("gatehouse: {message}: {done}"),
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
