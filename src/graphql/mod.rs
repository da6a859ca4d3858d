//! The GraphQL schema: per-domain query, mutation and subscription roots
//! merged into one schema.

pub mod codes;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use std::time::Duration;

use async_graphql::{Context, Schema};

use crate::auth::Principal;
use crate::service::Services;

/// The schema type served at `/graphql`.
pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema over the services. Per-request data (the principal and
/// the loaders) is added by the HTTP layer.
pub fn build_schema(services: Services) -> AppSchema {
    Schema::build(
        query::Query::default(),
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .extension(codes::ErrorCodes)
    .data(services)
    .finish()
}

/// The schema without data, for printing the SDL.
pub fn sdl() -> String {
    Schema::build(
        query::Query::default(),
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}

/// Per-request data: the caller and the loaders built for its tenant.
pub fn request_data(
    req: async_graphql::Request,
    services: &Services,
    principal: Principal,
    loader_delay: Duration,
) -> async_graphql::Request {
    let loaders = LazyLoaders::new(services, principal.tenant_id, loader_delay);
    req.data(principal).data(loaders)
}

/// The DataLoaders of one request or one WebSocket connection, built on
/// first use: there are some thirty of them, and an idle subscription whose
/// items never touch a relation should not pay for them.
pub struct LazyLoaders {
    cell: std::sync::OnceLock<loaders::Loaders>,
    services: Services,
    tenant: uuid::Uuid,
    delay: Duration,
}

impl LazyLoaders {
    /// Loaders for `tenant` with batching window `delay`, not built yet.
    pub fn new(services: &Services, tenant: uuid::Uuid, delay: Duration) -> Self {
        LazyLoaders {
            cell: std::sync::OnceLock::new(),
            services: services.clone(),
            tenant,
            delay,
        }
    }

    fn get(&self) -> &loaders::Loaders {
        self.cell.get_or_init(|| {
            loaders::Loaders::new(self.services.db(), self.tenant, self.delay).with_services(
                &self.services,
                self.tenant,
                self.delay,
            )
        })
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
