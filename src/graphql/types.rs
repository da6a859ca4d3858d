//! What the output types share: Relay connections and their counts, cursors,
//! loader lookups, and the `Wraps` bridge from service results. Every type
//! is re-exported here from its noun's module, so a module can name any
//! other noun's type through `super::types::*`.

pub use super::agent::*;
pub use super::analytics::*;
pub use super::artifact::*;
pub use super::catalog::*;
pub use super::checkpoint::*;
pub use super::event::*;
use super::fast::Fast;
pub use super::hitl::*;
use super::loaders;
use super::loaders::{Columns, Cursor, PageKey, Rel};
pub use super::node::*;
pub use super::persona_context::*;
pub use super::project::*;
pub use super::qa_gate::*;
pub use super::session::*;
pub use super::story::*;
pub use super::task::*;
use crate::entity::{
    agent_status, artifact, epic, hitl_request, persona_context, project, qa_gate, session, story,
    task, task_checkpoint,
};
use crate::error::AppError;
use crate::service::query::page_size;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, Result};
use uuid::Uuid;

/// A global id (`<Type>:<uuid>`, see [`crate::ids`]) as a GraphQL `ID`.
pub fn encode(kind: crate::ids::Kind, id: Uuid) -> async_graphql::ID {
    async_graphql::ID(crate::ids::encode(kind, id))
}

/// An output type that wraps what the service layer returns, so a payload
/// can be built from a service result (see `payload!`).
pub trait Wraps {
    /// What the service returns.
    type Model;
    /// Wraps it.
    fn wrap(m: Self::Model) -> Self;
}

/// Output types that are a newtype over an entity model.
macro_rules! wraps {
    ($($t:ident => $m:ty),* $(,)?) => {$(
        impl Wraps for $t {
            type Model = $m;
            fn wrap(m: $m) -> Self {
                $t(m)
            }
        }
    )*};
}

wraps!(
    Project => project::Model,
    Task => task::Model,
    Session => session::Model,
    PersonaContext => persona_context::Model,
    TaskCheckpoint => task_checkpoint::Model,
    HitlRequest => hitl_request::Model,
    Artifact => artifact::Model,
    AgentStatus => agent_status::Model,
    Epic => epic::Model,
    Story => story::Model,
    QaGate => qa_gate::Model,
);

impl<T: Wraps> Wraps for Vec<T> {
    type Model = Vec<T::Model>;
    fn wrap(m: Self::Model) -> Self {
        m.into_iter().map(T::wrap).collect()
    }
}

/// A list page in Relay form with `totalCount`; its nodes resolve through
/// [`Fast`] (schema unchanged).
pub type Conn<T> = Connection<String, Fast<T>, TotalCount>;

/// How a connection learns its `totalCount`: never before a client selects
/// it, so a page costs one statement and its count a second only on demand.
pub enum TotalCount {
    /// A count statement of the list's filter.
    Count(crate::service::query::Count),
    /// The events matching a filter.
    Events(crate::events::EventFilter),
    /// Counted on demand, batched with its siblings.
    Child(Rel, Uuid),
}

#[Object]
impl TotalCount {
    /// Number of items in all pages of this list (with its filter).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        match self {
            TotalCount::Count(c) => Ok(c.run(crate::graphql::reader(ctx)).await?),
            TotalCount::Events(f) => Ok(f.count(crate::graphql::reader(ctx)).await?),
            TotalCount::Child(rel, parent) => Ok(loaders(ctx)
                .counts
                .load_one((*rel, *parent))
                .await
                .map_err(db_err)?
                .unwrap_or(0)),
        }
    }
}

/// Builds a connection from rows fetched with one extra row (to learn
/// whether another page follows).
pub fn connection<M, T>(
    mut rows: Vec<M>,
    limit: u64,
    has_previous: bool,
    total: TotalCount,
    cursor: impl Fn(&M) -> String,
    wrap: impl Fn(M) -> T,
) -> Conn<T>
where
    T: async_graphql::ContainerType,
{
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let mut c = Connection::with_additional_fields(has_previous, has_next, total);
    c.edges.extend(rows.into_iter().map(|m| {
        let cur = cursor(&m);
        Edge::new(cur, Fast(wrap(m)))
    }));
    c
}

/// Builds a connection from a page the service layer already cut.
pub fn page_connection<M, T: async_graphql::ContainerType>(
    pg: crate::service::query::Page<M>,
    has_previous: bool,
    cursor: impl Fn(&M) -> String,
    wrap: impl Fn(M) -> T,
) -> Conn<T> {
    let mut c =
        Connection::with_additional_fields(has_previous, pg.has_next, TotalCount::Count(pg.total));
    c.edges.extend(pg.items.into_iter().map(|m| {
        let cur = cursor(&m);
        Edge::new(cur, Fast(wrap(m)))
    }));
    c
}

/// The start of a page of an id-ordered list: `first` checked by the
/// service, `after` parsed here (`BAD_USER_INPUT` when it is not an id cursor).
pub fn page_at(
    first: Option<i32>,
    after: Option<String>,
) -> Result<crate::service::query::PageAt, AppError> {
    Ok(crate::service::query::PageAt {
        first,
        after: id_cursor(after)?,
    })
}

/// A Relay connection over a page of an id-ordered list read at `at`.
pub fn id_connection<M: crate::service::query::Keyed, T: async_graphql::ContainerType>(
    pg: crate::service::query::Page<M>,
    at: crate::service::query::PageAt,
    wrap: impl Fn(M) -> T,
) -> Conn<T> {
    page_connection(pg, at.after.is_some(), |m| m.key().to_string(), wrap)
}

/// Parses an `after` cursor of an id-ordered list.
pub fn id_cursor(after: Option<String>) -> Result<Option<Uuid>, AppError> {
    after
        .map(|a| {
            Uuid::parse_str(&a)
                .map_err(|_| AppError::bad_input(format!("'{a}' is not a valid cursor")))
        })
        .transpose()
}

/// Parses an `after` cursor of the event log.
pub fn seq_cursor(after: Option<String>) -> Result<Option<i64>, AppError> {
    after
        .map(|a| {
            a.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| AppError::bad_input(format!("'{a}' is not a valid event cursor")))
        })
        .transpose()
}

/// Loads one value through a DataLoader, with the error converted.
pub async fn one<T, K>(
    dl: &async_graphql::dataloader::DataLoader<T>,
    key: K,
) -> Result<Option<T::Value>>
where
    T: async_graphql::dataloader::Loader<K, Error = loaders::LoadError>,
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
{
    dl.load_one(key).await.map_err(db_err)
}

/// Turns a shared loader error into a GraphQL error with a code.
pub fn db_err(e: loaders::LoadError) -> async_graphql::Error {
    AppError::Internal(anyhow::anyhow!("{e}")).into()
}

/// A page of children of `parent` under `rel`, reading `columns` of each
/// row (`Columns::ALL` but for `Project.tasks`).
pub(crate) async fn child_page<E, T>(
    loader: &async_graphql::dataloader::DataLoader<loaders::Children<E>>,
    (rel, parent, first, after): (Rel, Uuid, Option<i32>, Option<String>),
    columns: Columns,
    cursor: impl Fn(&E::Model) -> String,
    wrap: impl Fn(E::Model) -> T,
) -> Result<Conn<T>>
where
    E: sea_orm::EntityTrait,
    loaders::Children<E>: async_graphql::dataloader::Loader<
            PageKey,
            Value = Vec<E::Model>,
            Error = loaders::LoadError,
        >,
    T: async_graphql::ContainerType,
{
    let limit = page_size(first)?;
    let after_c = if rel == Rel::ProjectEvents {
        seq_cursor(after)?.map(Cursor::Seq)
    } else {
        id_cursor(after)?.map(Cursor::Id)
    };
    let has_prev = after_c.is_some();
    let rows = loader
        .load_one(PageKey {
            parent,
            limit: limit + 1,
            after: after_c,
            columns,
        })
        .await
        .map_err(db_err)?
        .unwrap_or_default();
    Ok(connection(
        rows,
        limit,
        has_prev,
        TotalCount::Child(rel, parent),
        cursor,
        wrap,
    ))
}
