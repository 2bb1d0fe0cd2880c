//! `gatehouse email preview KIND`: one email rendered with sample data through the
//! templates and settings the workers use (GATEHOUSE_TEMPLATE_DIR, GATEHOUSE_PUBLIC_URL,
//! GATEHOUSE_SUPPORT_CONTACT), so an operator sees what users will get.

use anyhow::Context as _;
use gatehouse::config::Config;
use gatehouse_workers::templates::{Brand, Templates};
use gatehouse_workers::{Email, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Preview {
    /// The email: account_setup_invitation, account_setup_reset, account_locked,
    /// approval_needed, approval_reminder, request_outcome, password_changed or
    /// encryption_key_reset.
    kind: String,
    /// For request_outcome: applied, rejected, failed or expired.
    #[arg(long, default_value = "rejected")]
    outcome: String,
    /// What to show: the subject and plain text, or the HTML.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The organization named in the email.
    #[arg(long, default_value = "Sunrise Family Practice")]
    org: String,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Html,
}

pub fn preview(args: Preview, config: Config) -> anyhow::Result<ExitCode> {
    let kind = args.kind.to_lowercase();
    let outcome = match args.outcome.to_lowercase().as_str() {
        "applied" => Outcome::Applied,
        "rejected" => Outcome::Rejected,
        "failed" => Outcome::Failed,
        "expired" => Outcome::Expired,
        other => anyhow::bail!("--outcome {other:?}: must be applied, rejected, failed or expired"),
    };
    let samples = Email::samples();
    let Some(email) = samples.iter().find(|email| {
        email.template() == kind
            && !matches!(email, Email::RequestOutcome { outcome: o, .. } if *o != outcome)
    }) else {
        let mut kinds: Vec<_> = samples.iter().map(Email::template).collect();
        kinds.dedup();
        anyhow::bail!(
            "no email is called {kind:?}; the emails are {}",
            kinds.join(", ")
        );
    };
    let templates = Templates::load(config.template_dir.as_deref(), config.public_url.as_str())
        .context("GATEHOUSE_TEMPLATE_DIR")?;
    let brand = Brand {
        organization: args.org,
        support: config.support_contact.unwrap_or_default(),
    };
    let rendered = templates.render(email, &brand)?;
    let shown = match args.format {
        Format::Text => format!("Subject: {}\n\n{}", rendered.subject, rendered.text),
        Format::Html => rendered.html,
    };
    match args.out {
        Some(path) => {
            std::fs::write(&path, shown)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("gatehouse: {kind} written to {}", path.display());
        }
        None => print!("{shown}"),
    }
    Ok(ExitCode::SUCCESS)
}
