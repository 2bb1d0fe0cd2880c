//! The GraphQL API of the contract: schema, request context, types and error mapping.
//! Resolvers parse input, call `app`, and map results; no SQL here.

mod error;
pub mod limits;
pub mod loaders;
mod mutation;
mod query;
mod requests;
mod subscription;
mod types;

pub use error::{GqlResult, gql, user_errors};

use crate::app::session::ClientInfo;
use crate::app::{Actor, App};
use async_graphql::Schema;

pub type GatehouseSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema with the configured document limits.
pub fn schema(app: Option<App>) -> GatehouseSchema {
    let builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription);
    match app {
        Some(app) => {
            let limits = app.config.limits;
            builder
                .data(app)
                .limit_depth(limits.max_depth)
                .limit_complexity(limits.max_complexity)
                .finish()
        }
        None => builder.finish(),
    }
}

/// The SDL printed by `gatehouse schema` and kept in `schema/schema.graphql`.
pub fn sdl() -> String {
    schema(None).sdl()
}

/// The session token of a WebSocket connection, so that a long subscription stops when
/// its session ends.
#[derive(Clone)]
pub struct SessionToken(pub String);

/// Who is calling this request, added to each request's data by the HTTP layer.
#[derive(Clone, Default)]
pub struct RequestContext {
    pub actor: Option<Actor>,
    pub client: ClientInfo,
}
