//! A real SMTP server for tests, in process: it speaks SMTP over TCP on 127.0.0.1, keeps
//! every message it accepted, and can be told to refuse, fail or stall, or be shut down
//! and brought back on the same port.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

pub struct SmtpReceiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    mode: watch::Sender<Mode>,
    stop: Option<watch::Sender<bool>>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Accept);
        let mut receiver = SmtpReceiver {
            port,
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
        tokio::spawn(async move {
            let mut stop_accepting = stopped.clone();
            loop {
                tokio::select! {
                    _ = stop_accepting.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { return };
                        let (received, mode, mut stopped) = (received.clone(), mode.clone(), stopped.clone());
                        let stalls = stalls.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = stopped.changed() => {}
                                _ = session(stream, received, mode, stalls) => {}
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

async fn session(
    stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    mut mode: watch::Receiver<Mode>,
    stalls: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test-smtp ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-test-smtp\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
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
                    return Ok(()); // cut off mid-message: nothing was accepted
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
                return Ok(());
            }
            match current {
                Mode::Accept => {
                    received.lock().unwrap().push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
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
            return Ok(());
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
