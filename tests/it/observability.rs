//! What an operator sees of one user action: its request id in the log lines of the HTTP
//! request and of every job it causes (and the jobs those cause), and logs as JSON lines.

use crate::common::{Practice, TestDb, capture_logs, captured_logs, series};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// POSTs a document with its own request id; returns the body.
async fn traced(p: &Practice, token: &str, id: &str, query: &str, variables: Value) -> Value {
    let response = p
        .server
        .client
        .post(p.server.url("/graphql"))
        .bearer_auth(token)
        .header("x-request-id", id)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], id);
    response.json().await.unwrap()
}

/// The captured log lines that name `id`.
fn lines_with(id: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_follows_an_action_through_the_jobs_it_causes() {
    capture_logs();
    let db = TestDb::sqlite().await;
    let p = Practice::start(&db, vec![]).await;
    let adam = p.login("adam").await;
    // Filing writes a routing job; the routing job writes an email job per owner.
    let filed = traced(
        &p,
        &adam,
        "file-7f3a0c",
        "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1, justification: \"front desk\"}) { request { id } userErrors { code } } }",
        json!({}),
    )
    .await;
    let request = filed["data"]["requestLicenses"]["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{filed}"))
        .to_owned();
    p.smtp.wait_for(2, WAIT).await;
    let olivia = p.login("olivia").await;
    let approved = traced(
        &p,
        &olivia,
        "approve-91be22",
        "mutation($i: ApproveRequestInput!) { approveRequest(input: $i) { userErrors { code } } }",
        json!({ "i": { "requestId": request, "acceptTerms": true } }),
    )
    .await;
    assert_eq!(approved["data"]["approveRequest"]["userErrors"], json!([]));
    // The applying job emails the outcome to the parties.
    p.smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcome_emails = p.smtp.received().len() - 2;

    let filing = lines_with("file-7f3a0c");
    let sent = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("job{") && l.contains("email sent"))
            .count()
    };
    assert!(
        filing.iter().any(|l| l.contains("request{")),
        "the HTTP request's own lines: {filing:#?}"
    );
    assert_eq!(
        sent(&filing),
        2,
        "one approval email per owner: {filing:#?}"
    );
    let approving = lines_with("approve-91be22");
    assert_eq!(
        sent(&approving),
        outcome_emails,
        "the outcome emails: {approving:#?}"
    );
    assert_eq!(
        sent(&lines_with("file-7f3a0c")),
        2,
        "nothing else took the id"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .env_clear()
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "GATEHOUSE_LOG",
            "debug,sqlx=warn,apalis=warn,apalis_sqlite=warn",
        )
        .env("GATEHOUSE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .header("x-request-id", "json-line-5d1e")
            .send()
            .await
        {
            ready = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server became ready");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut text).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 2, "{text}");
    let in_request = lines
        .iter()
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["request_id"] == "json-line-5d1e"))
        })
        .count();
    assert!(
        in_request >= 1,
        "a line inside the request names it: {text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
}

crate::on_both_databases!(metrics_show_what_happened);

async fn metrics_show_what_happened(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let metrics = || async {
        reqwest::get(p.server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // mia fails five times and is locked (the default threshold).
    for _ in 0..5 {
        let (_, body) = p
            .server
            .graphql(
                None,
                "mutation { login(input: {username: \"mia\", password: \"not her password\"}) { token } }",
                json!({}),
            )
            .await;
        assert!(body["data"]["login"]["token"].is_null());
    }
    let adam = p.login("adam").await;
    let filed = traced(
        &p,
        &adam,
        "metrics-1",
        "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1, justification: \"x\"}) { request { id } } }",
        json!({}),
    )
    .await;
    let request = filed["data"]["requestLicenses"]["request"]["id"].clone();
    // Sent to olivia and oscar, and mia's lock notice.
    p.smtp.wait_for(3, WAIT).await;
    let olivia = p.login("olivia").await;
    traced(
        &p,
        &olivia,
        "metrics-2",
        "mutation($i: ApproveRequestInput!) { approveRequest(input: $i) { userErrors { code } } }",
        json!({ "i": { "requestId": request, "acceptTerms": true } }),
    )
    .await;
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics().await;
        if series(
            &text,
            "gatehouse_request_filed_to_applied_seconds_count",
            &[],
        ) == Some(1.0)
            && series(&text, "gatehouse_lockouts_total", &[]) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get = |name: &str, labels: &[(&str, &str)]| {
        series(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        get("gatehouse_request_filed_to_applied_seconds_count", &[]),
        1.0
    );
    assert_eq!(get("gatehouse_lockouts_total", &[]), 1.0);
    assert_eq!(get("gatehouse_users_locked", &[]), 1.0);
    assert_eq!(
        get(
            "gatehouse_logins_total",
            &[("outcome", "invalid_credentials")]
        ),
        5.0
    );
    assert_eq!(
        get("gatehouse_logins_total", &[("outcome", "success")]),
        2.0
    );
    assert_eq!(get("gatehouse_requests", &[("status", "APPLIED")]), 1.0);
    assert!(
        get(
            "gatehouse_graphql_field_duration_seconds_count",
            &[("type", "Mutation"), ("field", "login"), ("outcome", "ok")]
        ) >= 7.0
    );
    assert_eq!(
        get(
            "gatehouse_graphql_field_duration_seconds_count",
            &[("field", "requestLicenses")]
        ),
        1.0
    );
    assert!(get("gatehouse_emails_total", &[("outcome", "sent")]) >= 3.0);
    // On SQLite at least four reading connections and the writing one; on PostgreSQL the
    // pool of 32.
    assert!(get("gatehouse_db_pool_connections", &[("state", "max")]) >= 5.0);
    assert!(get("gatehouse_db_pool_connections", &[("state", "open")]) >= 1.0);
    get("gatehouse_queue_jobs", &[("state", "pending")]);
    get("gatehouse_outbox_backlog", &[]);
    get("gatehouse_outbox_oldest_age_seconds", &[]);
    // Nothing here waits on anything else: no write was a deadlock's victim.
    assert_eq!(get("gatehouse_store_writes_retried_total", &[]), 0.0);
    assert!(
        get(
            "gatehouse_jobs_succeeded_total",
            &[("kind", "apply_request")]
        ) >= 1.0
    );
    // Every series the dashboard in the repository draws is served.
    let dashboard = include_str!("../../docs/grafana/gatehouse.json");
    let mut drawn: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("gatehouse_"))
        .collect();
    drawn.sort_unstable();
    drawn.dedup();
    assert!(drawn.len() >= 12, "{drawn:?}");
    for name in drawn {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "the dashboard draws {name}, which /metrics does not serve"
        );
    }
}

/// An OTLP/HTTP collector on 127.0.0.1: keeps every span it is sent.
struct Collector {
    url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<Span>>>,
}

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

impl Collector {
    async fn start() -> Collector {
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let request = <ExportTraceServiceRequest as prost::Message>::decode(body)
                        .expect("an OTLP trace export");
                    let mut kept = kept.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            kept.extend(scope.spans);
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { url, spans }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gatehouse = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_LOG", "warn")
            .env("GATEHOUSE_ARGON2_M_KIB", "64")
            .env("GATEHOUSE_ARGON2_T", "1")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    // An invited owner: a setup email waits in the outbox for the server's workers.
    let created = gatehouse()
        .args([
            "org",
            "create",
            "--name",
            "Sunrise Clinic",
            "--owner-username",
            "olivia",
            "--owner-email",
            "olivia@sunrise.example",
            "--owner-first-name",
            "Olivia",
            "--owner-last-name",
            "Owner",
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let mut server = gatehouse().spawn().unwrap();
    let client = reqwest::Client::new();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .header("x-request-id", "otel-b8e1")
            .json(&json!({ "query": "query Probe { me { username } }" }))
            .send()
            .await
        {
            answered = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered.map(|s| s.as_u16()), Some(200));
    let outbox = dir.path().join("data/outbox");
    for _ in 0..200 {
        if std::fs::read_dir(&outbox).is_ok_and(|mut d| d.next().is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopping sends what is still buffered.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
    let spans = collector.spans();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let request = *named("POST /graphql")
        .iter()
        .find(|s| attribute(s, "request_id").as_deref() == Some("otel-b8e1"))
        .unwrap_or_else(|| panic!("the HTTP request's span: {spans:#?}"));
    let operation = named("graphql Probe");
    assert_eq!(operation.len(), 1, "the GraphQL operation's span");
    assert_eq!(operation[0].trace_id, request.trace_id);
    assert_eq!(operation[0].parent_span_id, request.span_id);
    let job = named("job");
    assert!(
        job.iter()
            .any(|s| attribute(s, "kind").as_deref() == Some("account_setup_email")),
        "the job's span: {job:#?}"
    );
    let email = named("email");
    assert_eq!(email.len(), 1, "the email's span");
    assert_eq!(
        attribute(email[0], "template").as_deref(),
        Some("account_setup_invitation")
    );
    assert!(
        job.iter().any(|j| j.span_id == email[0].parent_span_id),
        "the email is sent inside its job"
    );
    // The database statements of the job are events of its span.
    assert!(
        job.iter()
            .flat_map(|s| &s.events)
            .any(|e| e.attributes.iter().any(|a| a.key == "db.statement")),
        "statements recorded: {job:#?}"
    );
}
