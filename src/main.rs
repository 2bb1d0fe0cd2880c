//! The `gatehouse` command: serve the API, migrate, print the schema, create organizations,
//! verify the audit log.

mod cli;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use gatehouse::app::directory::organization::{CreateOrganization, parse_licenses};
use gatehouse::config::{Config, redact_url};
use gatehouse::domain::UserKind;
use gatehouse::{Gatehouse, Mode};
use std::io::Read as _;
use std::process::ExitCode;

/// Many threads allocate small buffers at once (requests, rows, JSON): an allocator
/// made for that. It also serves C's `malloc` (the `override` feature), so SQLite's page
/// caches and statements, on a thread per connection, are not spread over as many of the
/// C library's arenas: at a million users that kept 20 MB more resident than SQLite held.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "User accounts, licenses and approvals for healthcare practices"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API and run the workers (the default).
    Serve {
        /// Serve the API only (workers run elsewhere, with `gatehouse worker`).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the workers only: the outbox relay, jobs and email.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write every table as JSON lines from one consistent snapshot (`-` for standard
    /// output); secrets stay hashed.
    Export { file: std::path::PathBuf },
    /// Load an export into an empty database of either kind (`-` for standard input).
    Import { file: std::path::PathBuf },
    /// Manage users in bulk.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Email tools.
    #[command(subcommand)]
    Email(EmailCommand),
}

#[derive(Subcommand)]
enum EmailCommand {
    /// Render one email with sample data through the configured templates.
    Preview(cli::email::Preview),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Invite the users of a CSV file into an organization: every row checked by the
    /// rules of inviteUser, all written or (with a bad row) none.
    Import(cli::users::Import),
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization with its license pools and its OWNER; prints them as JSON.
    Create(OrgCreate),
}

#[derive(Args)]
struct OrgCreate {
    #[arg(long)]
    name: String,
    #[arg(long)]
    owner_username: String,
    #[arg(long)]
    owner_email: String,
    #[arg(long)]
    owner_first_name: String,
    #[arg(long)]
    owner_last_name: String,
    /// PROVIDER or STAFF.
    #[arg(long, default_value = "STAFF", value_parser = parse_kind)]
    owner_kind: UserKind,
    /// License pools as PRODUCT:KIND:COUNT, comma-separated.
    #[arg(long, default_value = "EHR:PROVIDER:5,EHR:STAFF:5")]
    licenses: String,
    /// Read the owner's password from standard input (the owner is then ACTIVE);
    /// without it the owner is INVITED and emailed an account-setup link.
    #[arg(long)]
    owner_password_stdin: bool,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every organization's audit chain; exit 1 naming the first bad event.
    Verify,
}

fn parse_kind(value: &str) -> Result<UserKind, String> {
    value
        .to_uppercase()
        .parse()
        .map_err(|_| "must be PROVIDER or STAFF".to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gatehouse: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { no_workers: false });
    runtime.block_on(async move {
        let telemetry = match gatehouse::telemetry::init(&config) {
            Ok(telemetry) => telemetry,
            Err(err) => {
                eprintln!("gatehouse: {err:#}");
                return ExitCode::from(2);
            }
        };
        let code = match run(command, config).await {
            Ok(code) => code,
            Err(err) => {
                // One line: the error and its causes, no backtrace.
                eprintln!("gatehouse: {}", format!("{err:#}").replace('\n', " "));
                ExitCode::FAILURE
            }
        };
        telemetry.shutdown().await;
        code
    })
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Schema => {
            print!("{}", gatehouse::graphql::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            gatehouse::open_store(&config).await?;
            eprintln!(
                "gatehouse: {} is migrated",
                redact_url(&config.database_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { no_workers } => {
            let listen = config.listen;
            let gatehouse = Gatehouse::build(config).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("GATEHOUSE_LISTEN: cannot listen on {listen}"))?;
            tracing::info!(address = %listen, workers = !no_workers, "serving GraphQL at /graphql");
            let mode = Mode::Serve {
                workers: !no_workers,
            };
            gatehouse
                .run(mode, Some(listener), gatehouse::shutdown_signal())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => {
            let gatehouse = Gatehouse::build(config).await?;
            gatehouse
                .run(Mode::Worker, None, gatehouse::shutdown_signal())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(OrgCommand::Create(args)) => org_create(args, config).await,
        Command::Users(UsersCommand::Import(args)) => cli::users::import(args, config).await,
        Command::Email(EmailCommand::Preview(args)) => cli::email::preview(args, config),
        Command::Export { file } => cli::data::export(file, config).await,
        Command::Import { file } => cli::data::import(file, config).await,
        Command::Audit(AuditCommand::Verify) => {
            let app = gatehouse::build_app(config).await?;
            let report = app.audit().verify().await?;
            match report.broken {
                None => {
                    let plural = |n: u64, one: &str, many: &str| {
                        format!("{n} {}", if n == 1 { one } else { many })
                    };
                    println!(
                        "audit log intact: {} in {}",
                        plural(report.events, "event", "events"),
                        plural(report.organizations as u64, "organization", "organizations")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("audit log BROKEN: {broken}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

async fn org_create(args: OrgCreate, config: Config) -> anyhow::Result<ExitCode> {
    let licenses = match parse_licenses(&args.licenses) {
        Ok(licenses) => licenses,
        Err(message) => {
            eprintln!("gatehouse: --licenses: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let owner_password = if args.owner_password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        None
    };
    let app = gatehouse::build_app(config).await?;
    let input = CreateOrganization {
        name: args.name,
        owner_username: args.owner_username,
        owner_email: args.owner_email,
        owner_first_name: args.owner_first_name,
        owner_last_name: args.owner_last_name,
        owner_kind: args.owner_kind,
        licenses,
        owner_password,
    };
    match app.directory().create_organization(input).await {
        Ok((org, owner)) => {
            let json = serde_json::json!({
                "organization": { "id": org.id.to_global(), "name": org.name, "createdAt": org.created_at },
                "owner": {
                    "id": owner.id.to_global(),
                    "username": owner.username,
                    "email": owner.email,
                    "firstName": owner.first_name,
                    "lastName": owner.last_name,
                    "kind": owner.kind.as_str(),
                    "role": owner.role.as_str(),
                    "status": owner.status.as_str(),
                },
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(gatehouse::app::AppError::Domain(refused)) => {
            let field = refused
                .field
                .map(|f| format!("--{f}: "))
                .unwrap_or_default();
            eprintln!(
                "gatehouse: {field}{} ({})",
                refused.message,
                refused.code.as_str()
            );
            Ok(ExitCode::from(2))
        }
        Err(other) => Err(anyhow::anyhow!(other)),
    }
}
