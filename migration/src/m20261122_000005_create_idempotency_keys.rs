//! Idempotency keys: a repeated request with the same key returns the
//! original result instead of acting twice. The key row is written in the
//! same transaction as the change it protects, so it exists exactly when
//! the change does.

use crate::common::{create_all, drop_all, index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let keys = Table::create()
            .table("idempotency_keys")
            .if_not_exists()
            .col(uuid("tenant_id"))
            .col(string_len("key", 200))
            .col(string_len("operation", 64))
            .col(string_len("request_hash", 64))
            .col(json_binary("event_seqs"))
            .col(timestamp_with_time_zone("created_at"))
            .primary_key(Index::create().col("tenant_id").col("key"))
            .take();
        create_all(
            manager,
            vec![keys],
            vec![index("idempotency_keys", &["created_at"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["idempotency_keys"]).await
    }
}
