//! Where an event goes in the log and when a position is final: PostgreSQL
//! positions from the writing transaction's id, the horizon below which no
//! transaction can still commit.

use crate::entity::event;
use crate::error::{AppError, AppResult};
use sea_orm::Statement;
use std::time::Duration;

use super::*;

/// Bits of a PostgreSQL log position that hold an event's index within its
/// transaction; the transaction id sits above them.
pub const TXN_BITS: u32 = 20;

/// Largest transaction id whose positions still fit an `i64` (2^43: some
/// two thousand wraparounds of the 32-bit id).
const MAX_XID: i64 = 1 << (63 - TXN_BITS);

/// SQL for the PostgreSQL horizon: every position below it is final (its
/// transaction has committed or aborted). Evaluated inside a statement, it
/// uses that statement's snapshot.
pub const PG_HORIZON: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)";

/// SQL for one past the largest position a committed PostgreSQL transaction
/// may have written: positions at or beyond it belong to transactions not
/// yet finished or not yet begun.
pub(crate) const PG_COMMITTED_END: &str =
    "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint << 20)";

/// The position of the first of `n` events written by the PostgreSQL
/// transaction `xid`; the others follow it. Refused when the transaction
/// writes more events than [`TXN_BITS`] allows, or when the id no longer
/// fits.
pub fn position(xid: i64, n: usize) -> AppResult<i64> {
    if n > 1 << TXN_BITS {
        return Err(AppError::Internal(anyhow::anyhow!(
            "one transaction may append at most {} events (tried {n})",
            1u64 << TXN_BITS
        )));
    }
    if !(0..MAX_XID).contains(&xid) {
        return Err(AppError::Internal(anyhow::anyhow!(
            "transaction id {xid} is past what event positions can hold"
        )));
    }
    Ok(xid << TXN_BITS)
}

/// The insert of one PostgreSQL transaction's events, positioned by the
/// statement itself: row `i` gets `position(pg_current_xact_id(), …) + i`
/// (the `seq` of `events` is ignored), and `RETURNING seq` tells which.
/// Asking for the transaction id in a statement of its own cost every
/// write a round trip.
pub fn insert_at_positions(events: &[event::Model]) -> AppResult<Statement> {
    use sea_orm::sea_query::{Expr, PostgresQueryBuilder, Query};
    use sea_orm::{ActiveEnum, Iterable};
    let columns: Vec<event::Column> = event::Column::iter().collect();
    let mut insert = Query::insert();
    insert
        .into_table(event::Entity)
        .columns(columns.iter().copied())
        .returning_col(event::Column::Seq);
    for (i, e) in events.iter().enumerate() {
        // Exhaustive: a new column fails to compile here until it is written.
        let row = columns.iter().map(|c| -> Expr {
            match c {
                event::Column::Seq => Expr::cust(format!(
                    "(pg_current_xact_id()::text::bigint << {TXN_BITS}) + {i}"
                )),
                event::Column::Id => Expr::val(e.id),
                event::Column::TenantId => Expr::val(e.tenant_id),
                event::Column::EventType => Expr::val(e.event_type.to_value()),
                event::Column::ProjectId => Expr::val(e.project_id),
                event::Column::TaskId => Expr::val(e.task_id),
                event::Column::SubjectType => Expr::val(e.subject_type.clone()),
                event::Column::SubjectId => Expr::val(e.subject_id),
                event::Column::Actor => Expr::val(e.actor.clone()),
                event::Column::Payload => Expr::val(e.payload.clone()),
                event::Column::CreatedAt => Expr::val(e.created_at),
            }
        });
        insert.values(row).map_err(|err| {
            AppError::Internal(anyhow::anyhow!("building the events insert: {err}"))
        })?;
    }
    let (sql, values) = insert.build(PostgresQueryBuilder);
    Ok(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        sql,
        values,
    ))
}

/// The position of a PostgreSQL transaction's first event, from the
/// position of any of its events; refused when the transaction id no
/// longer fits (see [`position`]).
pub fn first_position(seq: i64) -> AppResult<i64> {
    let xid = seq >> TXN_BITS;
    if !(0..MAX_XID).contains(&xid) {
        return Err(AppError::Internal(anyhow::anyhow!(
            "transaction id {xid} is past what event positions can hold"
        )));
    }
    Ok(xid << TXN_BITS)
}

/// The column a PostgreSQL read of the log selects [`PG_HORIZON`] as, for
/// [`until_final`]; the statement's other columns must include `seq`.
pub const HORIZON_COLUMN: &str = "horizon__";

/// The longest a read of the log waits for events that had committed
/// when it began to become final (for a transaction begun before them to
/// end). Writes are short, so it is usually a few milliseconds; an open
/// transaction elsewhere in the cluster can hold it to the full second,
/// after which the read answers with what is final.
pub const FINAL_WAIT: Duration = Duration::from_secs(1);

/// Runs `read` — a read of the log in position order whose rows carry the
/// statement's own horizon as [`HORIZON_COLUMN`] (on PostgreSQL) — and
/// keeps the rows below that horizon. When it had to drop some (committed,
/// so a client may have just written them, but not yet final), it reads
/// again after a pause (1 ms doubling to 50 ms), for at most
/// [`FINAL_WAIT`]. On SQLite (no such column) every row is final.
///
/// Filtering the rows instead of the statement keeps the common case at
/// one statement and lets it see what is held back; the rows kept are
/// exactly those a `seq < horizon` filter would return, since in position
/// order the final rows of every partition come first.
pub async fn until_final<F, Fut>(mut read: F) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr>>,
{
    let deadline = tokio::time::Instant::now() + FINAL_WAIT;
    let mut pause = HOLD_MIN;
    loop {
        let rows = read().await?;
        let mut held = false;
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            let horizon: Option<i64> = r.try_get("", HORIZON_COLUMN).ok();
            match horizon {
                Some(h) if r.try_get::<i64>("", "seq")? >= h => held = true,
                _ => kept.push(r),
            }
        }
        if !held || tokio::time::Instant::now() + pause > deadline {
            return Ok(kept);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(HOLD_MAX);
    }
}
