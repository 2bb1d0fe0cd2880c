//! The two migration folders stay in step, and every file is embedded in the binary.

use gatehouse::store::{Backend, migrations_for};
use std::collections::BTreeSet;
use std::path::Path;

fn files(dir: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    assert_eq!(files("sqlite"), files("postgres"));
}

#[test]
fn every_migration_file_is_embedded() {
    for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        let embedded: BTreeSet<String> = migrations_for(backend)
            .iter()
            .map(|(_, name, _)| format!("{name}.sql"))
            .collect();
        assert_eq!(
            embedded,
            files(dir),
            "{dir}: list the file in src/store/migrations.rs"
        );
        for (version, name, _) in migrations_for(backend) {
            assert!(
                name.starts_with(&format!("{version:04}_")),
                "{name} does not start with its version"
            );
        }
    }
}
