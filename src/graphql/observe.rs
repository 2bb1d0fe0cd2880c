//! Each operation in a span of its own, and each root field timed into the metrics: a
//! label per field of the schema (never the client's operation name, which would let
//! clients mint label values).

use crate::metrics::Metrics;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{Response, ServerResult, Value};
use std::sync::Arc;
use std::time::Instant;

pub struct Observe(pub Metrics);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observer(self.0.clone()))
    }
}

struct Observer(Metrics);

#[async_trait::async_trait]
impl Extension for Observer {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let name = operation_name.map(|n| n.chars().take(100).collect::<String>());
        let span = tracing::info_span!(
            "graphql",
            otel.name = %format_args!("graphql {}", name.as_deref().unwrap_or("anonymous")),
            operation = name.as_deref(),
        );
        tracing::Instrument::instrument(next.run(ctx, operation_name), span).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        let (parent, field) = (info.parent_type.to_owned(), info.name.to_owned());
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.0
            .graphql_duration
            .with_label_values(&[parent.as_str(), field.as_str(), outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
