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

use crate::error::code;
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
use super::limits::{Check, Counting, LimitsExtension};
use super::observe::{Observe, PerRequest};
use super::persisted::PersistedQueries;

/// Where the spans go (the target async-graphql's own extension used, so
/// existing log filters keep working).
const TARGET: &str = "async_graphql::graphql";

/// The extension factory registered on the schema.
#[derive(Clone)]
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
        Arc::new(self.hooks())
    }
}

impl Pipeline {
    fn hooks(&self) -> Hooks {
        Hooks {
            limits: self.limits.per_request(),
            observe: self.observe.as_ref().map(Observe::per_request),
            persisted: self.persisted.clone(),
            #[cfg(feature = "test-hooks")]
            panic_probe: self.panic_probe,
        }
    }

    /// Runs one HTTP query on `lean`, this schema without the extension,
    /// doing outside the library what the hooks do inside it.
    ///
    /// async-graphql calls an extension's `resolve` hook for every field
    /// and list item once a schema has any extension, building a
    /// `ResolveInfo` (a registry lookup, two type names formatted per list
    /// item) and a chain of boxed futures each time: a quarter of a nested
    /// query's CPU, even with a hook that does nothing
    /// (docs/benchmarks.md). What the hook did per field is done here
    /// otherwise: the answer's size is counted by the fields that can be
    /// large ([`Counted`](super::limits::Counted)) and measured again once
    /// serialized, and each failed field's `error` event is logged from
    /// the answer. The root field's span is the one thing left out (the
    /// operation's `execute` span remains).
    ///
    /// The caller sends only what the lean schema answers exactly as the
    /// full one ([`lean_may_run`]): one query, no introspection.
    pub async fn run_lean(
        &self,
        lean: &super::Lean,
        full: &super::AppSchema,
        request: Request,
    ) -> Response {
        let hooks = self.hooks();
        let span = tracing::info_span!(target: TARGET, "request");
        let ran = hooks
            .lean(&lean.schema, &lean.roots, request)
            .instrument(span.clone())
            .await;
        match ran {
            Lean::Ran(resp) => span.in_scope(|| {
                let resp = hooks.limits.cap_errors(resp);
                if let Some(o) = &hooks.observe {
                    o.answered();
                }
                fill(resp)
            }),
            Lean::Full(request) => full.execute(request).await,
        }
    }
}

/// The return type of each `Query` field, as the SDL writes it (the
/// `field` span names it; the full schema's hook reads it from the
/// registry, which a built schema does not expose). Shared: it rides in
/// the state every request and WebSocket connection clones.
pub type RootTypes = std::sync::Arc<std::collections::HashMap<String, String>>;

/// [`RootTypes`] of a schema's SDL.
pub fn root_types(sdl: &str) -> RootTypes {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let Ok(doc) = async_graphql::parser::parse_schema(sdl) else {
        return RootTypes::default();
    };
    let roots = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) if t.node.name.node == "Query" => match &t.node.kind {
                TypeKind::Object(o) => Some(&o.fields),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .map(|f| (f.node.name.node.to_string(), f.node.ty.node.to_string()))
        .collect();
    std::sync::Arc::new(roots)
}

/// The response key and name of the operation's one root field, if it
/// has exactly one (and it is a field, not a fragment); `Err` when the
/// library would not find the operation (async-graphql's
/// `prepare_request`: a name given for a document of one anonymous
/// operation or not among its operations; none given among several).
fn root_field(request: &mut Request) -> Result<Option<(String, String)>, ()> {
    use async_graphql::parser::types::{DocumentOperations, Selection};
    let name = request.operation_name.clone();
    let doc = request.parsed_query().map_err(|_| ())?;
    let op = match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name.as_str()).ok_or(())?,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().ok_or(())?
        }
        _ => return Err(()),
    };
    Ok(match op.node.selection_set.node.items.as_slice() {
        [item] => match &item.node {
            Selection::Field(f) => Some((
                f.node.response_key().node.to_string(),
                f.node.name.node.to_string(),
            )),
            _ => None,
        },
        _ => None,
    })
}

/// Whether a document may run on the lean schema: surely a query (no
/// `mutation` or `subscription` anywhere in its text) that asks for no
/// introspection (no `__schema`, no `__type` other than `__typename`),
/// and not empty (a persisted query's hash alone). A document that merely
/// mentions one of these words, in a string say, takes the full schema,
/// which answers everything.
pub fn lean_may_run(query: &str) -> bool {
    !query.trim().is_empty()
        && !query.contains("mutation")
        && !query.contains("subscription")
        && !query.contains("__schema")
        && query
            .match_indices("__type")
            .all(|(at, _)| query[at..].starts_with("__typename"))
}

/// One request's (or WebSocket operation's) hooks and state.
struct Hooks {
    limits: Check,
    observe: Option<PerRequest>,
    persisted: Option<PersistedQueries>,
    #[cfg(feature = "test-hooks")]
    panic_probe: bool,
}

impl Hooks {
    /// What `prepare_request` does before the library's own preparation
    /// (which adds nothing): metrics, the persisted document, the front
    /// door. Returns the hash to remember once admitted.
    fn admit(&self, request: &mut Request) -> ServerResult<Option<String>> {
        if let Some(o) = &self.observe {
            o.prepare(request);
        }
        // A persisted query's document is filled in before the front door,
        // and remembered only once the front door admitted it (a refused
        // one would otherwise pin its bytes).
        let remember = match &self.persisted {
            Some(store) => store.resolve(request)?,
            None => None,
        };
        self.limits.front_door(request)?;
        Ok(remember)
    }

    fn remember(&self, request: &Request, hash: Option<String>) {
        if let (Some(store), Some(hash)) = (&self.persisted, hash) {
            store.remember(hash, &request.query);
        }
    }

    /// The lean run of [`Pipeline::run_lean`], up to the answer.
    async fn lean(
        &self,
        schema: &super::AppSchema,
        roots: &RootTypes,
        mut request: Request,
    ) -> Lean {
        let remember = match self.admit(&mut request) {
            Ok(r) => r,
            Err(e) => return Lean::Ran(Response::from_errors(vec![e])),
        };
        self.remember(&request, remember);
        let mark = request
            .data
            .get(&std::any::TypeId::of::<Arc<Executed>>())
            .and_then(|d| d.downcast_ref::<Arc<Executed>>())
            .cloned();
        // An operation the library would not find (an unknown name, none
        // given among several) is refused after validation, with codes the
        // hooks give: the full schema answers it.
        let Ok(root) = root_field(&mut request) else {
            return Lean::Full(request);
        };
        self.limits.restart_count();
        let span = tracing::info_span!(target: TARGET, "execute");
        // The root field's span, when there is one root field: with several,
        // running concurrently, the `execute` span is the finest there is.
        let field = root.map(|(path, name)| {
            tracing::info_span!(
                target: TARGET,
                parent: &span,
                "field",
                path = %path,
                parent_type = "Query",
                return_type = %roots.get(&name).map_or("", String::as_str),
            )
        });
        let request = request.data(Counting(self.limits.clone()));
        let started = Instant::now();
        let run = schema.execute(request);
        let mut resp = match field {
            Some(field) => run.instrument(field).instrument(span).await,
            None => run.instrument(span).await,
        };
        // Validation refused it (or the library's complexity limit): errors,
        // none with a path, and no data. (No data and no error: every root
        // field was skipped, which is an execution.)
        let executed = !matches!(resp.data, Value::Null)
            || resp.errors.is_empty()
            || resp.errors.iter().any(|e| !e.path.is_empty());
        if let Some(o) = &self.observe {
            o.validated(executed);
        }
        if !executed {
            resp.errors = resp
                .errors
                .into_iter()
                .map(|e| self.limits.validation_error(e))
                .collect();
            return Lean::Ran(resp);
        }
        if let Some(mark) = mark {
            mark.set();
        }
        if self.limits.exceeded() {
            // Whatever was built is dropped here, not sent in part.
            resp = Response::from_errors(vec![self.limits.too_large()]);
        }
        for e in &resp.errors {
            let path = e
                .path
                .iter()
                .map(|seg| match seg {
                    async_graphql::PathSegment::Field(name) => name.clone(),
                    async_graphql::PathSegment::Index(i) => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".");
            tracing::info!(target: TARGET, path = %path, error = %e.message, "error");
        }
        if let Some(o) = &self.observe {
            o.executed(&resp, started.elapsed());
        }
        Lean::Ran(resp)
    }
}

/// How [`Hooks::lean`] ended.
enum Lean {
    /// With this answer.
    Ran(Response),
    /// Admitted, but for the full schema to run.
    Full(Request),
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
        let remember = self.admit(&mut request)?;
        let request = next.run(ctx, request).await?;
        self.remember(&request, remember);
        // A WebSocket operation being planned runs its items later from
        // this text (a persisted query's, once looked up), not the hash.
        if let Some(plan) = request
            .data
            .get(&std::any::TypeId::of::<Arc<super::subscription::Plan>>())
            .and_then(|d| d.downcast_ref::<Arc<super::subscription::Plan>>())
        {
            plan.ran(&request.query);
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
            with_code(e, code::GRAPHQL_PARSE_FAILED)
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
                .map(|e| with_code(e, code::GRAPHQL_VALIDATION_FAILED))
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
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
        #[cfg(feature = "test-hooks")]
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

/// Set by the limits extension when an operation reached execution: a
/// response without it was refused before (parse, validation, limits) and
/// carries no `data` key.
#[derive(Default)]
pub struct Executed(std::sync::atomic::AtomicBool);

impl Executed {
    /// Records that execution began.
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether execution began.
    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
