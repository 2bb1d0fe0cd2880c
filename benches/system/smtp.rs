//! A mail server for the benchmark: speaks enough SMTP on 127.0.0.1 to take every message
//! the server sends, and counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub struct Sink {
    pub url: String,
    received: Arc<AtomicUsize>,
}

impl Sink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(converse(stream, counter.clone()));
            }
        });
        Self { url, received }
    }

    /// Messages taken so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

/// One client's session: every command answered as a willing server would.
async fn converse(
    stream: tokio::net::TcpStream,
    received: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 bench-smtp ready\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if command.starts_with("EHLO") {
            b"250-bench-smtp\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if command == "DATA" {
            write.write_all(b"354 end with .\r\n").await?;
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
            }
            received.fetch_add(1, Ordering::Relaxed);
            b"250 accepted\r\n"
        } else if command == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            // HELO, MAIL FROM, RCPT TO, RSET, NOOP
            b"250 ok\r\n"
        };
        write.write_all(answer).await?;
    }
}
