//! Small builders shared by the migrations, so every tenant table gets the
//! same id, tenant and timestamp columns.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// A new table with `id` (UUID primary key) and `tenant_id`; the caller adds
/// the rest and, for mutable rows, [`timestamps`].
pub fn tenant_table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(pk_uuid("id"))
        .col(uuid("tenant_id"))
        .take()
}

/// Adds `created_at` and `updated_at` (UTC).
pub fn with_timestamps(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone("updated_at"))
}

/// A foreign key from `table.column` to `target.id`.
pub fn fk(
    table: &'static str,
    column: &'static str,
    target: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(target, "id")
        .on_delete(on_delete)
        .take()
}

/// An index named after its table and columns.
pub fn index(table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("idx_{table}_{}", columns.join("_")))
        .table(table)
        .if_not_exists();
    for c in columns {
        stmt.col(*c);
    }
    stmt.take()
}

/// A unique index named after its table and columns.
pub fn unique(table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = index(table, columns);
    stmt.name(format!("uq_{table}_{}", columns.join("_")))
        .unique();
    stmt
}

/// Creates the tables, then their indexes.
pub async fn create_all(
    manager: &SchemaManager<'_>,
    tables: Vec<TableCreateStatement>,
    indexes: Vec<IndexCreateStatement>,
) -> Result<(), DbErr> {
    for t in tables {
        manager.create_table(t).await?;
    }
    for i in indexes {
        manager.create_index(i).await?;
    }
    Ok(())
}

/// Drops tables in the given order (children first).
pub async fn drop_all(manager: &SchemaManager<'_>, tables: &[&'static str]) -> Result<(), DbErr> {
    for t in tables {
        manager
            .drop_table(Table::drop().table(*t).if_exists().take())
            .await?;
    }
    Ok(())
}

/// The transaction's tenant (`cerebral.tenant_id`; unset or empty is NULL,
/// so a connection that never set it sees nothing).
pub const TENANT: &str = "NULLIF(current_setting('cerebral.tenant_id', true), '')::uuid";
/// Work the server does across tenants (`cerebral.all_tenants = 'on'`).
pub const ALL_TENANTS: &str = "current_setting('cerebral.all_tenants', true) = 'on'";

/// The PostgreSQL statements that put table `t` behind the tenant wall
/// (see the row-level security migration): forced row-level security, the
/// tenant's own rows to read and write, every row to read across tenants.
pub fn isolate(t: &str) -> String {
    format!(
        "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\n\
         ALTER TABLE {t} FORCE ROW LEVEL SECURITY;\n\
         CREATE POLICY tenant_isolation ON {t} \
           USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT});\n\
         CREATE POLICY all_tenants_read ON {t} FOR SELECT USING ({ALL_TENANTS});\n"
    )
}
