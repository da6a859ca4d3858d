//! The integration tests: one test binary, one module per area, over the
//! harness in `support` (the real server on port 0 over a fresh database,
//! or the `cerebral` binary as a child process). One binary links the
//! crate once instead of once per file, and its tests run side by side.
//!
//! Run one area with a filter, e.g. `cargo test --test api hitl::` or
//! `cargo test --test api abuse::`.
//!
//! Everything here shares one process: a test must not change process-wide
//! state (environment variables, the global tracing subscriber, panic hooks)
//! that another test could see, and a test that measures memory or CPU
//! measures a server it started as a child process, never this process.
//! `cancellation` is the one exception, and says why in its module.

mod support;

mod abuse;
mod agents;
mod analytics;
mod apq;
mod architecture;
mod auth;
mod browser;
mod cancellation;
mod checkpoints_artifacts;
mod cli;
mod concurrency;
mod deployment_defaults;
mod event_payloads;
mod fanout;
mod graphiql;
mod graphql_api;
mod hitl;
mod http_layers;
mod idempotency;
mod legacy_ws;
mod lifecycle_rules;
mod limits;
mod observability;
mod properties;
mod replicas;
mod resync;
mod rls;
mod roles;
mod round_trips;
mod schema;
mod sessions;
mod shutdown;
mod stories;
mod streams;
mod telemetry;
mod tenancy;
mod tenancy_matrix;
mod twins;
mod workflow;
mod ws_protocol;
