//! The served schema against the API contract (`../shared/tools/check-contract`): it must
//! report no breaking change.

use std::path::Path;
use std::process::Command;

#[test]
fn schema_serves_the_whole_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The contract lives beside the checkout (`../shared`); GATEHOUSE_SHARED_DIR points
    // elsewhere when a checkout sits somewhere else.
    let shared = std::env::var_os("GATEHOUSE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let tool = shared.join("tools/check-contract");
    if !tool.exists() {
        let what = format!(
            "the contract check: {} not found (set GATEHOUSE_SHARED_DIR)",
            tool.display()
        );
        // Reported in the test command's summary of skipped suites (not failed: a CI
        // checkout without the workshop beside it must still land).
        crate::common::skipped(&what);
        return;
    }
    let out = Command::new(&tool)
        .arg(root.join("schema/schema.graphql"))
        .output()
        .expect("check-contract runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("breaking change(s)"),
        "check-contract did not run: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("BREAKING"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the schema breaks the contract:\n{}",
        unexpected.join("\n")
    );
}
