//! Row-level security on PostgreSQL: tenant isolation as a second wall
//! behind the application's own `tenant_id` filters (SQLite: nothing to do).
//!
//! Every table with a `tenant_id` gets `ENABLE` and `FORCE ROW LEVEL
//! SECURITY` and one policy for all commands, `USING` and `WITH CHECK`:
//! a row is visible and writable only when its `tenant_id` equals the
//! transaction's `cerebral.tenant_id` setting. The setting is read with
//! `missing_ok` and an empty value becomes NULL, so a connection that never
//! set it (or whose transaction ended, which leaves it empty) sees nothing
//! and writes nothing: the wall fails closed.
//!
//! Two narrow exceptions, both read-only:
//! - the built-in catalog (personas, teams, workflows and their parts) lives
//!   in the nil "system" tenant and is readable inside any tenant's
//!   transaction (outside one, it is as invisible as the rest);
//! - work the server does across tenants (the event fan-out, the sweeper's
//!   scans, `/metrics` counts) sets `cerebral.all_tenants = 'on'` and may
//!   then read every row; it writes through tenant transactions as usual,
//!   except idempotency-key expiry, which may also delete.
//!
//! Privileges on the tables go to PUBLIC, so the server can log in as a role
//! that owns nothing (owners and superusers pass RLS by `BYPASSRLS`/ownership;
//! `FORCE` covers the owner, not superusers). Released as it is: the server's
//! migrate step (`cerebral::db::migrate_granting`) then moves them from
//! PUBLIC to the serving role by name when one is configured.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// The tables holding tenant rows when this migration was written; a later
/// migration that adds one isolates it itself ([`crate::common::isolate`]),
/// and [`crate::tenant_tables`] lists them all.
pub const FIRST_TENANT_TABLES: &[&str] = &[
    "personas",
    "teams",
    "team_members",
    "team_workflows",
    "workflows",
    "workflow_steps",
    "projects",
    "tasks",
    "task_dependencies",
    "task_checkpoints",
    "task_checkpoint_states",
    "hitl_requests",
    "artifacts",
    "artifact_contents",
    "agent_statuses",
    "agent_status_history",
    "sessions",
    "persona_contexts",
    "events",
    "idempotency_keys",
];

/// The tables that also hold the built-in catalog (the nil tenant).
const CATALOG_TABLES: &[&str] = &[
    "personas",
    "teams",
    "team_members",
    "team_workflows",
    "workflows",
    "workflow_steps",
];

use crate::common::{ALL_TENANTS, TENANT};
const SYSTEM_TENANT: &str = "'00000000-0000-0000-0000-000000000000'::uuid";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let mut sql = String::new();
        for t in FIRST_TENANT_TABLES {
            sql.push_str(&crate::common::isolate(t));
        }
        for t in CATALOG_TABLES {
            sql.push_str(&format!(
                "CREATE POLICY builtin_catalog_read ON {t} FOR SELECT \
                   USING (tenant_id = {SYSTEM_TENANT} AND {TENANT} IS NOT NULL);\n"
            ));
        }
        sql.push_str(&format!(
            "CREATE POLICY all_tenants_expire ON idempotency_keys FOR DELETE USING ({ALL_TENANTS});\n"
        ));
        // The serving role owns nothing: it gets what it needs here, on
        // these tables and on any a later migration (run by the same owner)
        // creates.
        let schema = current_schema(db).await?;
        sql.push_str(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO PUBLIC;\n\
             ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} \
               GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO PUBLIC;\n"
        ));
        db.execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let schema = current_schema(db).await?;
        let mut sql = format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} \
               REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM PUBLIC;\n\
             REVOKE SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;\n"
        );
        sql.push_str("DROP POLICY IF EXISTS all_tenants_expire ON idempotency_keys;\n");
        for t in CATALOG_TABLES {
            sql.push_str(&format!(
                "DROP POLICY IF EXISTS builtin_catalog_read ON {t};\n"
            ));
        }
        for t in FIRST_TENANT_TABLES {
            sql.push_str(&format!(
                "DROP POLICY IF EXISTS all_tenants_read ON {t};\n\
                 DROP POLICY IF EXISTS tenant_isolation ON {t};\n\
                 ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY;\n\
                 ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;\n"
            ));
        }
        db.execute_unprepared(&sql).await?;
        Ok(())
    }
}

/// The schema the tables live in, quoted as an identifier.
async fn current_schema(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let row = db
        .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_schema() AS s",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no current schema".into()))?;
    let s: String = row.try_get("", "s")?;
    Ok(format!("\"{}\"", s.replace('"', "\"\"")))
}
