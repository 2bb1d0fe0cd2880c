//! The structure, checked by reading the source: each layer uses only the layers below it
//! (domain ← store ← app ← graphql/http ← the composition root; the workers crate below
//! the app), and no file's code is longer than a reader can hold (400 lines, its unit tests
//! aside).

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 400;

/// Each layer, and the crate paths it must not use.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "src/domain",
        &[
            "crate::config",
            "crate::store",
            "crate::app",
            "crate::graphql",
            "crate::http",
            "crate::metrics",
            "gatehouse_workers",
        ],
    ),
    (
        "src/config",
        &[
            "crate::store",
            "crate::app",
            "crate::graphql",
            "crate::http",
        ],
    ),
    (
        "src/store",
        &[
            "crate::app",
            "crate::graphql",
            "crate::http",
            "crate::metrics",
            "gatehouse_workers",
        ],
    ),
    (
        "src/app",
        // Global IDs are the API's form: the graphql layer parses them (`graphql/ids.rs`).
        &[
            "crate::graphql",
            "crate::http",
            "crate::metrics",
            "from_global(",
        ],
    ),
    ("src/graphql", &["crate::http", "crate::store"]),
    ("src/http", &["crate::store"]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of a file, its unit tests (a trailing `#[cfg(test)]` module) aside.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("\n#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[test]
fn every_layer_uses_only_the_layers_below_it() {
    let mut found = Vec::new();
    for (layer, forbidden) in LAYERS {
        for file in rust_files(&root().join(layer)) {
            let code = code(&file);
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap_or_default();
                for path in *forbidden {
                    if line.contains(path) {
                        found.push(format!(
                            "{}:{}: {} uses {path}",
                            file.strip_prefix(root()).unwrap().display(),
                            n + 1,
                            layer
                        ));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports against the layering:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let mut long = Vec::new();
    for dir in ["src", "workers/src"] {
        for file in rust_files(&root().join(dir)) {
            let lines = code(&file).lines().count();
            if lines > MAX_LINES {
                long.push(format!(
                    "{}: {lines} lines",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines of code (split them by what they do):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_above_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.rs");
    std::fs::write(&file, "use crate::app::App;\n".repeat(MAX_LINES + 1)).unwrap();
    assert_eq!(code(&file).lines().count(), MAX_LINES + 1);
    assert!(code(&file).contains("crate::app"));
    std::fs::write(&file, "fn a() {}\n#[cfg(test)]\nmod tests {\n}\n").unwrap();
    assert_eq!(code(&file).lines().count(), 1, "unit tests are not counted");
}
