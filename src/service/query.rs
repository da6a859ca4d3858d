//! Reads: keyset pagination and the completion summary.
//!
//! Ids are UUID v7, so ordering by id is creation order and a page after a
//! cursor is `id > cursor ORDER BY id LIMIT n` — stable under inserts, and
//! an index seek rather than an offset scan.

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, Statement,
};
use uuid::Uuid;

use crate::domain::TaskStatus;
use crate::entity::{FromRows, task};
use crate::error::{AppError, AppResult};

/// Page size when `first` is not given.
pub const DEFAULT_PAGE: u64 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE: u64 = 100;

/// One page of a list.
#[derive(Debug)]
pub struct Page<M> {
    /// The rows, in id order.
    pub items: Vec<M>,
    /// Whether rows follow this page.
    pub has_next: bool,
    /// How to count the rows matching the filter in all pages.
    pub total: Count,
}

/// A count of a list's rows, run only when asked for: a `COUNT(*)` over
/// the whole filter costs more than the page itself on a large table, and
/// most clients never select `totalCount`.
#[derive(Debug, Clone)]
pub struct Count(Statement);

impl Count {
    /// The count of the rows `query` returns (without its order or limit:
    /// give it the filtered query before paging).
    pub fn of(backend: DbBackend, query: &impl QueryTrait) -> Self {
        let inner = query.build(backend);
        Count(Statement::from_sql_and_values(
            backend,
            format!("SELECT COUNT(*) AS n FROM ({}) AS counted", inner.sql),
            inner.values.map(|v| v.0).unwrap_or_default(),
        ))
    }

    /// Runs the count on `db`.
    pub async fn run(&self, db: &impl ConnectionTrait) -> AppResult<u64> {
        let n: i64 = match db.query_one_raw(self.0.clone()).await? {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Where a keyset page of a list starts: its size (`first`, 0–100,
/// default 20) and the cursor of the last row already seen — an id for
/// the id-ordered lists, a catalog key for the catalog's.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageAt<C = Uuid> {
    /// Page size.
    pub first: Option<i32>,
    /// The cursor of the last row already seen.
    pub after: Option<C>,
}

/// A row of an id-ordered list: its id is its cursor.
pub trait Keyed {
    /// The row's id.
    fn key(&self) -> Uuid;
}

macro_rules! keyed {
    ($($m:ident),*) => {$(
        impl Keyed for crate::entity::$m::Model {
            fn key(&self) -> Uuid {
                self.id
            }
        }
    )*};
}

keyed!(
    project,
    task,
    hitl_request,
    artifact,
    agent_status,
    session,
    epic,
    story
);

impl super::Services {
    /// The row `id` of a tenant's table if it is the caller's tenant's:
    /// `None` otherwise, the same answer for another tenant's row as for no
    /// row (`tenant` is the table's tenant column).
    pub async fn find_own<E>(
        &self,
        p: &crate::auth::Principal,
        tenant: E::Column,
        id: Uuid,
    ) -> AppResult<Option<E::Model>>
    where
        E: EntityTrait,
        E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = Uuid>,
    {
        Ok(E::find_by_id(id)
            .filter(tenant.eq(p.tenant_id))
            .one(&self.reader(p.tenant_id))
            .await?)
    }
}

/// Checks `first` against the bounds: 0–100, default 20.
pub fn page_size(first: Option<i32>) -> AppResult<u64> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (0..=MAX_PAGE as i32).contains(&n) => Ok(n as u64),
        Some(n) => Err(AppError::bad_input(format!(
            "first must be between 0 and {MAX_PAGE}, got {n}"
        ))),
    }
}

/// Reads one keyset page of `select` at `at`, ordered by `id_col`.
pub async fn page<E, C>(
    db: &C,
    select: Select<E>,
    id_col: E::Column,
    at: PageAt,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: FromRows + Sync,
    C: ConnectionTrait,
{
    let limit = page_size(at.first)?;
    let backend = db.get_database_backend();
    let total = Count::of(backend, &select);
    let mut q = select;
    if let Some(a) = at.after {
        q = q.filter(id_col.gt(a));
    }
    let stmt = q.order_by_asc(id_col).limit(limit + 1).build(backend);
    let mut items = E::Model::from_rows(&db.query_all_raw(stmt).await?)?;
    let has_next = items.len() as u64 > limit;
    items.truncate(limit as usize);
    Ok(Page {
        items,
        has_next,
        total,
    })
}

/// How far a project is, computed from its tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// Every task of the project.
    pub total: i64,
    /// Tasks COMPLETED.
    pub completed: i64,
    /// Tasks FAILED.
    pub failed: i64,
    /// Tasks CANCELLED (skipped).
    pub cancelled: i64,
}

impl Completion {
    /// Completed share of the tasks that still count (cancelled ones are
    /// skipped work and leave the denominator), 0–100. An empty project is 0.
    pub fn percentage(&self) -> f64 {
        let counted = self.total - self.cancelled;
        if counted <= 0 {
            if self.total > 0 { 100.0 } else { 0.0 }
        } else {
            (self.completed as f64 * 100.0 / counted as f64 * 10.0).round() / 10.0
        }
    }
}

#[derive(Debug, FromQueryResult)]
struct StatusCount {
    project_id: Uuid,
    status: TaskStatus,
    n: i64,
}

/// Completion of several projects in one grouped query.
pub async fn completions<C: ConnectionTrait>(
    db: &C,
    tenant: Uuid,
    projects: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, Completion>> {
    let rows = task::Entity::find()
        .select_only()
        .column(task::Column::ProjectId)
        .column(task::Column::Status)
        .column_as(Expr::col(Alias::new("id")).count(), "n")
        .filter(task::Column::TenantId.eq(tenant))
        .filter(task::Column::ProjectId.is_in(projects.to_vec()))
        .group_by(task::Column::ProjectId)
        .group_by(task::Column::Status)
        .into_model::<StatusCount>()
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<Uuid, Completion> = projects
        .iter()
        .map(|p| (*p, Completion::default()))
        .collect();
    for r in rows {
        let c = out.entry(r.project_id).or_default();
        c.total += r.n;
        match r.status {
            TaskStatus::Completed => c.completed += r.n,
            TaskStatus::Failed => c.failed += r.n,
            TaskStatus::Cancelled => c.cancelled += r.n,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentage_skips_cancelled_tasks_and_rounds_to_one_decimal() {
        let c = Completion {
            total: 4,
            completed: 2,
            failed: 0,
            cancelled: 1,
        };
        assert_eq!(c.percentage(), 66.7);
        assert_eq!(Completion::default().percentage(), 0.0);
        let all_skipped = Completion {
            total: 2,
            completed: 0,
            failed: 0,
            cancelled: 2,
        };
        assert_eq!(all_skipped.percentage(), 100.0);
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(page_size(None).expect("default"), 20);
        assert_eq!(page_size(Some(100)).expect("max"), 100);
        assert!(page_size(Some(101)).is_err());
        assert!(page_size(Some(-1)).is_err());
    }
}
