//! `schema/schema.graphql` is what `gatehouse schema` prints.

use std::path::Path;

#[test]
fn exported_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let current = gatehouse::graphql::sdl();
    if on_disk != current {
        if std::env::var_os("GATEHOUSE_BLESS").is_some() {
            std::fs::write(&path, &current).unwrap();
        } else {
            panic!(
                "schema/schema.graphql is stale: run `cargo run -- schema > schema/schema.graphql` (or GATEHOUSE_BLESS=1 cargo test)"
            );
        }
    }
}
