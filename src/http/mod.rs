//! The HTTP surface: `/graphql` (POST, and GET for GraphiQL), `/healthz`, `/readyz`, `/metrics`.

mod pages;
mod socket;

use crate::app::App;
use crate::app::ClientInfo;
use crate::graphql::{Endpoint, RequestContext, is_rejected};
use crate::metrics::Metrics;
use async_graphql::http::GraphiQLSource;
use axum::body::Body;
use axum::extract::WebSocketUpgrade;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
}

/// The router with every route and layer.
pub fn router(app: App, queue: Queue, metrics: Metrics) -> Router {
    let state = AppState {
        endpoint: Endpoint::new(app.clone()),
        app,
        queue,
        metrics: metrics.clone(),
    };
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
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

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// A GraphQL-shaped error body with a code, for requests that never reach execution.
fn request_error(
    status: StatusCode,
    code: &str,
    message: &str,
    content_type: &'static str,
) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Json(body),
    )
        .into_response()
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

async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let wants_graphql_response = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(GRAPHQL_RESPONSE));
    let content_type = if wants_graphql_response {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let limit = state.app.config().limits.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let message = format!("The request body is larger than {limit} bytes.");
        return request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_REQUEST",
            &message,
            content_type,
        );
    };
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("The request body is not a GraphQL request in JSON: {err}");
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &message,
                content_type,
            );
        }
    };
    // Limits first: a refused document costs no database work.
    let schema = match state.endpoint.admit(&mut request) {
        Ok(schema) => schema.clone(),
        Err(refusal) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                refusal.code,
                &refusal.message,
                content_type,
            );
        }
    };
    let client = client_info(&headers, peer, &state.app.config().trusted_proxies);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A stale or unknown token is treated as no token: public operations still work and
    // protected ones answer UNAUTHENTICATED.
    let caller = match bearer {
        Some(token) => match state.app.identity().authenticate(token, &client).await {
            Ok(caller) => caller,
            Err(err) => {
                tracing::error!(error = ?err, "authentication failed");
                return request_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "INTERNAL",
                    "Something went wrong on our side; it has been logged.",
                    content_type,
                );
            }
        },
        None => None,
    };
    let context = RequestContext { caller, client };
    let response = state
        .endpoint
        .execute(&schema, request, context, bearer.map(str::to_owned))
        .await;
    let status = if is_rejected(&response) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Json(response),
    )
        .into_response()
}
