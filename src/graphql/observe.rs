//! Counts and times GraphQL operations for `/metrics`, over HTTP and
//! WebSocket alike, by operation type, name and outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::OperationType;

use super::limits::SeenOperations;
use async_graphql::{Request, Response};

use crate::metrics::Metrics;

/// What the schema counts operations in (run by [`super::pipeline`]).
#[derive(Clone)]
pub struct Observe(pub Arc<Metrics>);

impl Observe {
    /// The per-request state.
    pub(crate) fn per_request(&self) -> PerRequest {
        PerRequest {
            metrics: self.0.clone(),
            operation: Mutex::new(None),
            doc: Arc::new(SeenOperations::default()),
            counted: AtomicBool::new(false),
        }
    }
}

/// Request data of a WebSocket operation run again in full after it was
/// planned (and counted): not counted again.
pub struct Counted;

/// One instance per request (or WebSocket operation).
pub(crate) struct PerRequest {
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

impl PerRequest {
    /// Over HTTP only: counts what no later hook counted (a request
    /// refused before parsing, e.g. a missing query).
    pub(crate) fn answered(&self) {
        self.count("refused", None);
    }

    /// Notes the operation the client asked for and lets the front door
    /// fill in the document's operations.
    pub(crate) fn prepare(&self, request: &mut Request) {
        // One item of a light WebSocket operation, or one re-run in full
        // after planning: the operation was counted when it was planned.
        if request
            .data
            .contains_key(&std::any::TypeId::of::<Arc<super::subscription::OneItem>>())
            || request
                .data
                .contains_key(&std::any::TypeId::of::<Counted>())
        {
            self.counted.store(true, Ordering::Relaxed);
        }
        if let Ok(mut op) = self.operation.lock() {
            op.clone_from(&request.operation_name);
        }
        request.data.insert(self.doc.clone());
    }

    /// A document that did not parse.
    pub(crate) fn parse_failed(&self) {
        self.count("refused", None);
    }

    /// Refusals by validation and the depth and complexity limits are
    /// counted here; a subscription counts once, when it passes (the
    /// `subscribe` hook runs before the document is even parsed).
    pub(crate) fn validated(&self, ok: bool) {
        if !ok {
            self.count("refused", None)
        } else if self.kind(self.operation().as_deref()) == "subscription" {
            self.count("ok", None)
        }
    }

    /// One execution ended after `took`.
    pub(crate) fn executed(&self, resp: &Response, took: std::time::Duration) {
        let outcome = if resp.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        self.count(outcome, Some(took));
    }
}
