//! Encryption in transit to the backing services: a throwaway CA and server certificates
//! (made with openssl), Redis with its TLS port and PostgreSQL with `ssl=on` (started so
//! by the test command); each works with the CA trusted, is refused without it, and
//! never falls back to plain text.

use crate::common::{ServerOptions, TestDb, TestServer, test_config};
use crate::redis::TestRedis;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
pub struct Certificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Certificates {
    /// Made with openssl; `None` (skipping loudly, failing in CI) without it.
    pub fn make() -> Option<Certificates> {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .is_ok_and(|o| o.status.success())
        };
        std::fs::write(
            path("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let made = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Gatehouse test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]) && openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]) && openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        if !made {
            if crate::common::in_ci() {
                panic!("CI=true but openssl cannot make the test certificates");
            }
            crate::common::skipped("TLS test (openssl is needed to make certificates)");
            return None;
        }
        Some(Certificates {
            ca: path("ca.pem"),
            cert: path("server.crt"),
            key: path("server.key"),
            _dir: dir,
        })
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_runs_over_redis_tls_with_the_private_ca() {
    let Some(certs) = Certificates::make() else {
        return;
    };
    let Some(redis) = TestRedis::start_tls(&certs.cert, &certs.key, &certs.ca).await else {
        return;
    };
    let db = TestDb::sqlite().await;
    let url = format!("rediss://127.0.0.1:{}/", redis.port);
    // Trusted: jobs travel over TLS, and an invitation's email goes out.
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            queue_url: Some(url.clone()),
            env: vec![("GATEHOUSE_TLS_CA_FILE", text(&certs.ca))],
            ..Default::default()
        },
    )
    .await;
    crate::common::seed_org(&server.app, "Sunrise", "olivia").await;
    let owner = server.login("olivia", crate::common::OWNER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&owner),
            "mutation { inviteUser(input: {username: \"nina\", firstName: \"Nina\", lastName: \"Novak\", email: \"nina@sunrise.example\", kind: STAFF}) { user { id } userErrors { code } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["userErrors"],
        serde_json::json!([]),
        "{body}"
    );
    let outbox = server.outbox_dir();
    let mut sent = false;
    for _ in 0..100 {
        if std::fs::read_dir(&outbox).is_ok_and(|d| d.count() > 0) {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the setup email went through the TLS queue");
    drop(server);
    // Not trusted: the start stops, saying why.
    for (queue, ca) in [
        (url.clone(), None),
        (
            format!("redis://127.0.0.1:{}/", redis.port),
            Some(&certs.ca),
        ),
    ] {
        let mut env = vec![("GATEHOUSE_QUEUE_URL", queue.as_str())];
        let ca = ca.map(|c| text(c));
        if let Some(ca) = &ca {
            env.push(("GATEHOUSE_TLS_CA_FILE", ca.as_str()));
        }
        let config = test_config(&db, &env);
        let err = match tokio::time::timeout(
            Duration::from_secs(30),
            gatehouse::Gatehouse::build(config),
        )
        .await
        {
            Ok(Err(err)) => format!("{err:#}"),
            Ok(Ok(_)) => panic!("{queue} without trust (or without TLS) was accepted"),
            Err(_) => panic!("{queue}: no answer in 30 s"),
        };
        assert!(err.starts_with("GATEHOUSE_QUEUE_URL"), "{err}");
        if queue.starts_with("rediss:") {
            assert!(err.contains("certificate"), "{err}");
        }
    }
}

/// The test PostgreSQL (started with `ssl=on` by the test command) and the CA of its
/// certificate.
async fn postgres_with_tls() -> Option<(TestDb, PathBuf)> {
    let db = TestDb::postgres().await?;
    match std::env::var("GATEHOUSE_TEST_POSTGRES_CA") {
        Ok(ca) => Some((db, PathBuf::from(ca))),
        Err(_) if crate::common::in_ci() => {
            panic!("CI=true but the test PostgreSQL has no TLS (GATEHOUSE_TEST_POSTGRES_CA)")
        }
        Err(_) => {
            crate::common::skipped("PostgreSQL TLS test (run scripts/test)");
            None
        }
    }
}

fn with_params(url: &str, params: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{params}")
}

async fn uses_tls(store: &std::sync::Arc<dyn gatehouse::store::Store>, url: &str) -> bool {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let _ = store;
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verifies_its_server_against_the_private_ca() {
    let Some((db, ca)) = postgres_with_tls().await else {
        return;
    };
    let full = with_params(&db.url, "sslmode=verify-full");
    // Trusted through GATEHOUSE_TLS_CA_FILE, or sslrootcert in the URL.
    for (url, ca_file) in [
        (full.clone(), Some(text(&ca))),
        (with_params(&db.url, "sslmode=verify-ca"), Some(text(&ca))),
        (
            with_params(&full, &format!("sslrootcert={}", text(&ca))),
            None,
        ),
    ] {
        let mut env = vec![("GATEHOUSE_DATABASE_URL", url.as_str())];
        if let Some(ca) = &ca_file {
            env.push(("GATEHOUSE_TLS_CA_FILE", ca.as_str()));
        }
        let config = test_config(&db, &env);
        let store = gatehouse::open_store(&config)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:#}"));
        store.ping().await.unwrap();
    }
    let required = with_params(&db.url, "sslmode=require");
    let config = test_config(&db, &[("GATEHOUSE_DATABASE_URL", required.as_str())]);
    let store = gatehouse::open_store(&config).await.unwrap();
    assert!(
        uses_tls(&store, &required).await,
        "sslmode=require encrypts"
    );
    // Not trusted: refused at start, naming the URL without its password.
    let with_password = full.replacen("postgres@", "postgres:hunter2@", 1);
    let config = test_config(&db, &[("GATEHOUSE_DATABASE_URL", with_password.as_str())]);
    let err = match gatehouse::open_store(&config).await {
        Err(err) => format!("{err:#}"),
        Ok(_) => panic!("a server certificate from an unknown CA was accepted"),
    };
    assert!(err.contains("cannot connect to PostgreSQL at"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// Olivia of Sunrise invites nina, whose setup email the workers then send.
async fn invite(server: &TestServer) {
    crate::common::seed_org(&server.app, "Sunrise", "olivia").await;
    let owner = server.login("olivia", crate::common::OWNER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&owner),
            "mutation { inviteUser(input: {username: \"nina\", firstName: \"Nina\", lastName: \"Novak\", email: \"nina@sunrise.example\", kind: STAFF}) { userErrors { code } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["userErrors"],
        serde_json::json!([]),
        "{body}"
    );
}

/// A mail server speaking `tls`, and a Gatehouse sending to it by `url` (its port filled
/// in), trusting the test CA when `trust`.
async fn mail_over(
    db: &TestDb,
    certs: &Certificates,
    tls: Option<fn(tokio_rustls::TlsAcceptor) -> crate::smtp::Tls>,
    url: &str,
    trust: bool,
) -> (crate::smtp::SmtpReceiver, TestServer) {
    let acceptor = crate::smtp::Tls::acceptor(&certs.cert, &certs.key);
    let smtp = crate::smtp::SmtpReceiver::start_with(tls.map(|make| make(acceptor))).await;
    let mut env = vec![];
    if trust {
        env.push(("GATEHOUSE_TLS_CA_FILE", text(&certs.ca)));
    }
    let server = TestServer::start_with(
        db,
        ServerOptions {
            smtp_url: Some(url.replace("PORT", &smtp.port.to_string())),
            env,
            ..Default::default()
        },
    )
    .await;
    (smtp, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_verified_tls_or_waits() {
    use crate::smtp::Tls;
    let Some(certs) = Certificates::make() else {
        return;
    };
    let implicit: fn(_) -> Tls = Tls::Implicit;
    let starttls: fn(_) -> Tls = Tls::StartTls;
    // Trusted: sent, over TLS, both ways.
    for (tls, url) in [
        (implicit, "smtps://127.0.0.1:PORT"),
        (starttls, "smtp://127.0.0.1:PORT?tls=starttls"),
    ] {
        let db = TestDb::sqlite().await;
        let (smtp, server) = mail_over(&db, &certs, Some(tls), url, true).await;
        invite(&server).await;
        let mail = smtp.wait_for(1, Duration::from_secs(20)).await;
        assert!(mail[0].over_tls, "{url}");
        assert_eq!(mail[0].to, ["nina@sunrise.example"]);
    }
    // A certificate that does not verify, or a server that offers no STARTTLS: nothing is
    // sent in plain text; the email waits for a retry.
    for (tls, url, trust) in [
        (Some(implicit), "smtps://127.0.0.1:PORT", false),
        (Some(starttls), "smtp://127.0.0.1:PORT?tls=starttls", false),
        (None, "smtp://127.0.0.1:PORT?tls=starttls", true),
    ] {
        let db = TestDb::sqlite().await;
        let (smtp, server) = mail_over(&db, &certs, tls, url, trust).await;
        invite(&server).await;
        // Two attempts a second apart, normally within a few seconds; under the whole
        // suite's load the second once took over 20 s, so up to a minute.
        let mut retried = 0.0;
        for _ in 0..600 {
            let text = server.metrics.render();
            retried =
                crate::common::series(&text, "gatehouse_emails_total", &[("outcome", "retrying")])
                    .unwrap_or(0.0);
            if retried >= 2.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            retried >= 2.0,
            "{url} (trusted: {trust}): retried {retried}"
        );
        assert!(smtp.received().is_empty(), "{url}: nothing sent");
    }
}

/// A client that trusts exactly the CAs given, speaking HTTP/2 when the server offers it.
fn https_client(cas: &[&Path]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false);
    for ca in cas {
        let pem = std::fs::read(ca).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_a_renewed_certificate_is_taken_up() {
    let (Some(first), Some(renewed)) = (Certificates::make(), Certificates::make()) else {
        return;
    };
    // The served files, replaced in place as a renewal would.
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("tls.crt"), live.path().join("tls.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env: vec![
                ("GATEHOUSE_TLS_CERT_FILE", text(&cert)),
                ("GATEHOUSE_TLS_KEY_FILE", text(&key)),
                ("GATEHOUSE_PUBLIC_URL", "https://127.0.0.1".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{}/healthz", server.addr.port());
    let old_ca = https_client(&[&first.ca]);
    let new_ca = https_client(&[&renewed.ca]);
    let response = old_ca.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "HTTP/2 by ALPN"
    );
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&first.ca).unwrap()).unwrap(),
        )
        .http1_only()
        .build()
        .unwrap();
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    // A client that does not trust the CA, and plain HTTP, get nothing.
    assert!(new_ca.get(&url).send().await.is_err());
    let plain = reqwest::get(server.url("/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // The renewed certificate is served without a restart: on SIGHUP (here the files'
    // times are kept, so that only the signal can tell)...
    let served_by = |ca: PathBuf| {
        let url = url.clone();
        async move {
            for _ in 0..150 {
                if https_client(&[&ca]).get(&url).send().await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    let times: Vec<_> = [&cert, &key]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    std::fs::copy(&renewed.key, &key).unwrap();
    std::fs::copy(&renewed.cert, &cert).unwrap();
    for (path, time) in [&cert, &key].iter().zip(&times) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(*time)
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        https_client(&[&first.ca]).get(&url).send().await.is_ok(),
        "unchanged files are not read again"
    );
    let hup = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        served_by(renewed.ca.clone()).await,
        "SIGHUP loads the renewed pair"
    );
    // ... and when the files change (checked every 5 s).
    std::fs::copy(&first.key, &key).unwrap();
    std::fs::copy(&first.cert, &cert).unwrap();
    assert!(
        served_by(first.ca.clone()).await,
        "changed files are loaded within 15 s"
    );
    std::fs::copy(&renewed.key, &key).unwrap();
    std::fs::copy(&renewed.cert, &cert).unwrap();
    assert!(served_by(renewed.ca.clone()).await);
    assert!(https_client(&[&first.ca]).get(&url).send().await.is_err());
    // A session cookie over HTTPS is Secure, with the __Host- prefix.
    let page = https_client(&[&renewed.ca])
        .get(format!("https://127.0.0.1:{}/signin", server.addr.port()))
        .send()
        .await
        .unwrap();
    let cookies: Vec<_> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    assert!(
        cookies
            .iter()
            .all(|c| c.starts_with("__Host-") && c.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_the_start() {
    let Some(certs) = Certificates::make() else {
        return;
    };
    let db = TestDb::sqlite().await;
    for (cert, key) in [
        (text(&certs.cert), "/nonexistent/tls.key".to_owned()),
        (text(&certs.ca), text(&certs.key)),
    ] {
        let config = test_config(
            &db,
            &[
                ("GATEHOUSE_TLS_CERT_FILE", cert.as_str()),
                ("GATEHOUSE_TLS_KEY_FILE", key.as_str()),
            ],
        );
        let err = match gatehouse::Gatehouse::build(config).await {
            Err(err) => format!("{err:#}"),
            Ok(_) => panic!("{cert} with {key} was accepted"),
        };
        assert!(err.starts_with("GATEHOUSE_TLS_CERT_FILE"), "{err}");
    }
}
