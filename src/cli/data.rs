//! `gatehouse export` and `gatehouse import`: every table as JSON lines, from one database
//! of either kind into an empty one of either kind.

use anyhow::Context as _;
use gatehouse::config::{Config, redact_url};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress on standard error: a line per table, and every few seconds within a big one.
fn reporter(verb: &'static str) -> impl for<'t> Fn(&'t str, u64) + Send + Sync {
    let last = Mutex::new((String::new(), Instant::now()));
    move |table: &str, rows: u64| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.0 != table || last.1.elapsed() >= Duration::from_secs(2) {
            eprintln!("gatehouse: {verb} {table}: {rows} rows");
            *last = (table.to_owned(), Instant::now());
        }
    }
}

pub async fn export(file: PathBuf, config: Config) -> anyhow::Result<ExitCode> {
    let store = gatehouse::open_store(&config).await?;
    let progress = reporter("exported");
    let rows = if file == Path::new("-") {
        let mut out = BufWriter::new(std::io::stdout());
        store.export(&mut out, &progress).await?
    } else {
        // Written beside the target and renamed when complete: a file of this name is
        // always a whole export.
        let partial = file.with_extension("partial");
        let handle = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut out = BufWriter::new(handle);
        let rows = store.export(&mut out, &progress).await?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &file).with_context(|| {
            format!("cannot rename {} to {}", partial.display(), file.display())
        })?;
        rows
    };
    eprintln!(
        "gatehouse: exported {rows} rows from {} to {}",
        redact_url(&config.database_url),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(file: PathBuf, config: Config) -> anyhow::Result<ExitCode> {
    let mut input: Box<dyn BufRead + Send> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let handle = std::fs::File::open(&file)
            .with_context(|| format!("cannot open {}", file.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, handle))
    };
    let store = gatehouse::open_store(&config).await?;
    let progress = reporter("imported");
    match store.import(&mut input, &progress).await {
        Ok(rows) => {
            println!(
                "imported {rows} rows from {} into {}",
                file.display(),
                redact_url(&config.database_url)
            );
            std::io::stdout().flush().ok();
            Ok(ExitCode::SUCCESS)
        }
        Err(gatehouse::store::StoreError::Portable(why)) => {
            eprintln!("gatehouse: {}: {why}; nothing was imported", file.display());
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(anyhow::anyhow!(other)).context("nothing was imported"),
    }
}
