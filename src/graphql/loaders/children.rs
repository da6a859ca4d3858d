//! Pages of child rows for many parents at once (a project's tasks, a task's
//! checkpoints …): one statement per page shape, and their counts on demand.

use crate::entity::FromRows;
use crate::entity::{
    agent_status, agent_status_history, artifact, epic, event, hitl_request, persona_context,
    qa_gate, story, task, task_checkpoint,
};
use crate::rls::Scoped;
use async_graphql::dataloader::Loader;
use sea_orm::{
    ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, Iterable, Statement, Value,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use uuid::Uuid;

use super::*;

/// Loads pages of children for many parents with one windowed query per
/// distinct (limit, after): `ROW_NUMBER() OVER (PARTITION BY parent ORDER BY
/// key)` keeps the first `limit` of every parent.
pub struct Children<E> {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
    pub(crate) rel: Rel,
    pub(crate) _e: PhantomData<E>,
}

impl<E> Children<E>
where
    E: EntityTrait,
    E::Model: FromRows + Send + Sync,
{
    async fn fetch(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Vec<E::Model>>, LoadError> {
        let (table, parent, order) = self.rel.shape();
        let (dir, cmp) = if self.rel.descending() {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let backend = self.db.get_database_backend();
        let mut groups: HashMap<(u64, Option<Cursor>, Columns), Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups
                .entry((k.limit, k.after.clone(), k.columns))
                .or_default()
                .push(k.parent);
        }
        let mut out = HashMap::new();
        for ((limit, after, columns), parents) in groups {
            let mut values: Vec<Value> = vec![self.tenant.into()];
            let ph = |values: &mut Vec<Value>, v: Value| {
                values.push(v);
                match backend {
                    sea_orm::DbBackend::Postgres => format!("${}", values.len()),
                    _ => "?".to_string(),
                }
            };
            let tenant_ph = match backend {
                sea_orm::DbBackend::Postgres => "$1".to_string(),
                _ => "?".to_string(),
            };
            let parent_phs: Vec<String> = parents
                .iter()
                .map(|p| ph(&mut values, (*p).into()))
                .collect();
            let after_sql = match &after {
                Some(Cursor::Id(a)) => {
                    format!(" AND t.{order} {cmp} {}", ph(&mut values, (*a).into()))
                }
                Some(Cursor::Seq(s)) => {
                    format!(" AND t.{order} {cmp} {}", ph(&mut values, (*s).into()))
                }
                None => String::new(),
            };
            let status_sql = match self.rel.status() {
                Some(st) => format!(" AND t.status = {}", ph(&mut values, st.into())),
                None => String::new(),
            };
            // Events: only final positions, so paging on never skips one
            // committed later; the statement's horizon comes along with
            // each row and the rows beyond it are waited for (see
            // `crate::events::until_final`).
            let horizon_sql = match (self.rel, backend) {
                (Rel::ProjectEvents, sea_orm::DbBackend::Postgres) => format!(
                    ", {} AS {}",
                    crate::events::PG_HORIZON,
                    crate::events::HORIZON_COLUMN
                ),
                _ => String::new(),
            };
            let limit_ph = ph(&mut values, (limit as i64).into());
            let select = if columns == Columns::ALL || backend != sea_orm::DbBackend::Postgres {
                "t.*".to_string()
            } else {
                E::Column::iter()
                    .enumerate()
                    .filter(|(i, c)| {
                        let name = c.as_str();
                        columns.has(*i) || name == "id" || name == parent || name == order
                    })
                    .map(|(_, c)| format!("t.{}", c.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let sql = format!(
                "SELECT *{horizon_sql} FROM (SELECT {select}, ROW_NUMBER() OVER (PARTITION BY t.{parent} ORDER BY t.{order} {dir}) AS rn__ \
                 FROM {table} t WHERE t.tenant_id = {tenant_ph} AND t.{parent} IN ({}){after_sql}{status_sql}) w \
                 WHERE w.rn__ <= {limit_ph} ORDER BY w.{parent}, w.rn__",
                parent_phs.join(", ")
            );
            let stmt = Statement::from_sql_and_values(backend, sql, values);
            // Only event pages carry a horizon; looking for it in every row
            // of any other page costs an error built and dropped per row.
            let rows = if horizon_sql.is_empty() {
                self.db.query_all_raw(stmt).await
            } else {
                crate::events::until_final(|| self.db.query_all_raw(stmt.clone())).await
            }
            .map_err(Arc::new)?;
            let models = E::Model::from_rows(&rows).map_err(Arc::new)?;
            let mut by_parent: HashMap<Uuid, Vec<E::Model>> = HashMap::new();
            for (r, m) in rows.iter().zip(models) {
                let pid: Uuid = r.try_get("", parent).map_err(Arc::new)?;
                by_parent.entry(pid).or_default().push(m);
            }
            for p in parents {
                out.insert(
                    PageKey {
                        parent: p,
                        limit,
                        after: after.clone(),
                        columns,
                    },
                    by_parent.remove(&p).unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }
}

macro_rules! children {
    ($($m:ident),*) => {$(
        impl Loader<PageKey> for Children<$m::Entity> {
            type Value = Vec<$m::Model>;
            type Error = LoadError;
            async fn load(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Self::Value>, Self::Error> {
                self.fetch(keys).await
            }
        }
    )*};
}

/// Counts children per parent for `totalCount`, one grouped query per relation.
pub struct ChildCounts {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

#[derive(Debug, FromQueryResult)]
pub(crate) struct CountRow {
    pub(crate) parent: Uuid,
    pub(crate) n: i64,
}

children!(
    task,
    artifact,
    hitl_request,
    event,
    task_checkpoint,
    persona_context,
    agent_status,
    agent_status_history,
    epic,
    story,
    qa_gate
);
