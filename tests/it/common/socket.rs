//! A GraphQL-over-WebSocket client (graphql-transport-ws).

use super::*;

/// A graphql-transport-ws client of `/graphql/ws`.
pub struct Subscriber {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Messages `closed_within` passed over, in order.
    pub skipped: Vec<serde_json::Value>,
}

/// How long a test waits for a WebSocket message.
const WS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Subscriber {
    /// Opens a socket without initialising it.
    pub async fn open(server: &TestServer) -> Subscriber {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/graphql/ws", server.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        Subscriber {
            socket,
            skipped: Vec::new(),
        }
    }

    /// Opens and initialises a socket with the token; the error is what came instead of
    /// the acknowledgement.
    pub async fn connect(server: &TestServer, token: Option<&str>) -> Result<Subscriber, String> {
        let mut subscriber = Self::open(server).await;
        let payload = match token {
            Some(token) => serde_json::json!({ "Authorization": format!("Bearer {token}") }),
            None => serde_json::json!({}),
        };
        subscriber
            .send(serde_json::json!({ "type": "connection_init", "payload": payload }))
            .await;
        match subscriber.next().await {
            Some(message) if message["type"] == "connection_ack" => Ok(subscriber),
            other => Err(format!("{other:?}")),
        }
    }

    pub async fn send(&mut self, message: serde_json::Value) {
        self.send_text(message.to_string()).await;
    }

    /// Sends raw text (which may be anything but JSON).
    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt as _;
        // The server may have closed already; what it said is read by `next`.
        let _ = self
            .socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await;
    }

    /// Runs one operation and returns its first `next` payload (or the error message).
    pub async fn run(&mut self, id: &str, query: &str) -> serde_json::Value {
        self.send(
            serde_json::json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
        loop {
            let message = self.next().await.expect("an answer on the socket");
            // Other operations' messages, and the completion of earlier ones, pass by.
            if message["id"] == id && message["type"] != "complete" {
                return message;
            }
        }
    }

    /// The next JSON message, or `None` when the connection closed.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        use futures_util::StreamExt as _;
        loop {
            let message = tokio::time::timeout(WS_WAIT, self.socket.next())
                .await
                .expect("a message in time")?;
            match message.ok()? {
                tokio_tungstenite::tungstenite::Message::Text(text) => {
                    return Some(serde_json::from_str(&text).unwrap());
                }
                tokio_tungstenite::tungstenite::Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Waits for the server to close the connection, skipping other messages; the close
    /// code, or `None` when it stayed open that long (or closed without a code).
    pub async fn closed_within(&mut self, wait: std::time::Duration) -> Option<u16> {
        use futures_util::StreamExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    self.skipped.push(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
