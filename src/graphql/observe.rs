//! Counts and times GraphQL operations for `/metrics`, over HTTP and
//! WebSocket alike, by operation type, name and outcome.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextSubscribe,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Response, ServerResult, Variables};

use crate::metrics::Metrics;

/// The extension factory to register on the schema.
pub struct Observe(pub Arc<Metrics>);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            metrics: self.0.clone(),
            doc: Mutex::new(Vec::new()),
            ran: Mutex::new(false),
        })
    }
}

/// One instance per request (or WebSocket operation).
struct PerRequest {
    metrics: Arc<Metrics>,
    /// The operations of the parsed document: name and type.
    doc: Mutex<Vec<(Option<String>, OperationType)>>,
    /// Whether execution began (else the request was refused before).
    ran: Mutex<bool>,
}

impl PerRequest {
    /// The type of the operation that runs (or would run) as `name`.
    fn kind(&self, name: Option<&str>) -> &'static str {
        let Ok(doc) = self.doc.lock() else {
            return "unknown";
        };
        let ty = match name {
            Some(n) => doc
                .iter()
                .find(|(op, _)| op.as_deref() == Some(n))
                .map(|(_, t)| *t),
            None => doc.first().map(|(_, t)| *t),
        };
        match ty {
            Some(OperationType::Query) => "query",
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            None => "unknown",
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequest {
    /// Over HTTP only: counts requests refused before execution (parse,
    /// validation, limits); executed ones are counted by `execute`.
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let resp = next.run(ctx).await;
        let ran = self.ran.lock().map(|r| *r).unwrap_or(true);
        if !ran {
            self.metrics
                .graphql_operation(self.kind(None), None, "refused", None);
        }
        resp
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if let Ok(mut ops) = self.doc.lock() {
            *ops = doc
                .operations
                .iter()
                .map(|(name, op)| (name.map(|n| n.to_string()), op.node.ty))
                .collect();
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Ok(mut ran) = self.ran.lock() {
            *ran = true;
        }
        let started = Instant::now();
        let resp = next.run(ctx, operation_name).await;
        let outcome = if resp.errors.is_empty() { "ok" } else { "error" };
        self.metrics.graphql_operation(
            self.kind(operation_name),
            operation_name,
            outcome,
            Some(started.elapsed()),
        );
        resp
    }

    /// A subscription counts once, when it starts.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        if let Ok(mut ran) = self.ran.lock() {
            *ran = true;
        }
        // The hook is not told the operation name; a document that reaches
        // it runs one subscription, so take that one's.
        let name = self.doc.lock().ok().and_then(|doc| {
            doc.iter()
                .find(|(_, t)| *t == OperationType::Subscription)
                .and_then(|(n, _)| n.clone())
        });
        self.metrics
            .graphql_operation("subscription", name.as_deref(), "ok", None);
        next.run(ctx, stream)
    }
}
