//! GraphQL over HTTP: `POST /graphql` (application/json) and `GET /graphql` (queries in the
//! URL, or GraphiQL for a browser), answered as the GraphQL-over-HTTP specification says
//! for the media type the client accepts; automatic persisted queries for both.

use super::apq::Persisted;
use super::{AppState, client_info};
use crate::graphql::{RequestContext, is_rejected};
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::net::SocketAddr;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The media type the client accepts, which decides the status of a refused document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepts {
    /// `application/graphql-response+json`: a document that cannot run is a 400 without
    /// `data`.
    GraphqlResponse,
    /// `application/json` alone: every well-formed GraphQL request is a 200 (the legacy
    /// behaviour clients of that type expect).
    Json,
    /// No preference: JSON, and a document that cannot run is a 400.
    Either,
}

impl Accepts {
    fn of(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if accept.contains(GRAPHQL_RESPONSE) {
            Accepts::GraphqlResponse
        } else if accept.contains("application/json") {
            Accepts::Json
        } else {
            Accepts::Either
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Accepts::GraphqlResponse => GRAPHQL_RESPONSE,
            _ => "application/json",
        }
    }

    /// A GraphQL-shaped error for a request that never reached execution.
    fn refuse(self, status: StatusCode, code: &str, message: &str) -> Response {
        let body = serde_json::json!({
            "errors": [{ "message": message, "extensions": { "code": code } }]
        });
        self.answer(status, &body)
    }

    fn answer(self, status: StatusCode, body: &serde_json::Value) -> Response {
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type()),
            )],
            axum::Json(body),
        )
            .into_response()
    }
}

/// `POST /graphql`: a JSON body `{query, operationName, variables, extensions}`.
pub(super) async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let accepts = Accepts::of(&headers);
    if let Err(message) = json_content_type(&headers) {
        return accepts.refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST", message);
    }
    let limit = state.app.config().limits.max_body_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let message = format!("The request body is larger than {limit} bytes.");
        return accepts.refuse(StatusCode::PAYLOAD_TOO_LARGE, "BAD_REQUEST", &message);
    };
    if body.trim_ascii_start().starts_with(b"[") {
        let message = "Batched requests are not accepted: send one operation per request.";
        return accepts.refuse(StatusCode::BAD_REQUEST, "BAD_REQUEST", message);
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("The request body is not a GraphQL request in JSON: {err}");
            return accepts.refuse(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
        }
    };
    run(&state, peer, &headers, accepts, request, false).await
}

/// `GET /graphql`: a query in the URL (`query`, `operationName`, and `variables` and
/// `extensions` as URL-encoded JSON); without one, GraphiQL for a browser.
pub(super) async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let accepts = Accepts::of(&headers);
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("query").is_none() && param("extensions").is_none() {
        // A browser (or anything that does not ask for JSON) gets the GraphiQL page.
        let html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let browser = html || accepts == Accepts::Either;
        if browser {
            return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
        }
        return accepts.refuse(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Give the GraphQL document in the query parameter.",
        );
    }
    let mut request = async_graphql::Request::new(param("query").unwrap_or_default());
    if let Some(name) = param("operationName").filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    for (name, target) in [("variables", 0), ("extensions", 1)] {
        let Some(text) = param(name).filter(|t| !t.is_empty()) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            let message = format!("The {name} parameter is not JSON.");
            return accepts.refuse(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
        };
        if target == 0 {
            request = request.variables(async_graphql::Variables::from_json(value));
        } else if let Ok(extensions) = serde_json::from_value(value) {
            request.extensions = extensions;
        } else {
            return accepts.refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The extensions parameter is not a JSON object.",
            );
        }
    }
    run(&state, peer, &headers, accepts, request, true).await
}

/// The request's content type must be JSON in UTF-8.
fn json_content_type(headers: &HeaderMap) -> Result<(), &'static str> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or("Send the request as application/json.")?
        .to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    if parts.next() != Some("application/json") {
        return Err("Send the request as application/json.");
    }
    for part in parts {
        if let Some(charset) = part.strip_prefix("charset=")
            && !matches!(charset.trim_matches('"'), "utf-8" | "utf8")
        {
            return Err("Send the request in UTF-8.");
        }
    }
    Ok(())
}

/// Admits, authenticates and runs one request; over GET only a query may run.
async fn run(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    accepts: Accepts,
    mut request: async_graphql::Request,
    over_get: bool,
) -> Response {
    match state.persisted.resolve(&mut request) {
        Persisted::Ready => {}
        Persisted::Refused { code, message } => {
            // Apollo clients read these as "send the document too", so they answer 200.
            let body = serde_json::json!({
                "errors": [{ "message": message, "extensions": { "code": code } }]
            });
            return accepts.answer(StatusCode::OK, &body);
        }
    }
    // Limits first: a refused document costs no database work.
    let schema = match state.endpoint.admit(&mut request) {
        Ok(schema) => schema.clone(),
        Err(refusal) => {
            return accepts.refuse(StatusCode::BAD_REQUEST, refusal.code, &refusal.message);
        }
    };
    if over_get
        && let Some(kind) = operation_type(&mut request).filter(|t| *t != OperationType::Query)
    {
        let what = if kind == OperationType::Mutation {
            "A mutation"
        } else {
            "A subscription"
        };
        let mut response = accepts.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            &format!("{what} cannot run over GET; use POST."),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    let client = client_info(headers, peer, &state.app.config().trusted_proxies);
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
                return accepts.refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "INTERNAL",
                    "Something went wrong on our side; it has been logged.",
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
    let rejected = is_rejected(&response);
    let mut body = serde_json::to_value(&response).unwrap_or_default();
    if rejected && accepts != Accepts::Json {
        // Nothing ran: no `data` entry at all.
        if let Some(object) = body.as_object_mut() {
            object.remove("data");
        }
    }
    let status = if rejected && accepts != Accepts::Json {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    accepts.answer(status, &body)
}

/// The type of the operation a parsed request would run, when it names one that exists.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operations = &document.operations;
    match (name, operations) {
        (Some(name), ops) => ops
            .iter()
            .find(|(op_name, _)| op_name.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op.node.ty),
        (None, ops) => ops.iter().next().map(|(_, op)| op.node.ty),
    }
}
