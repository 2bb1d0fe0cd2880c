//! GraphQL over WebSocket at `/graphql/ws`. The socket is only a transport: every
//! operation on it is checked against the document limits and authenticated like an HTTP
//! request, with a fresh context and fresh loaders. The connection closes when its session
//! ends (on any node), when no valid `connection_init` comes within 10 seconds, or when
//! the client goes away; an idle one is pinged, and one that stays silent for two pings
//! is dropped. A node holds at most so many connections, and a user at most so many.
//! Client messages are held to graphql-transport-ws before the handler reads them
//! (`ws_protocol`).

use crate::app::AppError;
use crate::app::ClientInfo;
use crate::domain::SessionId;
use crate::graphql::limits::Refusal;
use crate::graphql::{ChangesFromArrival, Endpoint, RequestContext, error_response, refused};
use async_graphql::http::{WebSocket, WebSocketProtocols};
use async_graphql::{Data, Executor, Response};
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use axum::http::HeaderMap;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt as _, StreamExt as _};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::seats::Seat;
pub use super::seats::Sockets;
use super::ws_protocol::{self, Closing, Operations, reason, write_ready};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// A connection must be initialised with a live session within this.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Operations one connection may run at once.
pub const MAX_OPERATIONS: usize = 100;

/// Close codes of graphql-transport-ws, and ours.
const UNAUTHORIZED: u16 = ws_protocol::UNAUTHORIZED;
const INIT_TIMED_OUT: u16 = 4408;
const TOO_MANY_FOR_USER: u16 = 4429;
/// WebSocket's "try again later".
const NODE_FULL: u16 = 1013;
/// WebSocket's "message too big".
const MESSAGE_TOO_BIG: u16 = 1009;

/// The subprotocol the client asked for.
pub fn protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

/// What one connection knows: the token it was initialised with and why it must close.
struct Connection {
    seat: Seat,
    client: ClientInfo,
    token: OnceLock<String>,
    operations: AtomicUsize,
    /// The client's IDs of the operations running.
    ids: Operations,
    /// Set once to the reason the connection must close.
    close: watch::Sender<Option<Closing>>,
}

impl Connection {
    fn close(&self, code: u16, why: impl Into<std::borrow::Cow<'static, str>>) {
        let why = why.into();
        self.close.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some((code, reason(why)));
            }
            first
        });
    }

    /// Whether a client message goes on to the handler: not once the connection is
    /// closing, nor one that breaks graphql-transport-ws (which closes it).
    fn admits(&self, protocol: WebSocketProtocols, message: &[u8]) -> bool {
        if self.close.borrow().is_some() {
            return false;
        }
        if protocol != WebSocketProtocols::GraphQLWS {
            return true;
        }
        let acknowledged = self.token.get().is_some();
        match self.ids.receive(message, acknowledged) {
            Ok(()) => true,
            Err((code, why)) => {
                self.close(code, why);
                false
            }
        }
    }
}

/// Counts an operation of the connection while it runs.
struct Running(Arc<Connection>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.operations.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The executor handed to async-graphql's protocol handler: each operation goes through
/// the endpoint with the caller authenticated afresh.
#[derive(Clone)]
struct PerOperation {
    endpoint: Endpoint,
    connection: Arc<Connection>,
}

impl Executor for PerOperation {
    async fn execute(&self, request: async_graphql::Request) -> Response {
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        _connection_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let connection = self.connection.clone();
        if connection.operations.fetch_add(1, Ordering::AcqRel) >= MAX_OPERATIONS {
            connection.operations.fetch_sub(1, Ordering::AcqRel);
            let refusal = Refusal {
                code: "QUERY_TOO_COMPLEX",
                message: format!(
                    "At most {MAX_OPERATIONS} operations may run at once on one connection."
                ),
            };
            return one(refused(&refusal));
        }
        let running = Running(connection.clone());
        let endpoint = self.endpoint.clone();
        // Taken as the operation arrives, before the awaits below: a subscription then
        // sees every change committed after the client sent it.
        let arrival = ChangesFromArrival(std::sync::Mutex::new(Some(
            endpoint.app().requests().changes_from_now(),
        )));
        let request = request.data(arrival);
        futures_util::stream::once(async move {
            let token = connection.token.get().cloned().unwrap_or_default();
            let client = connection.client.clone();
            match endpoint
                .app()
                .identity()
                .authenticate(&token, &client)
                .await
            {
                Ok(Some(caller)) => {
                    let context = RequestContext {
                        caller: Some(caller),
                        client,
                    };
                    endpoint.execute_stream(request, context, Some(token))
                }
                Ok(None) => {
                    connection.close(UNAUTHORIZED, "The session has ended; sign in again.");
                    one(error_response(AppError::Unauthenticated))
                }
                Err(err) => one(error_response(err)),
            }
        })
        .flatten()
        .map(move |response| {
            let _running = &running;
            response
        })
        .boxed()
    }
}

/// A stream of one response.
fn one(response: Response) -> BoxStream<'static, Response> {
    futures_util::stream::once(std::future::ready(response)).boxed()
}

/// The bearer token in a `connection_init` payload.
fn bearer(payload: &serde_json::Value) -> Option<String> {
    ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(key).and_then(|v| v.as_str()))
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned())
}

/// Serves one connection until it closes.
pub async fn serve(
    socket: Socket,
    endpoint: Endpoint,
    protocol: WebSocketProtocols,
    client: ClientInfo,
    sockets: Arc<Sockets>,
) {
    let limits = endpoint.app().config().limits;
    let Some(seat) = Seat::take(&sockets, limits.ws_max_connections) else {
        let mut socket = socket;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: NODE_FULL,
                reason: "This server holds as many live connections as it may; try again later."
                    .into(),
            })))
            .await;
        return;
    };
    let connection = Arc::new(Connection {
        seat,
        client,
        token: OnceLock::new(),
        operations: AtomicUsize::new(0),
        ids: Operations::default(),
        close: watch::channel(None).0,
    });
    let mut close = connection.close.subscribe();
    let (mut sink, stream) = socket.split();
    // When the client was last heard from (any frame, a pong included), in ms from start.
    let started = tokio::time::Instant::now();
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let heard_in = heard.clone();
    let reader = connection.clone();
    let incoming = stream
        .inspect(move |message| {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            heard_in.store(ms, Ordering::Relaxed);
            if message.as_ref().is_err_and(too_big) {
                reader.close(
                    MESSAGE_TOO_BIG,
                    "Message too big: a message may be as large as a request body (GATEHOUSE_MAX_BODY_BYTES).",
                );
            }
        })
        .take_while(|message| {
            std::future::ready(matches!(
                message,
                Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
            ))
        })
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                Ok(Message::Binary(bytes)) => Some(bytes),
                _ => None,
            })
        })
        .filter({
            let connection = connection.clone();
            move |message| std::future::ready(connection.admits(protocol, message))
        });
    let init = {
        let (endpoint, connection) = (endpoint.clone(), connection.clone());
        move |payload: serde_json::Value| async move {
            let token = bearer(&payload).unwrap_or_default();
            let app = endpoint.app();
            let caller = match app
                .identity()
                .authenticate(&token, &connection.client)
                .await
            {
                Ok(Some(caller)) => caller,
                refused if protocol != WebSocketProtocols::GraphQLWS => {
                    // The older protocol says why in a `connection_error` message.
                    return Err(crate::graphql::gql(
                        refused.err().unwrap_or(AppError::Unauthenticated),
                    ));
                }
                refused => {
                    if let Err(err) = refused {
                        tracing::error!(error = %err, "a WebSocket connection could not be authenticated");
                        connection
                            .close(ws_protocol::INTERNAL, "Internal server error; try again.");
                    } else {
                        connection.close(
                            ws_protocol::FORBIDDEN,
                            "Forbidden: sign in first, then send connection_init with {\"Authorization\": \"Bearer <token>\"}.",
                        );
                    }
                    // The close above ends the connection; no acknowledgement goes out.
                    return std::future::pending().await;
                }
            };
            let max = app.config().limits.ws_max_per_user;
            if !connection.seat.of_user(caller.me().user.id, max) {
                connection.close(
                    TOO_MANY_FOR_USER,
                    "Too many live connections for this user; close one first.",
                );
                // The close above ends the connection; no acknowledgement goes out.
                return std::future::pending().await;
            }
            let _ = connection.token.set(token);
            watch_session(app, caller.session_id(), &connection);
            Ok(Data::default())
        }
    };
    let executor = PerOperation {
        endpoint,
        connection: connection.clone(),
    };
    let mut protocol_stream = WebSocket::new(executor, incoming, protocol)
        .on_connection_init(init)
        .keepalive_timeout(None);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut ping = tokio::time::interval_at(started + limits.ws_ping, limits.ws_ping);
    let frame = |code: u16, why: std::borrow::Cow<'static, str>| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason(why).as_ref().into(),
        }))
    };
    loop {
        tokio::select! {
            message = protocol_stream.next() => {
                let Some(message) = message else {
                    // The client's side ended; say why when it was refused (a message too big).
                    let refused = close.borrow().clone();
                    if let Some((code, why)) = refused {
                        let _ = sink.send(frame(code, why)).await;
                    }
                    break;
                };
                if !write_ready(message, &mut protocol_stream, &mut sink, &connection.ids).await {
                    break;
                }
            },
            _ = ping.tick() => {
                let silent = started.elapsed()
                    .saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silent > limits.ws_ping * 2 {
                    // Gone without a word (a phone out of coverage): free its place.
                    tracing::debug!(?silent, "dropping a silent WebSocket connection");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            () = &mut init_deadline, if connection.token.get().is_none() => {
                let _ = sink.send(frame(INIT_TIMED_OUT, "Connection initialisation timeout".into())).await;
                break;
            }
            changed = close.changed() => {
                if changed.is_err() {
                    break;
                }
                let closing = close.borrow().clone();
                if let Some((code, why)) = closing {
                    let _ = sink.send(frame(code, why)).await;
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// Whether reading failed on a message larger than the connection allows.
fn too_big(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|err| matches!(err, tungstenite::Error::Capacity(_)))
}

/// Closes the connection when the session ends, wherever it is ended. The task ends with
/// the connection (its close channel's sender goes away with it).
fn watch_session(app: &crate::app::App, session: SessionId, connection: &Arc<Connection>) {
    let mut watching = app.identity().watch_session(session);
    let mut closed = connection.close.subscribe();
    let connection = Arc::downgrade(connection);
    tokio::spawn(async move {
        tokio::select! {
            ended = watching.ended.wait_for(|ended| *ended) => {
                if ended.is_ok()
                    && let Some(connection) = connection.upgrade()
                {
                    connection.close(UNAUTHORIZED, "The session has ended; sign in again.");
                }
            }
            _ = closed.wait_for(Option::is_some) => {}
        }
    });
}
