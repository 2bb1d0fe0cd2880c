//! The HTTP surface: `/graphql` (POST, and GET for GraphiQL), `/healthz`, `/readyz`, `/metrics`.

mod apq;
mod graphql;
mod pages;
mod seats;
mod socket;
pub mod tls;
mod ws_protocol;

use crate::app::App;
use crate::app::ClientInfo;
use crate::graphql::Endpoint;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_workers::Queue;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tracing::Instrument as _;

const X_REQUEST_ID: &str = "x-request-id";
use tower_http::trace::TraceLayer;

#[derive(Clone)]
struct AppState {
    app: App,
    queue: Queue,
    endpoint: Endpoint,
    metrics: Metrics,
    persisted: std::sync::Arc<apq::PersistedQueries>,
    sockets: std::sync::Arc<socket::Sockets>,
}

/// The router with every route and layer.
pub fn router(app: App, queue: Queue, metrics: Metrics) -> Router {
    let state = AppState {
        endpoint: Endpoint::new(app.clone(), Some(metrics.clone())),
        app,
        queue,
        metrics: metrics.clone(),
        persisted: Default::default(),
        sockets: std::sync::Arc::new(socket::Sockets::new(metrics.ws_connections.clone())),
    };
    let cors = cors(&state.app.config().cors_origins);
    Router::new()
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .layer(tower::util::option_layer(cors)),
        )
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .merge(pages::routes())
        .layer(middleware::from_fn_with_state(metrics, track))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            strict_transport,
        ))
        // The last layer is the outermost: every request gets an id (or keeps the one its
        // proxy set), every log line inside it and every job it causes carries the id,
        // and the response tells it.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Cross-origin access to `/graphql` for the origins configured (none: same-origin pages
/// only). Callers authenticate with a bearer token, never a cookie, so an origin allowed
/// gains nothing a script elsewhere could not do with the same token.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| origin.parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// Over HTTPS, browsers are told to use nothing else for a year.
async fn strict_transport(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if state.app.config().https() {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The longest request id taken from a client; a longer or odd one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// Gives the request an id: the `X-Request-Id` its proxy or client set when it is a
/// plain token (letters, digits, `-`, `_`, `.`, `:`; at most 128), else a new UUID. The
/// id is the current request id while the request runs, and answered in the response.
async fn request_id(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| plain_id(id))
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("a plain id is a valid header value");
    request.headers_mut().insert(X_REQUEST_ID, value.clone());
    let mut response = gatehouse_workers::with_request_id(Some(id), next.run(request)).await;
    response.headers_mut().insert(X_REQUEST_ID, value);
    response
}

fn plain_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The span of one request: its id, method and route (never the query string).
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Counts and times every request by its route template (never the raw path, which
/// would let clients create unbounded label values).
async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}

async fn readyz(State(state): State<AppState>) -> Response {
    let (database, queue) = tokio::join!(state.app.database_ready(), state.queue.ping());
    if let Err(err) = &database {
        tracing::warn!(error = %err, "database not reachable");
    }
    if let Err(err) = &queue {
        tracing::warn!(error = %err, "queue not reachable");
    }
    let ready = database.is_ok() && queue.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let say = |ok: bool| if ok { "ok" } else { "unreachable" };
    let body = format!(
        "database: {}\nqueue: {}\n",
        say(database.is_ok()),
        say(queue.is_ok())
    );
    (status, body).into_response()
}

/// The metrics, with what the database and the queue hold read now (a part that does not
/// answer keeps its last figures, and the scrape still succeeds).
async fn render_metrics(State(state): State<AppState>) -> Response {
    let (gauges, depth) = tokio::join!(state.app.gauges(), state.queue.depth());
    if let Err(err) = &gauges {
        tracing::warn!(error = %err, "metrics: cannot read the database's figures");
    }
    if let Err(err) = &depth {
        tracing::warn!(error = %err, "metrics: cannot read the queue's figures");
    }
    state.metrics.refresh(
        state.app.stats(),
        gauges.as_ref().ok(),
        depth.ok(),
        state.app.now(),
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Subscriptions (and any other operation) over WebSocket: graphql-transport-ws, and the
/// older graphql-ws.
async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = socket::protocol(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "Ask for the graphql-transport-ws (or graphql-ws) subprotocol.",
        )
            .into_response();
    };
    let client = client_info(&headers, peer, &state.app.config().trusted_proxies);
    let limit = state.app.config().limits.max_body_bytes;
    // The connection outlives the upgrade request: its operations, and the jobs they
    // cause, keep the upgrade's request id.
    let request_id = gatehouse_workers::current_request_id();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        // A message larger than a request body would be closes the connection; small
        // buffers keep an idle connection cheap.
        .max_message_size(limit + 1024)
        .max_frame_size(limit + 1024)
        .write_buffer_size(8 * 1024)
        // Grown on demand for a larger message (clients send a few hundred bytes); 128
        // KiB up front by default, which made every idle dashboard cost 130 KB.
        .read_buffer_size(1024)
        .on_upgrade(move |ws| {
            let span = tracing::info_span!("socket", request_id = request_id.as_deref());
            gatehouse_workers::with_request_id(
                request_id,
                socket::serve(ws, state.endpoint, protocol, client, state.sockets),
            )
            .instrument(span)
        })
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// address that the nearest untrusted hop in X-Forwarded-For connected from (the entries
/// to its left could be written by anyone).
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut ip = peer.ip().to_canonical();
    if !is_trusted(&ip) {
        return ip;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(hop) = hop.parse::<IpAddr>() else {
            break;
        };
        ip = hop.to_canonical();
        if !is_trusted(&ip) {
            break;
        }
    }
    ip
}

pub fn client_info(headers: &HeaderMap, peer: SocketAddr, trusted: &[ipnet::IpNet]) -> ClientInfo {
    ClientInfo {
        ip: Some(client_ip(headers, peer, trusted).to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    }
}
