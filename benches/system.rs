//! The whole system at a large vendor's scale (SPEC "Scale"): organizations of skewed
//! sizes (by default 1,000,000 users in 10,000 organizations, the largest 100,000) with
//! names from many languages, every status, products, permissions and practices, seeded
//! through the bulk import path, and requests in every status; then `gatehouse serve` is
//! started as its own process, sending its emails to a mail server over SMTP, and driven
//! over HTTP on 127.0.0.1 from this one. One JSON line per figure on stdout.
//!
//! `cargo bench --bench system` runs SQLite with the SQLite queue; with
//! GATEHOUSE_BENCH_POSTGRES_URL (an empty database) and GATEHOUSE_BENCH_REDIS_URL set, the
//! production stack too. BENCH_USERS, BENCH_ORGS and BENCH_SECONDS change the size and
//! the length of each timed run, BENCH_SEEDED=1 measures a database seeded by an
//! earlier run of the same size again, BENCH_REQUEST_RATE the pace of filed requests (100 a
//! second on SQLite, 200 on PostgreSQL); BENCH_ONLY (`sqlite` or `postgres`) runs one
//! stack; BENCH_SEED_ONLY=1 stops after seeding; BENCH_DIR keeps the SQLite files in that
//! folder instead of a temporary one; BENCH_PHASES (a comma-separated list of `sizes`,
//! `search`, `logins`, `requests`; all by default) measures only those phases. Under
//! `cargo test` it runs a small smoke version.

use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Permission, Product, Role, UserKind, now};
use gatehouse::store::{
    AuditEntry, NewOrganization, NewUser, UserCreation, UserImport, UserSearch,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The server's allocator (it also serves SQLite's allocations): the seeding runs the
/// product's bulk path in this process, and the raw argon2id rate is measured as the
/// server would hash.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Shared with benches/subscribers.rs, which uses other parts of it.
#[allow(dead_code)]
#[path = "system/load.rs"]
mod load;
#[path = "system/people.rs"]
mod people;
#[path = "system/smtp.rs"]
mod smtp;

use load::{Target, figure};
use people::{Org, Person};

/// The password every seeded account holds, so that sign-ins can be measured.
const PASSWORD: &str = "the benchmark passphrase";

struct Settings {
    users: usize,
    orgs: usize,
    seconds: u64,
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, bench: usize, smoke: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if benching { bench } else { smoke })
    };
    let settings = Settings {
        users: number("BENCH_USERS", 1_000_000, 3_000),
        orgs: number("BENCH_ORGS", 10_000, 30),
        seconds: number("BENCH_SECONDS", 10, 1) as u64,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let temporary = tempfile::tempdir().unwrap();
        // BENCH_DIR keeps the SQLite files (and the outbox) there, to measure again later
        // with BENCH_SEEDED=1.
        let dir = std::env::var_os("BENCH_DIR").map_or(temporary.path().to_owned(), Into::into);
        let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
        let queue = format!("sqlite://{}", dir.join("queue.db").display());
        // BENCH_ONLY=postgres skips the embedded stack.
        if std::env::var("BENCH_ONLY").map_or(true, |only| only == "sqlite") {
            run("sqlite", &settings, sqlite, queue, &dir).await;
        }
        let postgres = std::env::var("GATEHOUSE_BENCH_POSTGRES_URL");
        let redis = std::env::var("GATEHOUSE_BENCH_REDIS_URL");
        if let (Ok(postgres), Ok(redis)) = (postgres, redis) {
            run("postgres", &settings, postgres, redis, &dir).await;
        }
    });
}

async fn run(
    stack: &'static str,
    settings: &Settings,
    database: String,
    queue: String,
    dir: &std::path::Path,
) {
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database.clone()),
        ("GATEHOUSE_QUEUE_URL", queue.clone()),
        ("GATEHOUSE_LOG", "warn".into()),
    ]);
    let config = gatehouse::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let argon2 = config.argon2;
    let gatehouse = gatehouse::Gatehouse::build(config)
        .await
        .expect("gatehouse");
    let mut orgs = people::orgs(settings.users, settings.orgs);
    let started = Instant::now();
    let hasher = gatehouse::app::crypto::PasswordHasher::new(argon2);
    let hash = hasher.hash(PASSWORD).await.unwrap();
    let sql = load::Sql::connect(&database).await;
    // BENCH_SEEDED=1: the database already holds this seed (same BENCH_USERS and
    // BENCH_ORGS) from an earlier run; measure it again.
    if std::env::var_os("BENCH_SEEDED").is_none() {
        seed(stack, &gatehouse, &orgs, settings.users, &hash).await;
        let users = started.elapsed().as_secs_f64();
        sql.set_statuses(&hash).await;
        let statuses = started.elapsed().as_secs_f64() - users;
        sql.seed_requests().await;
        let seeded = started.elapsed().as_secs_f64();
        figure(
            stack,
            "seed",
            json!({
                "users": settings.users,
                "organizations": orgs.len(),
                "seconds": seeded,
                "seconds_users": users,
                "seconds_statuses": statuses,
                "seconds_requests": seeded - users - statuses,
            }),
        );
        if std::env::var_os("BENCH_SEED_ONLY").is_some() {
            return;
        }
    }
    number_organizations(&mut orgs, &sql).await;
    // Whatever is measured: a seed leaves SQLite's write-ahead log gigabytes long, and
    // every read until it is checkpointed looks pages up in it.
    gatehouse.store.compact().await.expect("compact");
    if phase("sizes") {
        sizes(stack, &sql, settings.users).await;
    }
    let largest = &orgs[0];
    let median = &orgs[orgs.len() / 2];
    if phase("search") {
        in_process(stack, &gatehouse, largest).await;
    }
    drop(gatehouse);

    // Every email goes to a mail server over SMTP, as in production (BENCH_MAIL=files:
    // to files instead, to see what SMTP costs).
    let mail = smtp::Sink::start().await;
    let smtp = (std::env::var("BENCH_MAIL").as_deref() != Ok("files")).then_some(mail.url.as_str());
    let server = load::Server::start_with(&database, &queue, dir, &["serve"], smtp).await;
    let mut targets = Vec::new();
    for (label, org) in [("largest", largest), ("median", median)] {
        let owner = sql.owner_username(org.id).await;
        let token = server.login(&owner, PASSWORD).await;
        targets.push(Target::new(&server, label, org.clone(), token));
    }
    let seconds = Duration::from_secs(settings.seconds);
    let rss = |phase: &str| {
        let (all, anonymous) = server.take_peak_rss_mb();
        json!({ "phase": phase, "peak_mb": all, "peak_anonymous_mb": anonymous })
    };
    if phase("search") {
        let floor = load::measure(stack, "me", &targets[0], seconds, load::Ask::Me).await;
        for target in &targets {
            for with_total in [false, true] {
                let ask = load::Ask::Search { with_total };
                let rate = load::measure(stack, target.label, target, seconds, ask).await;
                figure(
                    stack,
                    "search_vs_floor",
                    json!({ "organization": target.label, "total_count": with_total, "ratio": rate / floor }),
                );
            }
        }
        figure(stack, "server_rss", rss("searching"));
    }
    if phase("logins") {
        // The machine's speed drifts: the raw rate is taken before and after the sign-ins
        // and their mean is what they are compared with.
        let before = raw_argon2_rate(&argon2, &hash, seconds);
        let usernames = sql.active_usernames(largest.id, 2_000).await;
        let logins = load::logins(stack, &targets[0], &usernames, seconds).await;
        let after = raw_argon2_rate(&argon2, &hash, seconds);
        let raw = (before + after) / 2.0;
        figure(
            stack,
            "argon2_raw",
            json!({ "per_second": raw, "before": before, "after": after }),
        );
        figure(stack, "logins_vs_argon2", json!({ "ratio": logins / raw }));
        figure(stack, "server_rss", rss("signing in"));
    }
    if phase("requests") {
        requests(stack, &server, &orgs, &sql, &mail, seconds).await;
        figure(stack, "server_rss", rss("requests"));
    }
}

/// Whether BENCH_PHASES (all when unset) names `name`.
fn phase(name: &str) -> bool {
    std::env::var("BENCH_PHASES").map_or(true, |phases| phases.split(',').any(|p| p.trim() == name))
}

/// The size of every table and index, and of the search structure, per user.
async fn sizes(stack: &str, sql: &load::Sql, users: usize) {
    let sizes = sql.sizes().await;
    let per_user = |bytes: i64| bytes as f64 / users as f64;
    for (relation, bytes) in &sizes {
        figure(
            stack,
            "size",
            json!({ "relation": relation, "bytes": bytes, "bytes_per_user": per_user(*bytes) }),
        );
    }
    // The search structure: the postings and their counts, with their indexes.
    let search: i64 = sizes
        .iter()
        .filter(|(relation, _)| relation.starts_with("user_search_"))
        .map(|(_, bytes)| bytes)
        .sum();
    figure(
        stack,
        "search_index_size",
        json!({ "bytes": search, "bytes_per_user": per_user(search) }),
    );
}

/// Owners of 32 organizations file license requests at SPEC's pace, timed from filing
/// to APPLIED, and every email they cause is awaited at the mail server.
async fn requests(
    stack: &'static str,
    server: &load::Server,
    orgs: &[Org],
    sql: &load::Sql,
    mail: &smtp::Sink,
    seconds: Duration,
) {
    let mut owners = Vec::new();
    for org in orgs.iter().take(32) {
        let owner = sql.owner_username(org.id).await;
        owners.push(server.login(&owner, PASSWORD).await);
    }
    // The target rate of SPEC "Scale": 100 a second on the SQLite queue, 200 on Redis.
    let rate = std::env::var("BENCH_REQUEST_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if stack == "sqlite" { 100.0 } else { 200.0 });
    let mailed = mail.received();
    load::requests_flow(stack, server, owners, sql, seconds, rate).await;
    // Their emails (the owner is told the request was applied): until none came for 2 s.
    let applied = Instant::now();
    let (mut count, mut last) = (mail.received(), Instant::now());
    while last.elapsed() < Duration::from_secs(2) && applied.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if mail.received() != count {
            (count, last) = (mail.received(), Instant::now());
        }
    }
    figure(
        stack,
        "request_emails_over_smtp",
        json!({
            "emails": count - mailed,
            "last_after_all_applied_seconds": last.saturating_duration_since(applied).as_secs_f64(),
        }),
    );
}

/// Creates the organizations and imports their users, showing progress: small
/// organizations onboarded many to a transaction (about 10,000 users in each), a large
/// one on its own with the rest of its users imported 10,000 at a time. On PostgreSQL
/// three such batches (independent organizations, no row in common) run at once, as three
/// importers would: each waits on round trips, and three keep this machine's two cores
/// busy (100,000 users: 19.4 s one at a time, 14.2 s two, 12.4 s three). SQLite has one
/// writer, so one. Organizations are numbered in the order their batches wrote them:
/// [`number_organizations`] reads their ids back.
async fn seed(
    stack: &str,
    gatehouse: &gatehouse::Gatehouse,
    orgs: &[Org],
    users: usize,
    hash: &str,
) {
    use futures_util::StreamExt as _;
    const BATCH: usize = 10_000;
    let at_once = if stack == "postgres" { 3 } else { 1 };
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let next_report = std::sync::Mutex::new(Instant::now());
    // Consecutive organizations of about BATCH users (a large one's first BATCH).
    let mut batches = Vec::new();
    let (mut first, mut batched) = (0, 0);
    for (i, org) in orgs.iter().enumerate() {
        batched += org.size.min(BATCH);
        if batched >= BATCH || i + 1 == orgs.len() {
            batches.push(first..i + 1);
            (first, batched) = (i + 1, 0);
        }
    }
    let import = |batch: std::ops::Range<usize>| {
        let done = &done;
        let next_report = &next_report;
        async move {
            let mut imports = Vec::new();
            let mut later = Vec::new();
            for (position, org) in orgs[batch].iter().enumerate() {
                let mut people = people_of(org, hash);
                let rest = people.split_off(people.len().min(BATCH));
                let new = new_organization(gatehouse, org).await;
                let practices = PRACTICES
                    .iter()
                    .map(|p| {
                        (
                            p.to_string(),
                            AuditEntry::new(org.id, now(), "practice.created"),
                        )
                    })
                    .collect();
                imports.push((
                    new,
                    UserImport {
                        org_id: org.id,
                        new_practices: practices,
                        users: people,
                    },
                ));
                if !rest.is_empty() {
                    later.push((position, rest));
                }
            }
            let batched: usize = imports.iter().map(|(_, import)| import.users.len()).sum();
            let created = gatehouse
                .store
                .import_organizations(imports)
                .await
                .expect("organizations");
            done.fetch_add(batched as u64, Ordering::Relaxed);
            for (position, rest) in later {
                for part in rest.chunks(BATCH) {
                    let import = UserImport {
                        org_id: created[position].0.id,
                        new_practices: Vec::new(),
                        users: part.to_vec(),
                    };
                    gatehouse
                        .store
                        .import_users(import, &|_| {})
                        .await
                        .expect("import");
                    done.fetch_add(part.len() as u64, Ordering::Relaxed);
                }
            }
            let mut next = next_report.lock().unwrap();
            if *next <= Instant::now() {
                eprintln!(
                    "seeding: {}/{users} users, {:.0} s",
                    done.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64(),
                );
                *next = Instant::now() + Duration::from_secs(5);
            }
        }
    };
    futures_util::stream::iter(batches)
        .map(import)
        .buffer_unordered(at_once)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "seeding: {users}/{users} users, {} organizations, {:.0} s",
        orgs.len(),
        started.elapsed().as_secs_f64(),
    );
}

/// Each organization's id, found by its name (batches seeded at once commit in any
/// order).
async fn number_organizations(orgs: &mut [Org], sql: &load::Sql) {
    let ids = sql.organization_ids().await;
    for org in orgs {
        org.id = gatehouse::domain::OrgId(ids[&organization_name(org)]);
    }
}

fn organization_name(org: &Org) -> String {
    format!("Practice group {}", org.index)
}

const PRACTICES: [&str; 3] = ["North clinic", "South clinic", "Downtown"];

/// An organization of the benchmark as the product checks it, its owner invited.
async fn new_organization(gatehouse: &gatehouse::Gatehouse, org: &Org) -> NewOrganization {
    // Room for the invitations the benchmark times.
    let size = org.size as i32 + 1_000;
    gatehouse
        .app
        .directory()
        .new_organization(CreateOrganization {
            name: organization_name(org),
            owner_username: format!("owner{:05}", org.index),
            owner_email: format!("owner@org{:05}.example", org.index),
            owner_first_name: "Olivia".into(),
            owner_last_name: format!("Owner {}", org.index),
            owner_kind: UserKind::Staff,
            licenses: vec![
                (Product::Ehr, UserKind::Staff, size),
                (Product::Ehr, UserKind::Provider, size),
                (Product::Billing, UserKind::Staff, size),
                (Product::Billing, UserKind::Provider, size),
            ],
            owner_password: None,
        })
        .await
        .expect("organization")
}

/// The members of `org`, each in one of its practices; 65% of them imported with
/// `hash` as their password (ACTIVE, as when moving from another system), the rest
/// invited.
fn people_of(org: &Org, hash: &str) -> Vec<(UserCreation, Vec<String>)> {
    (0..org.size)
        .map(|k| {
            let person = Person::of(org.first + k);
            let practice = PRACTICES[k % PRACTICES.len()].to_string();
            let password = (k % 100 < 65).then_some(hash);
            (creation(org, &person, k, password), vec![practice])
        })
        .collect()
}

fn creation(org: &Org, person: &Person, k: usize, password: Option<&str>) -> UserCreation {
    let at = now();
    let provider = k % 10 < 3;
    let permissions = match k % 7 {
        0 => vec![Permission::Scheduling],
        1 => vec![Permission::Scheduling, Permission::Billing],
        2 if provider => vec![Permission::ClinicalNotes, Permission::Prescribing],
        _ => vec![],
    };
    UserCreation {
        user: NewUser {
            org_id: org.id,
            username: person.username.clone(),
            email: person.email.clone(),
            first_name: person.first.clone(),
            last_name: person.last.clone(),
            mobile: Some(person.mobile.clone()),
            kind: if provider {
                UserKind::Provider
            } else {
                UserKind::Staff
            },
            role: Role::Member,
            products: if k.is_multiple_of(4) {
                vec![Product::Ehr, Product::Billing]
            } else {
                vec![Product::Ehr]
            },
            permissions,
            practice_ids: vec![],
            password_hash: password.map(str::to_owned),
            encryption_key: vec![0; 32],
            created_at: at,
        },
        audit: AuditEntry::new(org.id, at, "user.invited"),
        setup_email: None,
    }
}

/// The same searches on the store itself, one at a time: what HTTP and GraphQL add.
async fn in_process(stack: &str, gatehouse: &gatehouse::Gatehouse, org: &Org) {
    let mut times = Vec::new();
    for n in 0..2_000.min(org.size * 4) {
        let filter = people::filter(org, n);
        let search = UserSearch {
            org_id: org.id,
            limit: 21,
            now: now(),
            ..people::store_search(&filter)
        };
        let started = Instant::now();
        gatehouse.store.search_users(search).await.expect("search");
        times.push(started.elapsed());
    }
    load::latency_figure(stack, "search_in_process_largest", &mut times);
    // Each kind of filter with its total, to see which one makes the tail.
    const KINDS: [&str; 7] = [
        "name",
        "first_and_last",
        "username",
        "email",
        "mobile",
        "any_invited",
        "name_inactive",
    ];
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
    for n in 0..1_400.min(org.size * 4) {
        let search = UserSearch {
            org_id: org.id,
            limit: 21,
            with_total: true,
            now: now(),
            ..people::store_search(&people::filter(org, n))
        };
        let started = Instant::now();
        gatehouse.store.search_users(search).await.expect("search");
        by_kind[n % KINDS.len()].push(started.elapsed());
    }
    for (kind, times) in KINDS.iter().zip(&mut by_kind) {
        times.sort();
        let (p50, p99) = (load::percentile(times, 0.5), load::percentile(times, 0.99));
        figure(
            stack,
            "search_in_process_largest_with_total",
            json!({ "filter": kind, "count": times.len(), "p50_ms": load::ms(p50), "p99_ms": load::ms(p99) }),
        );
    }

    // What a write costs the store: 200 invitations, then each of them renamed to a
    // name elsewhere in the directory (a new rank, postings rewritten).
    let (mut invites, mut renames, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..200 {
        // People of their own on every run, so that a seeded database can be measured again.
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as usize % 1_000_000);
        let person = Person::of(10_000_000 + run * 1_000 + k);
        let started = Instant::now();
        let user = gatehouse
            .store
            .create_user(creation(org, &person, k, None))
            .await
            .expect("invite");
        invites.push(started.elapsed());
        ids.push(user.id);
    }
    for (k, id) in ids.into_iter().enumerate() {
        let update = gatehouse::store::UserUpdate {
            org_id: org.id,
            user_id: id,
            first_name: None,
            last_name: Some(Person::of(k * 37).last),
            mobile: None,
            practice_ids: None,
            audit: AuditEntry::new(org.id, now(), "user.updated"),
        };
        let started = Instant::now();
        gatehouse.store.update_user(update).await.expect("rename");
        renames.push(started.elapsed());
    }
    load::latency_figure(stack, "invite_in_process_largest", &mut invites);
    load::latency_figure(stack, "rename_in_process_largest", &mut renames);
}

/// Verifications per second of the server's own argon2id settings on every core at once.
fn raw_argon2_rate(params: &gatehouse::config::Argon2Params, hash: &str, window: Duration) -> f64 {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let count = Arc::new(AtomicU64::new(0));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = Instant::now() + window.min(Duration::from_secs(5));
    let params = argon2::Params::new(params.m_kib, params.t, params.p, None).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            let count = count.clone();
            let params = params.clone();
            scope.spawn(move || {
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let parsed = PasswordHash::new(hash).unwrap();
                while Instant::now() < deadline {
                    argon.verify_password(PASSWORD.as_bytes(), &parsed).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / window.min(Duration::from_secs(5)).as_secs_f64()
}
