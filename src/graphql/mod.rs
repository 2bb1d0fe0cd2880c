//! The GraphQL API of the contract: schema, request context, types and error mapping.
//! Resolvers parse input, call `app`, and map results; no SQL here.

mod audit;
mod directory;
mod error;
mod identity;
mod ids;
mod import;
pub mod limits;
pub mod loaders;
mod node;
mod nulls;
mod objects;
mod observe;
mod request;
mod subscription;
mod types;

pub use error::{GqlResult, UserError, gql, user_errors};

use crate::app::ClientInfo;
use crate::app::{App, Caller};
use crate::metrics::Metrics;
use async_graphql::{ErrorExtensions as _, Response, Schema, ServerError};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _};
use limits::{DocumentKind, DocumentLimits, Refusal};
use std::panic::AssertUnwindSafe;

/// The query root: each area's fields, merged.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    directory::DirectoryQuery,
    audit::AuditQuery,
    request::RequestQuery,
);

/// The mutation root: each area's mutations, merged.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    identity::IdentityMutation,
    directory::DirectoryMutation,
    import::ImportMutation,
    request::RequestMutation,
);

pub type GatehouseSchema = Schema<Query, Mutation, subscription::Subscription>;

/// Complexity weighs lists by their size, so that the limit bounds the work of a document
/// (and with batched loading, its statements): a page counts a tenth of its `first` (20
/// when not given) times what each item selects; a short list without `first` (owners,
/// practices, license pools, sessions) a fixed estimate.
pub(crate) const ESTIMATED_OWNERS: usize = 2;
pub(crate) const ESTIMATED_PRACTICES: usize = 2;

/// The weight of a page of `first` items.
pub(crate) fn page_weight(first: Option<i32>) -> usize {
    usize::try_from(first.unwrap_or(20).clamp(1, 1000))
        .unwrap_or(20)
        .div_ceil(10)
}

/// Introspection documents run on a schema without the depth limit: [`limits::check`]
/// bounds them by their own shape. The complexity bound stays, raised to fit graphql-js's
/// standard introspection query.
const INTROSPECTION_COMPLEXITY: usize = 5_000;

/// Builds the schema with the configured document limits.
pub fn schema(app: Option<App>) -> GatehouseSchema {
    served(app, None)
}

/// The schema as served: with the app, and timing its root fields into `metrics`.
fn served(app: Option<App>, metrics: Option<Metrics>) -> GatehouseSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    );
    if let Some(metrics) = metrics {
        builder = builder.extension(observe::Observe(metrics));
    }
    match app {
        Some(app) => {
            let limits = app.config().limits;
            builder
                .data(app)
                .limit_depth(limits.max_depth)
                .limit_complexity(limits.max_complexity)
                // Documents nested up to the limit checked before parsing reach the depth
                // limit above (async-graphql's own recursion limit is 32).
                .limit_recursive_depth(self::limits::MAX_NESTING)
                .finish()
        }
        None => builder.finish(),
    }
}

/// The SDL printed by `gatehouse schema` and kept in `schema/schema.graphql`.
pub fn sdl() -> String {
    schema(None).sdl()
}

/// The session token of the operation, so that a long subscription stops when its
/// session ends.
#[derive(Clone)]
pub struct SessionToken(pub String);

/// The request changes from the moment a WebSocket operation arrived, for a subscription
/// to start from (taken by the first subscription of the operation).
pub struct ChangesFromArrival(
    pub std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<crate::app::LiveChange>>>,
);

/// Who is calling this operation, added to each operation's data by the transport.
#[derive(Clone, Default)]
pub struct RequestContext {
    pub caller: Option<Caller>,
    pub client: ClientInfo,
}

/// The one way into the schema for every transport (HTTP, each WebSocket message): the
/// document limits, a fresh context and fresh loaders per operation, panics contained.
#[derive(Clone)]
pub struct Endpoint {
    app: App,
    regular: GatehouseSchema,
    introspection: GatehouseSchema,
    limits: DocumentLimits,
    /// The schema's field types, for the nulls of field errors.
    field_types: std::sync::Arc<nulls::FieldTypes>,
}

/// An operation refused before execution, as a response with a coded error.
pub fn refused(refusal: &Refusal) -> Response {
    let code = refusal.code;
    let error =
        async_graphql::Error::new(refusal.message.clone()).extend_with(|_, e| e.set("code", code));
    without_location(error)
}

/// An operation that could not start (no session, the database down), as a response.
pub fn error_response(err: crate::app::AppError) -> Response {
    without_location(gql(err))
}

fn without_location(error: async_graphql::Error) -> Response {
    let mut error = error.into_server_error(async_graphql::Pos::default());
    error.locations.clear();
    Response::from_errors(vec![error])
}

impl Endpoint {
    pub fn new(app: App, metrics: Option<Metrics>) -> Self {
        let limits = app.config().limits;
        let mut introspection = Schema::build(
            Query::default(),
            Mutation::default(),
            subscription::Subscription,
        );
        if let Some(metrics) = &metrics {
            introspection = introspection.extension(observe::Observe(metrics.clone()));
        }
        let introspection = introspection
            .data(app.clone())
            .limit_complexity(INTROSPECTION_COMPLEXITY.max(limits.max_complexity))
            .limit_recursive_depth(self::limits::MAX_NESTING)
            .finish();
        let regular = served(Some(app.clone()), metrics);
        Self {
            field_types: std::sync::Arc::new(nulls::FieldTypes::from_sdl(&regular.sdl())),
            regular,
            introspection,
            limits: DocumentLimits {
                max_bytes: limits.max_body_bytes,
                max_aliases: limits.max_aliases,
                max_depth: limits.max_depth,
            },
            app,
        }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The schema that may run this request, or why none may. The request keeps the
    /// document parsed here, so that it is parsed once.
    pub fn admit(&self, request: &mut async_graphql::Request) -> Result<&GatehouseSchema, Refusal> {
        match limits::check(request, self.limits)? {
            DocumentKind::Introspection => Ok(&self.introspection),
            DocumentKind::Regular => Ok(&self.regular),
        }
    }

    fn with_context(
        &self,
        request: async_graphql::Request,
        context: RequestContext,
        token: Option<String>,
    ) -> async_graphql::Request {
        // Cached for this operation only: nothing a loader read outlives it.
        let view = context.caller.as_ref().map(|caller| self.app.view(caller));
        let mut request = request.data(context).data(loaders::request_loader(view));
        if let Some(token) = token {
            request = request.data(SessionToken(token));
        }
        request
    }

    /// Runs a query or mutation that `admit` let through on `schema`.
    pub async fn execute(
        &self,
        schema: &GatehouseSchema,
        request: async_graphql::Request,
        context: RequestContext,
        token: Option<String>,
    ) -> Response {
        let ran = self.ran(&request);
        let request = self.with_context(request, context, token);
        let response = AssertUnwindSafe(schema.execute(request))
            .catch_unwind()
            .await;
        ran.finish(response)
    }

    /// What finishing a response of `request` needs once the request has gone.
    fn ran(&self, request: &async_graphql::Request) -> Ran {
        Ran {
            query: request.query.clone(),
            operation: request.operation_name.clone(),
            field_types: self.field_types.clone(),
        }
    }

    /// Runs any operation (a subscription included) as a stream of responses; refusals and
    /// panics end it with one coded error.
    pub fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        context: RequestContext,
        token: Option<String>,
    ) -> BoxStream<'static, Response> {
        let schema = match self.admit(&mut request) {
            Ok(schema) => schema.clone(),
            Err(refusal) => {
                return futures_util::stream::once(async move { refused(&refusal) }).boxed();
            }
        };
        let ran = self.ran(&request);
        let request = self.with_context(request, context, token);
        AssertUnwindSafe(schema.execute_stream(request))
            .catch_unwind()
            .map(move |item| ran.finish(item))
            .boxed()
    }
}

/// The document an operation ran, for the responses it gives.
struct Ran {
    query: String,
    operation: Option<String>,
    field_types: std::sync::Arc<nulls::FieldTypes>,
}

impl Ran {
    /// A response as it goes out: a panic turned into INTERNAL, every error coded, the
    /// nulls of field errors in place.
    fn finish(&self, item: Result<Response, Box<dyn std::any::Any + Send>>) -> Response {
        let mut response = with_codes(item.unwrap_or_else(|panic| internal_response(&panic)));
        nulls::propagate(
            &mut response,
            &self.query,
            self.operation.as_deref(),
            &self.field_types,
        );
        response
    }
}

fn internal_response(panic: &Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "an operation panicked; only it failed");
    refused(&Refusal {
        code: "INTERNAL",
        message: "Something went wrong on our side; it has been logged.".into(),
    })
}

/// Gives every error a code: the executor's own refusals (parse, validation, limits)
/// carry none.
fn with_codes(mut response: Response) -> Response {
    // Every root field skipped (`@skip`, `@include`): the operation ran and selected
    // nothing, which is an empty map, where async-graphql gives null.
    if response.data == async_graphql::Value::Null && response.errors.is_empty() {
        response.data = async_graphql::Value::Object(Default::default());
    }
    let rejected = is_rejected(&response);
    for error in &mut response.errors {
        if error
            .extensions
            .as_ref()
            .is_none_or(|ext| ext.get("code").is_none())
        {
            let code = error_code(error, rejected);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
    response
}

fn error_code(error: &ServerError, rejected: bool) -> &'static str {
    match error.message.as_str() {
        m if m.contains("too complex")
            || m.contains("too deep")
            || m.starts_with("The recursion depth of the query") =>
        {
            "QUERY_TOO_COMPLEX"
        }
        m if m.starts_with("Invalid value for argument")
            || m.contains("variable")
            || m.starts_with("Failed to parse") =>
        {
            "BAD_USER_INPUT"
        }
        _ if rejected => "BAD_REQUEST",
        _ => "INTERNAL",
    }
}

/// Whether the selection asks for `totalCount` (counting costs a read of every match).
pub(crate) fn wants_total(ctx: &async_graphql::Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// A document that does not parse or validate never executed: no data, no error path.
pub fn is_rejected(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}
