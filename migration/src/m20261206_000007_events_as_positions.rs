//! Event positions on PostgreSQL come from transaction ids (issue 14).
//!
//! From this version on, an event's `seq` on PostgreSQL is the id of the
//! transaction that wrote it shifted left by 20 bits, plus its index within
//! the transaction (`cerebral::events`), instead of the next number of the
//! `event_sequence` counter row — whose lock every writer of every tenant
//! queued behind. Old rows keep their numbers; this migration checks they
//! all lie below any position the new scheme can hand out (old cursors stay
//! valid), and makes a server of an older version fail loudly instead of
//! writing small numbers below the new positions, which streams would never
//! read: it sets the counter far below zero, and `seq` must not be negative.
//! So during an upgrade, writes through replicas still on the old version
//! fail (and roll back) until they are replaced.
//!
//! SQLite keeps its counter: writers there take turns anyway.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                r#"
DO $$
BEGIN
  IF (SELECT last_seq FROM event_sequence WHERE name = 'events')
     >= (pg_current_xact_id()::text::bigint << 20) THEN
    RAISE EXCEPTION 'the event counter is past what transaction ids give as positions; new events would sort before old ones';
  END IF;
  UPDATE event_sequence SET last_seq = -(1::bigint << 62) WHERE name = 'events';
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'events_seq_not_negative') THEN
    ALTER TABLE events ADD CONSTRAINT events_seq_not_negative CHECK (seq >= 0);
  END IF;
END $$;
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // Back to the counter: it continues above every position written.
        manager
            .get_connection()
            .execute_unprepared(
                r#"
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_seq_not_negative;
SELECT set_config('cerebral.all_tenants', 'on', true);
UPDATE event_sequence SET last_seq = (SELECT COALESCE(MAX(seq), 0) FROM events) WHERE name = 'events';
"#,
            )
            .await?;
        Ok(())
    }
}
