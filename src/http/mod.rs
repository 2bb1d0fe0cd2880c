//! The HTTP surface: `/graphql` (POST, and GET for GraphiQL), `/healthz`, `/readyz`, `/metrics`.

mod apq;
mod graphql;
mod pages;
mod socket;

use crate::app::App;
use crate::app::ClientInfo;
use crate::graphql::Endpoint;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_workers::Queue;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

#[derive(Clone)]
struct AppState {
    app: App,
    queue: Queue,
    endpoint: Endpoint,
    metrics: Metrics,
    persisted: std::sync::Arc<apq::PersistedQueries>,
}

/// The router with every route and layer.
pub fn router(app: App, queue: Queue, metrics: Metrics) -> Router {
    let state = AppState {
        endpoint: Endpoint::new(app.clone()),
        app,
        queue,
        metrics: metrics.clone(),
        persisted: Default::default(),
    };
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .merge(pages::routes())
        .layer(middleware::from_fn_with_state(metrics, track))
        // The last layer is the outermost: every request gets an id (or keeps the one its
        // proxy set), every log line inside it carries the id, and the response tells it.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The span of one request: its id, method and route (never the query string).
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
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

async fn render_metrics(State(state): State<AppState>) -> Response {
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
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        // A message larger than a request body would be closes the connection; small
        // buffers keep an idle connection cheap.
        .max_message_size(limit + 1024)
        .max_frame_size(limit + 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |ws| socket::serve(ws, state.endpoint, protocol, client))
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
