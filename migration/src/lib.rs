//! Database migrations of Cerebral.
//!
//! The same migrations run on SQLite (the embedded default) and PostgreSQL
//! (production). Column types are chosen so both back-ends agree: UUID ids,
//! `timestamp with time zone` (UTC), JSON bodies as JSONB on PostgreSQL and JSON
//! text on SQLite, lifecycle values as stable upper-case strings.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod common;
mod m20261122_000001_create_catalog;
mod m20261122_000002_create_projects_and_tasks;
mod m20261122_000003_create_sessions;
mod m20261122_000004_create_events;
mod m20261122_000005_create_idempotency_keys;
pub mod m20261122_000006_row_level_security;
mod m20261206_000007_events_as_positions;
pub mod m20261207_000008_create_epics_stories_and_gates;

/// Every table holding tenant rows, each behind the tenant wall on
/// PostgreSQL: those of the row-level security migration and those the
/// migrations after it add.
pub fn tenant_tables() -> Vec<&'static str> {
    [
        m20261122_000006_row_level_security::FIRST_TENANT_TABLES,
        m20261207_000008_create_epics_stories_and_gates::TABLES,
    ]
    .concat()
}

/// Runs every migration of this crate, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_catalog::Migration),
            Box::new(m20261122_000002_create_projects_and_tasks::Migration),
            Box::new(m20261122_000003_create_sessions::Migration),
            Box::new(m20261122_000004_create_events::Migration),
            Box::new(m20261122_000005_create_idempotency_keys::Migration),
            Box::new(m20261122_000006_row_level_security::Migration),
            Box::new(m20261206_000007_events_as_positions::Migration),
            Box::new(m20261207_000008_create_epics_stories_and_gates::Migration),
        ]
    }
}
