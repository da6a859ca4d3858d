//! Which events a reader wants (tenant, project, task, types, persona) and how
//! a page of them is read.

use crate::domain::EventType;
use crate::entity::event;
use crate::error::AppResult;
use crate::rls::Scoped;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::*;

/// Which events a stream or query wants. Every field narrows; empty means all.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events of this tenant (always set by the caller's principal).
    pub tenant_id: Uuid,
    /// Only events of this project.
    pub project_id: Option<Uuid>,
    /// Only events of this task.
    pub task_id: Option<Uuid>,
    /// Only events of these types.
    pub types: Vec<EventType>,
    /// Only events whose payload names this persona (`personaId`).
    pub persona_id: Option<Uuid>,
}

impl EventFilter {
    pub(crate) fn query(&self, backend: sea_orm::DbBackend) -> sea_orm::Select<event::Entity> {
        let mut q = event::Entity::find().filter(event::Column::TenantId.eq(self.tenant_id));
        if let Some(p) = self.persona_id {
            // The persona sits inside the JSON payload; both back-ends can
            // reach it, so paging and counting stay in SQL.
            let sql = match backend {
                sea_orm::DbBackend::Postgres => "(payload ->> 'personaId') = $1",
                _ => "json_extract(payload, '$.personaId') = ?",
            };
            q = q.filter(sea_orm::sea_query::Expr::cust_with_values(
                sql,
                [p.to_string()],
            ));
        }
        if let Some(p) = self.project_id {
            q = q.filter(event::Column::ProjectId.eq(p));
        }
        if let Some(t) = self.task_id {
            q = q.filter(event::Column::TaskId.eq(t));
        }
        if !self.types.is_empty() {
            q = q.filter(event::Column::EventType.is_in(self.types.clone()));
        }
        q
    }

    /// Checks what SQL cannot (a field inside the JSON payload).
    pub fn matches_payload(&self, e: &event::Model) -> bool {
        match self.persona_id {
            Some(p) => e.payload.get("personaId").and_then(|v| v.as_str()) == Some(&p.to_string()),
            None => true,
        }
    }

    /// Whether an event of which only its stub is on the ring may match:
    /// everything but the payload is checked.
    pub(crate) fn may_match(&self, s: &Stub) -> bool {
        s.tenant_id == self.tenant_id
            && self.project_id.is_none_or(|p| s.project_id == Some(p))
            && self.task_id.is_none_or(|t| s.task_id == Some(t))
            && (self.types.is_empty() || self.types.contains(&s.event_type))
    }

    /// Checks an event received from the ring against every filter.
    pub fn matches(&self, e: &event::Model) -> bool {
        e.tenant_id == self.tenant_id
            && self.project_id.is_none_or(|p| e.project_id == Some(p))
            && self.task_id.is_none_or(|t| e.task_id == Some(t))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.matches_payload(e)
    }

    /// Matching events with `after < seq <= upto`, oldest first, at most
    /// `limit` of them.
    /// The page also stops at [`PAGE_BYTES`]; the flag says whether it
    /// was cut short (more rows follow).
    pub async fn page_between(
        &self,
        db: &Scoped,
        after: i64,
        upto: i64,
        limit: u64,
    ) -> AppResult<(Vec<event::Model>, bool)> {
        let backend = db.get_database_backend();
        let stmt = self
            .query(backend)
            .filter(event::Column::Seq.gt(after))
            .filter(event::Column::Seq.lte(upto))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .build(backend);
        Ok(db.rows_within(stmt, PAGE_BYTES, payload_bytes).await?)
    }

    /// Whether more than `n` matching events lie in `(after, upto]` (one
    /// indexed probe at offset `n`, not a count).
    pub async fn beyond(&self, db: &Scoped, after: i64, upto: i64, n: u64) -> AppResult<bool> {
        Ok(self
            .query(db.get_database_backend())
            .select_only()
            .column(event::Column::Seq)
            .filter(event::Column::Seq.gt(after))
            .filter(event::Column::Seq.lte(upto))
            .order_by_asc(event::Column::Seq)
            .offset(n)
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
            .await?
            .is_some())
    }

    /// Number of matching events in the log, committed ones whether final
    /// or not (a count is not a cursor: it can show a write at once).
    pub async fn count(&self, db: &Scoped) -> AppResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(self.query(db.get_database_backend()).count(db).await?)
    }

    /// One page of matching events with `seq > after`, oldest first; only
    /// final positions (see the module documentation), so paging on with
    /// the last cursor never skips an event committed later. Events that
    /// had committed when the read began are waited for (see
    /// [`until_final`]), so a client reads its own writes.
    pub async fn page(&self, db: &Scoped, after: i64, limit: u64) -> AppResult<Vec<event::Model>> {
        let backend = db.get_database_backend();
        let mut q = self
            .query(backend)
            .filter(event::Column::Seq.gt(after))
            .order_by_asc(event::Column::Seq)
            .limit(limit);
        if backend == sea_orm::DbBackend::Postgres {
            q = q.column_as(sea_orm::sea_query::Expr::cust(PG_HORIZON), HORIZON_COLUMN);
        }
        let stmt = q.build(backend);
        let rows = until_final(|| db.query_all_raw(stmt.clone())).await?;
        Ok(rows
            .iter()
            .map(|r| event::Model::from_query_result(r, ""))
            .collect::<Result<_, _>>()?)
    }
}
