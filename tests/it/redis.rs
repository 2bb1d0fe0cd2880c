//! A throwaway Redis for tests: `redis-server` on a free 127.0.0.1 port with its data in a
//! temp dir (append-only, so a restart keeps the queue), stopped and restarted at will.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestRedis {
    pub port: u16,
    binary: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Only TLS on `port`: the certificate, its key and the CA.
    tls: Option<[std::path::PathBuf; 3]>,
}

impl TestRedis {
    /// Starts one, or returns `None` (skipping loudly; failing in CI) when no redis-server
    /// was provided by the test command (GATEHOUSE_TEST_REDIS_SERVER).
    pub async fn start() -> Option<TestRedis> {
        Self::start_with(None).await
    }

    /// One that speaks only TLS, with this certificate and key (clients not asked for
    /// certificates).
    pub async fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Option<TestRedis> {
        Self::start_with(Some([cert.into(), key.into(), ca.into()])).await
    }

    async fn start_with(tls: Option<[std::path::PathBuf; 3]>) -> Option<TestRedis> {
        let Some(binary) = std::env::var("GATEHOUSE_TEST_REDIS_SERVER")
            .ok()
            .filter(|b| !b.is_empty())
        else {
            if crate::common::in_ci() {
                panic!(
                    "CI=true but GATEHOUSE_TEST_REDIS_SERVER is not set: the Redis suite must run in CI"
                );
            }
            crate::common::skipped(
                "Redis test (run scripts/test, or set GATEHOUSE_TEST_REDIS_SERVER to a redis-server binary)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = TestRedis {
            port,
            binary,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls,
        };
        redis.resume().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (as a crash or an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub async fn resume(&mut self) {
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some([cert, key, ca]) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
