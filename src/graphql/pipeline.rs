//! The schema's one extension: every per-request concern — spans, error
//! codes, metrics, persisted queries, limits — in one chain of hooks.
//!
//! async-graphql calls every extension's `resolve` hook for every field and
//! every list item, whether or not the extension overrides it: with five
//! extensions registered, a nested query paid five boxed futures (and the
//! tracing extension a span and a schema lookup) per field, which made the
//! hooks, not the resolvers, the largest share of a nested query's CPU. One
//! extension pays one hook per field, and opens a span only where it tells
//! an operator something:
//!
//! - spans `request`, `execute` and `validation` for every operation (the
//!   HTTP request's span, with its request id, is their parent; for a
//!   subscription, `execute` per item);
//! - a `field` span (`path`, `parent_type`, `return_type`) for each root
//!   field — a mutation, a query's entry point: where the time goes;
//! - an `error` event (info level, with its path) for every field that
//!   fails, at any depth.
//!
//! The order of the old chain is kept: spans outermost, then error codes,
//! then metrics, then persisted queries, then the limits.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextResolve, NextSubscribe, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tracing::Instrument;

use super::codes::{fill, with_code};
use super::limits::{Check, LimitsExtension};
use super::observe::{Observe, PerRequest};
use super::persisted::PersistedQueries;

/// Where the spans go (the target async-graphql's own extension used, so
/// existing log filters keep working).
const TARGET: &str = "async_graphql::graphql";

/// The extension factory registered on the schema.
pub struct Pipeline {
    /// The limits.
    pub limits: LimitsExtension,
    /// Operation metrics, when the server counts them.
    pub observe: Option<Observe>,
    /// Automatic persisted queries (None: off).
    pub persisted: Option<PersistedQueries>,
    /// Test-only: a field selected under the alias `panicProbe` panics in
    /// its resolver (see [`super::SchemaExtras::panic_probe`]).
    pub panic_probe: bool,
}

impl ExtensionFactory for Pipeline {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Hooks {
            limits: self.limits.per_request(),
            observe: self.observe.as_ref().map(Observe::per_request),
            persisted: self.persisted.clone(),
            panic_probe: self.panic_probe,
        })
    }
}

/// One request's (or WebSocket operation's) hooks and state.
struct Hooks {
    limits: Check,
    observe: Option<PerRequest>,
    persisted: Option<PersistedQueries>,
    panic_probe: bool,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Hooks {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(target: TARGET, "request");
        let resp = next.run(ctx).instrument(span).await;
        let resp = self.limits.cap_errors(resp);
        if let Some(o) = &self.observe {
            o.answered();
        }
        fill(resp)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // No span around the stream: entered at every poll of every
        // subscriber, it would cost the fan-out per delivered frame; each
        // item's `execute` span is there.
        next.run(ctx, stream).map(fill).boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(o) = &self.observe {
            o.prepare(&mut request);
        }
        // A persisted query's document is filled in before the front door,
        // and remembered only once the front door admitted it (a refused
        // one would otherwise pin its bytes).
        let remember = match &self.persisted {
            Some(store) => store.resolve(&mut request)?,
            None => None,
        };
        self.limits.front_door(&mut request)?;
        let request = next.run(ctx, request).await?;
        if let (Some(store), Some(hash)) = (&self.persisted, remember) {
            store.remember(hash, &request.query);
        }
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // The front door hands the library a parsed document, so this runs
        // only when it did not (never, today); kept for completeness.
        next.run(ctx, query, variables).await.map_err(|e| {
            if let Some(o) = &self.observe {
                o.parse_failed();
            }
            with_code(e, "GRAPHQL_PARSE_FAILED")
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let span = tracing::info_span!(target: TARGET, "validation");
        let result = self
            .limits
            .validated(ctx, next.run(ctx).instrument(span).await);
        if let Some(o) = &self.observe {
            o.validated(result.is_ok());
        }
        result.map_err(|errs| {
            errs.into_iter()
                .map(|e| with_code(e, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // A subscription item another socket already ran for the same
        // selection is answered before any other work (see `share`).
        if let Some(resp) = super::share::answer_from_cache(ctx) {
            return resp;
        }
        let span = tracing::info_span!(target: TARGET, "execute");
        let started = Instant::now();
        let resp = self
            .limits
            .execute(ctx, next.run(ctx, operation_name))
            .instrument(span)
            .await;
        if let Some(o) = &self.observe {
            o.executed(&resp, started.elapsed());
        }
        resp
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if self.panic_probe && info.alias == Some("panicProbe") {
            panic!("a resolver panicked on purpose (panicProbe)");
        }
        let root = info.path_node.parent.is_none();
        let span = root.then(|| {
            tracing::info_span!(
                target: TARGET,
                "field",
                path = %info.path_node,
                parent_type = %info.parent_type,
                return_type = %info.return_type,
            )
        });
        // The path is only rendered when the field fails.
        let path = info.path_node;
        let fut = async {
            let out = self.limits.resolve(ctx, info, next).await;
            if let Err(e) = &out {
                tracing::info!(target: TARGET, path = %path, error = %e.message, "error");
            }
            out
        };
        match span {
            Some(span) => fut.instrument(span).await,
            None => fut.await,
        }
    }
}
