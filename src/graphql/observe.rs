//! Counts and times GraphQL operations for `/metrics`, over HTTP and
//! WebSocket alike, by operation type, name and outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};

use super::limits::SeenOperations;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::metrics::Metrics;

/// The extension factory to register on the schema.
pub struct Observe(pub Arc<Metrics>);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            metrics: self.0.clone(),
            operation: Mutex::new(None),
            doc: Arc::new(SeenOperations::default()),
            counted: AtomicBool::new(false),
        })
    }
}

/// One instance per request (or WebSocket operation).
struct PerRequest {
    metrics: Arc<Metrics>,
    /// The operation name the client asked to run, if any.
    operation: Mutex<Option<String>>,
    /// The operations of the parsed document: name and type, filled in by
    /// the limits' front door (which parses the document, and may refuse
    /// it before the library's parse hook runs).
    doc: Arc<SeenOperations>,
    /// Whether this request has been counted (each is, exactly once).
    counted: AtomicBool,
}

impl PerRequest {
    /// The operation name the client chose.
    fn operation(&self) -> Option<String> {
        self.operation.lock().ok().and_then(|o| o.clone())
    }

    /// The type of the operation that runs (or would run) as `name`.
    fn kind(&self, name: Option<&str>) -> &'static str {
        let Ok(doc) = self.doc.0.lock() else {
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

    /// Counts the request once: later calls do nothing.
    fn count(&self, outcome: &str, took: Option<std::time::Duration>) {
        if self.counted.swap(true, Ordering::Relaxed) {
            return;
        }
        let name = self.operation().or_else(|| {
            // Without a chosen name a valid document has one operation.
            self.doc
                .0
                .lock()
                .ok()
                .and_then(|d| d.first().and_then(|(n, _)| n.clone()))
        });
        self.metrics
            .graphql_operation(self.kind(name.as_deref()), name.as_deref(), outcome, took);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequest {
    /// Over HTTP only: counts what no later hook counted (a request
    /// refused before parsing, e.g. a missing query).
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let resp = next.run(ctx).await;
        self.count("refused", None);
        resp
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Ok(mut op) = self.operation.lock() {
            op.clone_from(&request.operation_name);
        }
        request.data.insert(self.doc.clone());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        match next.run(ctx, query, variables).await {
            Ok(doc) => Ok(doc),
            Err(e) => {
                self.count("refused", None);
                Err(e)
            }
        }
    }

    /// Refusals by validation and the depth and complexity limits are
    /// counted here; a subscription counts once, when it passes (the
    /// `subscribe` hook runs before the document is even parsed).
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        match &result {
            Err(_) => self.count("refused", None),
            Ok(_) if self.kind(self.operation().as_deref()) == "subscription" => {
                self.count("ok", None)
            }
            Ok(_) => {}
        }
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let started = Instant::now();
        let resp = next.run(ctx, operation_name).await;
        let outcome = if resp.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        self.count(outcome, Some(started.elapsed()));
        resp
    }
}
