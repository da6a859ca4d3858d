//! sea-orm entities, one per table. They carry no GraphQL derives: the API has
//! its own output types built from these models.

pub mod agent_status;
pub mod agent_status_history;
pub mod artifact;
pub mod artifact_content;
pub mod epic;
pub mod event;
pub mod event_sequence;
pub mod hitl_request;
pub mod idempotency_key;
pub mod persona;
pub mod persona_context;
pub mod project;
pub mod qa_gate;
pub mod session;
pub mod story;
pub mod story_content;
pub mod task;
pub mod task_checkpoint;
pub mod task_checkpoint_state;
pub mod task_dependency;
pub mod team;
pub mod team_member;
pub mod team_workflow;
pub mod workflow;
pub mod workflow_step;

/// Models decoded from the rows of one statement.
///
/// sea-orm's `FromQueryResult` finds every column by name, twice (once to
/// check its type, once to decode it), and formats an error message for
/// each NULL of an optional column before treating it as `None`: on a page
/// of 400 tasks that was a fifth of a nested query's CPU
/// (docs/benchmarks.md). A model with a decoder of its own looks its
/// columns up once per statement and decodes each row by position; the
/// others use `FromQueryResult`.
pub trait FromRows: sea_orm::FromQueryResult + Sized {
    /// Decodes `rows`, in order.
    fn from_rows(rows: &[sea_orm::QueryResult]) -> Result<Vec<Self>, sea_orm::DbErr> {
        rows.iter()
            .map(|r| Self::from_query_result(r, ""))
            .collect()
    }
}

/// Decoding PostgreSQL rows by position, for [`FromRows`] decoders.
pub(crate) mod by_position {
    use sea_orm::sqlx::postgres::{PgRow, Postgres};
    use sea_orm::sqlx::{Column, Decode, Row, Type};
    use sea_orm::{DbErr, QueryResult};

    /// The positions of `names` in the result set of `row`; `None` for a
    /// column the statement did not read (a page that reads only some,
    /// `crate::graphql::loaders::Columns`). A column missing from the
    /// table itself is not caught here, but every other read of the same
    /// rows (by id, in the services) decodes by name and fails on it.
    pub fn positions<const N: usize>(row: &PgRow, names: &[&str; N]) -> [Option<usize>; N] {
        let mut at = [None; N];
        for (slot, name) in at.iter_mut().zip(names) {
            *slot = row.try_column(*name).ok().map(Column::ordinal);
        }
        at
    }

    /// What a column of `names` missing from a statement's result means.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Missing {
        /// Not read on purpose (a page of chosen columns): [`get`] defaults it.
        Default,
        /// A fault: the model is always read whole.
        Error,
    }

    /// Decodes `rows` with `row_of`, given each row and the positions of
    /// `names` (looked up, and checked against `missing`, once, in the first
    /// row); rows that are not PostgreSQL's (SQLite) go through sea-orm's
    /// decoder by name.
    pub fn decode<M: sea_orm::FromQueryResult, const N: usize>(
        rows: &[QueryResult],
        names: &[&str; N],
        missing: Missing,
        row_of: impl Fn(&PgRow, &[Option<usize>; N]) -> Result<M, DbErr>,
    ) -> Result<Vec<M>, DbErr> {
        let Some(first) = rows.first().and_then(QueryResult::try_as_pg_row) else {
            return rows.iter().map(|r| M::from_query_result(r, "")).collect();
        };
        let at = positions(first, names);
        if missing == Missing::Error
            && let Some(i) = at.iter().position(Option::is_none)
        {
            return Err(DbErr::Type(format!(
                "column {} missing from the result",
                names[i]
            )));
        }
        rows.iter().map(|r| row_of(pg(r)?, &at)).collect()
    }

    /// The PostgreSQL row of `r` (every row of a statement has the same
    /// back-end as its first).
    pub fn pg(r: &QueryResult) -> Result<&PgRow, DbErr> {
        r.try_as_pg_row()
            .ok_or_else(|| DbErr::Type("a PostgreSQL row was expected".into()))
    }

    /// The value at position `i`, or the type's default for a column the
    /// statement did not read.
    pub fn get<'r, T: Decode<'r, Postgres> + Type<Postgres> + Default>(
        row: &'r PgRow,
        i: Option<usize>,
    ) -> Result<T, DbErr> {
        match i {
            Some(i) => row
                .try_get(i)
                .map_err(|e| DbErr::Type(format!("column {i}: {e}"))),
            None => Ok(T::default()),
        }
    }
}

impl FromRows for artifact::Model {}
impl FromRows for hitl_request::Model {}
impl FromRows for event::Model {}
impl FromRows for task_checkpoint::Model {}
impl FromRows for persona_context::Model {}
impl FromRows for agent_status::Model {}
impl FromRows for agent_status_history::Model {}
impl FromRows for session::Model {}
impl FromRows for epic::Model {}
impl FromRows for story::Model {}
impl FromRows for qa_gate::Model {}
