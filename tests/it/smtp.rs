//! A real SMTP server for tests, in process: it speaks SMTP over TCP on 127.0.0.1 (plain,
//! with STARTTLS, or with implicit TLS), keeps every message it accepted, and can be told
//! to refuse, fail or stall, or be shut down and brought back on the same port.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the server answers the end of a message's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 451: try again later.
    TempFail,
    /// 550: never.
    PermFail,
    /// Says nothing until the mode changes (a server stuck mid-transaction).
    Stall,
}

/// A message the server accepted (answered 250 to).
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Whether it came over TLS (implicit, or after STARTTLS).
    pub over_tls: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The decoded text of the whole message (quoted-printable soft breaks removed).
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}

/// How a receiver speaks TLS.
#[derive(Clone)]
pub enum Tls {
    /// Offers STARTTLS (and takes mail without it too).
    StartTls(tokio_rustls::TlsAcceptor),
    /// TLS from the first byte (smtps).
    Implicit(tokio_rustls::TlsAcceptor),
}

impl Tls {
    /// An acceptor with this certificate and key (PEM files).
    pub fn acceptor(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

pub struct SmtpReceiver {
    pub port: u16,
    tls: Option<Tls>,
    received: Arc<Mutex<Vec<Received>>>,
    mode: watch::Sender<Mode>,
    stop: Option<watch::Sender<bool>>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        Self::start_with(None).await
    }

    /// One that speaks TLS.
    pub async fn start_with(tls: Option<Tls>) -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Accept);
        let mut receiver = SmtpReceiver {
            port,
            tls,
            received: Default::default(),
            mode,
            stop: None,
            stalls: Default::default(),
        };
        receiver.serve(listener);
        receiver
    }

    /// A port with nothing listening on it, for a server started later with `resume`.
    pub async fn unreachable() -> SmtpReceiver {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (mode, _) = watch::channel(Mode::Accept);
        SmtpReceiver {
            port,
            tls: None,
            received: Default::default(),
            mode,
            stop: None,
            stalls: Default::default(),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// How many messages have been held in `Mode::Stall` so far.
    pub fn stalls(&self) -> usize {
        self.stalls.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` messages arrived, or panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} emails, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops listening and drops open connections.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        self.stop = Some(stop);
        let received = self.received.clone();
        let stalls = self.stalls.clone();
        let mode = self.mode.subscribe();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let mut stop_accepting = stopped.clone();
            loop {
                tokio::select! {
                    _ = stop_accepting.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { return };
                        let (received, mode, mut stopped) = (received.clone(), mode.clone(), stopped.clone());
                        let stalls = stalls.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let talk = async move {
                                match tls {
                                    None => session(stream, None, false, received, mode, stalls).await,
                                    Some(Tls::StartTls(acceptor)) => {
                                        session(stream, Some(acceptor), false, received, mode, stalls).await
                                    }
                                    Some(Tls::Implicit(acceptor)) => {
                                        let stream = acceptor.accept(stream).await?;
                                        session(stream, None, true, received, mode, stalls).await
                                    }
                                }
                            };
                            tokio::select! {
                                _ = stopped.changed() => {}
                                _ = talk => {}
                            }
                        });
                    }
                }
            }
        });
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One client's conversation; `starttls` offers an upgrade, after which the conversation
/// starts over inside TLS.
fn session<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    starttls: Option<tokio_rustls::TlsAcceptor>,
    over_tls: bool,
    received: Arc<Mutex<Vec<Received>>>,
    mode: watch::Receiver<Mode>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> {
    Box::pin(async move {
        let (read, mut write) = tokio::io::split(stream);
        write.write_all(b"220 test-smtp ready\r\n").await?;
        let mut lines = BufReader::new(read);
        let offer = starttls.is_some();
        match converse(
            &mut lines,
            &mut write,
            offer,
            over_tls,
            received.clone(),
            mode.clone(),
            stalls.clone(),
        )
        .await?
        {
            Next::Done => Ok(()),
            Next::StartTls => {
                let stream = lines.into_inner().unsplit(write);
                let acceptor = starttls.expect("offered only with an acceptor");
                let stream = acceptor.accept(stream).await?;
                session_in_tls(stream, received, mode, stalls).await
            }
        }
    })
}

/// The conversation after STARTTLS: the client greets again.
async fn session_in_tls<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    received: Arc<Mutex<Vec<Received>>>,
    mode: watch::Receiver<Mode>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read);
    converse(&mut lines, &mut write, false, true, received, mode, stalls).await?;
    Ok(())
}

enum Next {
    Done,
    StartTls,
}

async fn converse<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    lines: &mut BufReader<R>,
    write: &mut W,
    offer_starttls: bool,
    over_tls: bool,
    received: Arc<Mutex<Vec<Received>>>,
    mut mode: watch::Receiver<Mode>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<Next> {
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(Next::Done);
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_uppercase();
        if upper.starts_with("EHLO") {
            if offer_starttls {
                write
                    .write_all(b"250-test-smtp\r\n250-STARTTLS\r\n")
                    .await?;
            } else {
                write.write_all(b"250-test-smtp\r\n").await?;
            }
            write.write_all(b"250-8BITMIME\r\n250 SMTPUTF8\r\n").await?;
        } else if upper == "STARTTLS" && offer_starttls {
            write.write_all(b"220 go ahead\r\n").await?;
            return Ok(Next::StartTls);
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 test-smtp\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            to.clear();
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().trim_matches(['<', '>']).to_owned());
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(Next::Done); // cut off mid-message: nothing was accepted
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                // Undo dot-stuffing.
                data.push_str(if line.starts_with("..") {
                    &line[1..]
                } else {
                    &line
                });
            }
            let current = *mode.borrow_and_update();
            if current == Mode::Stall {
                // Hold the answer until told otherwise, then hang up without accepting:
                // a client killed meanwhile never learns of the message, and it is not kept.
                stalls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = mode.wait_for(|m| *m != Mode::Stall).await;
                return Ok(Next::Done);
            }
            match current {
                Mode::Accept => {
                    received.lock().unwrap().push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                        over_tls,
                    });
                    write.write_all(b"250 accepted\r\n").await?;
                }
                Mode::TempFail => write.write_all(b"451 try again later\r\n").await?,
                Mode::PermFail => write.write_all(b"550 mailbox unavailable\r\n").await?,
                Mode::Stall => unreachable!(),
            }
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(Next::Done);
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
