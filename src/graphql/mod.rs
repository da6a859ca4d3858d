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
    let loaders = loaders::Loaders::new(services.db(), principal.tenant_id, loader_delay)
        .with_services(services, principal.tenant_id, loader_delay);
    req.data(principal).data(loaders)
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
    ctx.data_unchecked::<loaders::Loaders>()
}
