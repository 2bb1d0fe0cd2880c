//! HTTPS without a proxy: rustls on the API's listener, HTTP/2 or HTTP/1.1 by ALPN
//! (WebSocket upgrades included). The certificate is read again when its files change
//! (checked every few seconds) or on SIGHUP, so that a renewed certificate needs no
//! restart; a new pair that does not load is logged and the old one kept.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tower::ServiceExt as _;

/// How often the certificate files are looked at for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may finish their requests at shutdown.
const DRAIN: Duration = Duration::from_secs(30);

/// The certificate chain and private key files (PEM).
pub use crate::config::TlsFiles as CertificateFiles;

trait Load {
    fn load(&self) -> Result<CertifiedKey, String>;
    fn stamp(&self) -> (Option<SystemTime>, Option<SystemTime>);
}

impl Load for CertificateFiles {
    /// Loads the pair: the chain and a key that matches its first certificate.
    fn load(&self) -> Result<CertifiedKey, String> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: holds no certificate", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| format!("{} and {}: {e}", self.cert.display(), self.key.display()))
    }

    fn stamp(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (modified(&self.cert), modified(&self.key))
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate being served, swapped when the files change.
#[derive(Debug)]
struct Reloading {
    files: CertificateFiles,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

impl Reloading {
    fn new(files: CertificateFiles) -> Result<Self, String> {
        let stamp = files.stamp();
        let current = files.load()?;
        Ok(Self {
            files,
            current: RwLock::new(Arc::new(current)),
            stamp: RwLock::new(stamp),
        })
    }

    /// Loads the files again when they changed (or when `force`d).
    fn reload(&self, force: bool) {
        let stamp = self.files.stamp();
        if !force && *self.stamp.read().unwrap_or_else(|e| e.into_inner()) == stamp {
            return;
        }
        *self.stamp.write().unwrap_or_else(|e| e.into_inner()) = stamp;
        match self.files.load() {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate loaded");
            }
            Err(err) => {
                tracing::error!(error = %err, "TLS certificate not loaded; still serving the previous one");
            }
        }
    }
}

/// Checks the pair loads, for a start-up error that names the setting.
pub fn check(files: &CertificateFiles) -> Result<(), String> {
    files.load().map(drop)
}

/// Serves `router` over TLS on `listener` until `stopped` completes, then lets open
/// connections finish (up to 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    files: CertificateFiles,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let resolver = Arc::new(Reloading::new(files).map_err(anyhow::Error::msg)?);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let watcher = tokio::spawn(watch_files(resolver));
    let graceful = GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(stopped);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small messages (a subscription update) go out at once, not after the peer's
        // delayed acknowledgement of the one before.
        let _ = tcp.set_nodelay(true);
        let (acceptor, builder) = (acceptor.clone(), builder.clone());
        let service = router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let watch = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(err) = watch.watch(connection).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    watcher.abort();
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after 30 s; closing them"),
    }
    Ok(())
}

/// Reloads on a change of the files, and on SIGHUP.
async fn watch_files(resolver: Arc<Reloading>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = match hangup.as_mut() {
            Some(signal) => tokio::select! {
                _ = signal.recv() => true,
                () = tokio::time::sleep(RELOAD_CHECK) => false,
            },
            None => {
                tokio::time::sleep(RELOAD_CHECK).await;
                false
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(RELOAD_CHECK).await;
            false
        };
        let resolver = resolver.clone();
        let _ = tokio::task::spawn_blocking(move || resolver.reload(forced)).await;
    }
}
