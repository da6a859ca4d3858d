//! The immutable event log and its sequence counter.
//!
//! `seq` is the stream cursor. It is not an auto-increment column: on
//! PostgreSQL a sequence hands out numbers at insert time, so a transaction
//! that took 6 can commit after one that took 7, and a reader that saw 7 would
//! skip 6 forever. Instead every writer increments the single `event_sequence`
//! row as the last step of its transaction; the row lock it takes is held until
//! commit, so numbers are handed out in commit order and a visible `seq = n`
//! implies every smaller one is visible too.

use crate::common::{create_all, drop_all, index};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign keys: the log outlives what it describes.
        let events = Table::create()
            .table("events")
            .if_not_exists()
            .col(big_integer("seq").primary_key())
            .col(uuid_uniq("id"))
            .col(uuid("tenant_id"))
            .col(string_len("event_type", 64))
            .col(uuid_null("project_id"))
            .col(uuid_null("task_id"))
            .col(string_len("subject_type", 64))
            .col(uuid("subject_id"))
            .col(string("actor"))
            .col(json_binary("payload"))
            .col(timestamp_with_time_zone("created_at"))
            .take();
        let counter = Table::create()
            .table("event_sequence")
            .if_not_exists()
            .col(string("name").primary_key())
            .col(big_integer("last_seq"))
            .take();
        create_all(
            manager,
            vec![events, counter],
            vec![
                index("events", &["tenant_id", "seq"]),
                index("events", &["tenant_id", "project_id", "seq"]),
                index("events", &["tenant_id", "event_type", "seq"]),
                index("events", &["tenant_id", "task_id", "seq"]),
                index("events", &["subject_id"]),
            ],
        )
        .await?;
        let seed = Query::insert()
            .into_table("event_sequence")
            .columns(["name", "last_seq"])
            .values_panic(["events".into(), 0i64.into()])
            .take();
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["event_sequence", "events"]).await
    }
}
