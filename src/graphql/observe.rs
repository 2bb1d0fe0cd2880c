//! Times each root field of an operation into the metrics: a label per field of the
//! schema (never the client's operation name, which would let clients mint label values).

use crate::metrics::Metrics;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
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
