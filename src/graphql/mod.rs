//! The GraphQL schema: per-domain query, mutation and subscription roots
//! merged into one schema.

#[macro_use]
mod macros;
pub mod agent;
pub mod analytics;
pub mod artifact;
pub mod batch;
pub mod catalog;
pub mod checkpoint;
pub mod codes;
pub mod event;
pub mod fast;
pub mod hitl;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod node;
pub mod observe;
pub mod persisted;
pub mod persona_context;
pub mod pipeline;
pub mod project;
pub mod qa_gate;
pub mod schema;
pub mod session;
pub mod share;
pub mod story;
pub mod subscription;
pub mod task;
pub mod types;

use std::time::Duration;

use async_graphql::{Context, Schema};

use crate::auth::{Principal, Role};
use crate::rls::{Scope, Scoped};
use crate::service::Services;
use batch::Batching;

/// The schema type served at `/graphql`.
pub type AppSchema = Schema<schema::Query, schema::Mutation, schema::Subscription>;

/// Builds the schema over the services with the default limits.
pub fn build_schema(services: Services) -> AppSchema {
    build_schema_with(
        services,
        &limits::Limits::default(),
        SchemaExtras {
            persisted: Some(persisted::PersistedQueries::new(100)),
            ..Default::default()
        },
    )
}

/// The optional parts of the schema the server wires in; tests and tools
/// that only need the types build it with the defaults.
#[derive(Clone, Default)]
pub struct SchemaExtras {
    /// Counts operations for `/metrics`.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Automatic persisted queries (None: APQ off).
    pub persisted: Option<persisted::PersistedQueries>,
    /// Test-only: a field selected under the alias `panicProbe` panics in
    /// its resolver, to prove a resolver panic is answered and survived.
    pub panic_probe: bool,
}

/// Builds the schema over the services with `limits`, counting operations
/// in `metrics` when given. Per-request data (the principal and the
/// loaders) is added by the HTTP layer.
pub fn build_schema_with(
    services: Services,
    limits: &limits::Limits,
    extras: SchemaExtras,
) -> AppSchema {
    build_schemas_with(services, limits, extras).0
}

/// The schema without the extension and the hooks to run around it, for
/// plain HTTP queries (see [`pipeline::Pipeline::run_lean`]).
#[derive(Clone)]
pub struct Lean {
    /// The same types and limits, no extension.
    pub schema: AppSchema,
    /// The extension's hooks, run by hand.
    pub pipeline: pipeline::Pipeline,
    /// The return type of each root query field, for the `field` span.
    pub roots: pipeline::RootTypes,
}

/// The schema with its extension and, unless the test-only panic probe is
/// on (a per-field hook), its [`Lean`] twin.
pub fn build_schemas_with(
    services: Services,
    limits: &limits::Limits,
    extras: SchemaExtras,
) -> (AppSchema, Option<Lean>) {
    let SchemaExtras {
        metrics,
        persisted,
        panic_probe,
    } = extras;
    let sizes = std::sync::Arc::new(std::sync::OnceLock::new());
    // One extension for every per-request concern (see `pipeline`).
    let pipeline = pipeline::Pipeline {
        limits: limits::LimitsExtension {
            limits: std::sync::Arc::new(limits.clone()),
            sizes: sizes.clone(),
        },
        observe: metrics.map(observe::Observe),
        persisted,
        panic_probe,
    };
    let build = |extension: Option<pipeline::Pipeline>| {
        let mut builder = Schema::build(
            schema::Query::default(),
            schema::Mutation::default(),
            schema::Subscription::default(),
        );
        builder = match extension {
            Some(p) => builder.extension(p),
            None => builder.data(fast::NoFieldHooks),
        };
        builder = builder
            .limit_complexity(limits.max_complexity)
            .data(services.clone());
        if !limits.introspection {
            // Suggestions ("did you mean …") would leak the schema piecemeal.
            builder = builder.disable_introspection().disable_suggestions();
        }
        builder.finish()
    };
    let schema = build(Some(pipeline.clone()));
    // The introspection cost multiplies by this schema's own list sizes.
    let sdl = schema.sdl();
    let _ = sizes.set(limits::IntrospectionSizes::of_sdl(&sdl));
    let lean = (!panic_probe).then(|| Lean {
        schema: build(None),
        pipeline,
        roots: pipeline::root_types(&sdl),
    });
    (schema, lean)
}

/// The cost of a page for the complexity limit: its size (`first`, default
/// 20, at most 100) times the cost of what each item selects, so nested
/// pages multiply — a three-level `first: 100` fan-out costs over a million.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    use crate::service::query::{DEFAULT_PAGE, MAX_PAGE};
    let size = first.map_or(DEFAULT_PAGE as usize, |n| {
        n.clamp(1, MAX_PAGE as i32) as usize
    });
    size.saturating_mul(child_complexity).saturating_add(1)
}

/// The schema without data, for printing the SDL. Fields, input fields and
/// enum values are printed in alphabetical order (introspection keeps the
/// declaration order) so that `schema.graphql` passes graphql-schema-linter's
/// sorting rules and a reviewer finds a field where they expect it.
pub fn sdl() -> String {
    Schema::build(
        schema::Query::default(),
        schema::Mutation::default(),
        schema::Subscription::default(),
    )
    .finish()
    .sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_enum_items(),
    )
}

/// Per-request data: the caller, a reader of its own and the loaders built
/// for its tenant (see [`request_data_with`]).
pub fn request_data(
    req: async_graphql::Request,
    services: &Services,
    principal: Principal,
    loader_delay: Duration,
) -> async_graphql::Request {
    let reads = services.request_reader(principal.tenant_id);
    request_data_with(
        req,
        services,
        principal,
        reads,
        Batching::Window(loader_delay),
    )
}

/// Per-request data: the caller, its reader and the loaders built for its
/// tenant. `reads` is the request's [`Services::request_reader`]; the
/// front door pins it when the operation is a query (see
/// [`pin_reads_if_query`]).
pub fn request_data_with(
    req: async_graphql::Request,
    services: &Services,
    principal: Principal,
    reads: Scoped,
    batching: Batching,
) -> async_graphql::Request {
    let loaders = LazyLoaders::with_reader(services, reads, principal.tenant_id, batching);
    req.data(principal).data(loaders)
}

/// Pins the request's reader (one read session for the whole
/// operation, see [`crate::rls::Scoped`]) when the operation `request`
/// runs in `doc` is a query. Mutations take a session per read and give
/// it back: their write transaction needs a connection of its own.
pub fn pin_reads_if_query(
    request: &async_graphql::Request,
    doc: &async_graphql::parser::types::ExecutableDocument,
) {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let ty = match (&doc.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op.node.ty),
        _ => None,
    };
    if ty == Some(OperationType::Query)
        && let Some(l) = request
            .data
            .get(&std::any::TypeId::of::<LazyLoaders>())
            .and_then(|d| d.downcast_ref::<LazyLoaders>())
    {
        l.reads.pin();
    }
}

/// The DataLoaders of one request or one WebSocket connection, built on
/// first use: there are some thirty of them, and an idle subscription whose
/// items never touch a relation should not pay for them.
pub struct LazyLoaders {
    /// Boxed: the thirty loaders take about 2 KB, which an idle socket
    /// would otherwise hold inline before building any of them.
    cell: std::sync::OnceLock<Box<loaders::Loaders>>,
    services: Services,
    reads: Scoped,
    tenant: uuid::Uuid,
    batching: Batching,
}

impl LazyLoaders {
    /// Loaders for `tenant` with batching window `delay`, not built yet;
    /// each statement on a read session of its own, given back after it
    /// (WebSocket connections live for minutes: they hold none between
    /// statements).
    pub fn new(services: &Services, tenant: uuid::Uuid, delay: Duration) -> Self {
        let reads = Scoped::with_sessions(
            services.unscoped().clone(),
            Scope::Tenant(tenant),
            services.sessions(),
        );
        Self::with_reader(services, reads, tenant, Batching::Window(delay))
    }

    /// Loaders reading through `reads`, batching as `batching` says.
    pub fn with_reader(
        services: &Services,
        reads: Scoped,
        tenant: uuid::Uuid,
        batching: Batching,
    ) -> Self {
        LazyLoaders {
            cell: std::sync::OnceLock::new(),
            services: services.clone(),
            reads,
            tenant,
            batching,
        }
    }

    fn get(&self) -> &loaders::Loaders {
        self.cell.get_or_init(|| {
            Box::new(
                loaders::Loaders::new(&self.reads, self.tenant, &self.batching).with_services(
                    &self.services,
                    &self.reads,
                    self.tenant,
                    &self.batching,
                ),
            )
        })
    }
}

/// The reader of this request (or WebSocket connection): every read a
/// resolver makes goes through it, so a query's reads share its one
/// transaction.
pub fn reader<'a>(ctx: &Context<'a>) -> &'a Scoped {
    &ctx.data_unchecked::<LazyLoaders>().reads
}

/// A field guard: the caller must hold one of these roles; admins pass
/// every guard. A refusal is `FORBIDDEN`, raised before the resolver runs,
/// so nothing is read or changed — and a foreign id gets the same answer as
/// one of the caller's own. Which verb needs which role is the table
/// "Roles" in README.md.
pub struct Needs(pub &'static [Role]);

/// Reports of the work itself: status, progress, artifacts, checkpoints,
/// questions to humans.
pub const AGENT: Needs = Needs(&[Role::Agent]);
/// Decisions people take: project lifecycle, cancelling and retrying
/// tasks, answering HITL requests, rewinding to checkpoints.
pub const OPERATOR: Needs = Needs(&[Role::Operator]);
/// Work both agents and the people steering them do: sessions, persona
/// contexts, drafting tasks.
pub const AGENT_OR_OPERATOR: Needs = Needs(&[Role::Agent, Role::Operator]);
/// Catalog imports and forced changes.
pub const ADMIN: Needs = Needs(&[Role::Admin]);

impl async_graphql::Guard for Needs {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        if principal(ctx).may(self.0) {
            return Ok(());
        }
        let names = self
            .0
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(" or ");
        Err(crate::error::AppError::Forbidden(format!(
            "{} needs the {names} role",
            ctx.item.node.name.node
        ))
        .into())
    }
}

/// The caller of this request.
pub fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_unchecked::<Principal>()
}

/// The service layer.
pub fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// The loaders of this request.
pub fn loaders<'a>(ctx: &Context<'a>) -> &'a loaders::Loaders {
    ctx.data_unchecked::<LazyLoaders>().get()
}
