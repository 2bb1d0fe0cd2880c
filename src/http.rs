//! The HTTP surface: `/graphql` (POST, and GET for GraphiQL), `/healthz`, `/readyz`, `/metrics`.

use crate::app::App;
use crate::app::session::ClientInfo;
use crate::graphql::loaders::request_loader;
use crate::graphql::{GatehouseSchema, RequestContext, SessionToken, gql};
use crate::metrics::Metrics;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::WebSocketUpgrade;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_workers::Queue;
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Clone)]
struct AppState {
    app: App,
    queue: Queue,
    schema: GatehouseSchema,
    metrics: Metrics,
}

/// The router with every route and layer.
pub fn router(app: App, queue: Queue, metrics: Metrics) -> Router {
    let schema = crate::graphql::schema(Some(app.clone()));
    let state = AppState {
        app,
        queue,
        schema,
        metrics: metrics.clone(),
    };
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .layer(middleware::from_fn_with_state(metrics, track))
        .with_state(state)
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
    let (database, queue) = tokio::join!(state.app.store.ping(), state.queue.ping());
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

/// Subscriptions over WebSocket (graphql-transport-ws, and the older graphql-ws). The
/// session token comes in the `connection_init` payload as `{"Authorization": "Bearer …"}`;
/// without a valid one the connection is refused.
async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = client_info(&headers, peer);
    let app = state.app.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, state.schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|key| payload.get(key).and_then(|v| v.as_str()))
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::trim);
                    let actor = match token {
                        Some(token) => app.authenticate(token, &client).await.map_err(gql)?,
                        None => None,
                    };
                    let actor = actor.ok_or_else(|| gql(crate::app::AppError::Unauthenticated))?;
                    let mut data = async_graphql::Data::default();
                    data.insert(SessionToken(token.unwrap_or_default().to_owned()));
                    data.insert(RequestContext {
                        actor: Some(actor),
                        client,
                    });
                    data.insert(request_loader(app));
                    Ok(data)
                })
                .serve()
        })
}

fn client_info(headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    ClientInfo {
        ip: Some(peer.ip().to_string()),
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
    let limit = state.app.config.limits.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let message = format!("The request body is larger than {limit} bytes.");
        return request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_REQUEST",
            &message,
            content_type,
        );
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
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
    let client = client_info(&headers, peer);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A stale or unknown token is treated as no token: public operations still work and
    // protected ones answer UNAUTHENTICATED.
    let actor = match bearer {
        Some(token) => match state.app.authenticate(token, &client).await {
            Ok(actor) => actor,
            Err(err) => {
                tracing::error!(error = ?err, "authentication failed");
                return request_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "Something went wrong on our side; it has been logged.",
                    content_type,
                );
            }
        },
        None => None,
    };
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
        let max = state.app.config.limits.max_aliases;
        if crate::graphql::limits::count_aliases(&doc, max) > max {
            let message = format!("The query uses more than {max} aliases.");
            return request_error(
                StatusCode::BAD_REQUEST,
                "QUERY_TOO_COMPLEX",
                &message,
                content_type,
            );
        }
    }
    // Cached for this request only: a user's practices are read once per request.
    let loaders = request_loader(state.app.clone());
    let request = request.data(RequestContext { actor, client }).data(loaders);
    let mut response = state.schema.execute(request).await;
    // A document that does not parse or validate never executed: no data, no error path.
    let rejected = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if rejected {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    for error in &mut response.errors {
        if error
            .extensions
            .as_ref()
            .is_none_or(|ext| ext.get("code").is_none())
        {
            let code = match error.message.as_str() {
                m if m.contains("too complex") || m.contains("too deep") => "QUERY_TOO_COMPLEX",
                m if m.starts_with("Invalid value for argument") || m.contains("variable") => {
                    "BAD_USER_INPUT"
                }
                _ if rejected => "BAD_REQUEST",
                _ => "INTERNAL",
            };
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Json(response),
    )
        .into_response()
}
