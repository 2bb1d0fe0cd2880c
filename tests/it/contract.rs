//! The served schema against the API contract (`../shared/tools/check-contract`): every
//! breaking change it reports must belong to the request workflow, which is not built yet.

use std::path::Path;
use std::process::Command;

/// Parts of the contract that the request workflow adds (approvals, subscriptions).
const WORKFLOW: &[&str] = &[
    "RequestKind",
    "RequestStatus",
    "LicenseChange",
    "PermissionChange",
    "RequestDecision",
    "RequestEvent",
    "AccountRequest",
    "AccountRequestEdge",
    "AccountRequestConnection",
    "AccountRequestPayload",
    "RequestFilter",
    "RequestLicensesInput",
    "RequestPermissionChangeInput",
    "RequestInactivationInput",
    "ApproveRequestInput",
    "RejectRequestInput",
    "CancelRequestInput",
    "Subscription",
    "AuditEvent.request",
    "Query.request",
    "Query.requests",
    "ReactivateUsersPayload.requests",
    "Mutation.requestLicenses",
    "Mutation.requestPermissionChange",
    "Mutation.requestInactivation",
    "Mutation.approveRequest",
    "Mutation.rejectRequest",
    "Mutation.cancelRequest",
];

#[test]
fn schema_breaks_nothing_of_the_contract_but_the_workflow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = root.join("../shared/tools/check-contract");
    if !tool.exists() {
        assert!(
            !crate::common::in_ci(),
            "CI=true but {} is missing",
            tool.display()
        );
        eprintln!("SKIPPED: contract check ({} not found)", tool.display());
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
        .filter(|line| {
            let what = line.split(": ").nth(1).unwrap_or_default();
            !WORKFLOW.iter().any(|part| {
                what.starts_with(&format!("{part} ")) || what.starts_with(&format!("{part}."))
            })
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "the schema breaks the contract:\n{}",
        unexpected.join("\n")
    );
}
