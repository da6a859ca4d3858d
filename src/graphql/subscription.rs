//! Subscription roots. Every stream replays from the event log after the
//! given cursor, then follows new commits, with no gap and no duplicate (see
//! `crate::events`). Each item carries its cursor.

use super::types::seq_cursor;
use super::{principal, services};
use crate::domain::EventType;
use crate::error::AppError;
use crate::events::{EventBus, EventFilter, stream};
use crate::ids::{self, Kind};
use async_graphql::{Context, ID, Result};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use std::sync::{Arc, Mutex};

/// One operation's events as its root field streams them.
pub type EventStream = BoxStream<'static, Result<Arc<crate::entity::event::Model>, AppError>>;

/// Request data that asks the root field to check its arguments, set up
/// its event stream and hand it over here instead of streaming it: the
/// WebSocket then keeps the event stream and none of the library's
/// per-operation state (see `crate::http::ws`'s light operations).
#[derive(Default)]
pub struct Plan {
    streams: Mutex<Vec<EventStream>>,
    query: Mutex<Option<String>>,
}

impl Plan {
    /// The event streams handed over, one per root field that set one up.
    pub fn take(&self) -> Vec<EventStream> {
        self.streams
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Notes the document the operation ran (a persisted query's text
    /// once looked up), so its items run the same text later.
    pub fn ran(&self, query: &str) {
        if let Ok(mut q) = self.query.lock() {
            *q = Some(query.to_string());
        }
    }

    /// The document noted by [`Plan::ran`].
    pub fn query(&self) -> Option<String> {
        self.query.lock().ok().and_then(|mut q| q.take())
    }

    fn put(&self, s: EventStream) {
        if let Ok(mut v) = self.streams.lock() {
            v.push(s);
        }
    }
}

/// Request data that asks the root field to stream this one item and end:
/// how a light operation runs its selection for one event.
pub struct OneItem(Mutex<Option<Result<Arc<crate::entity::event::Model>, AppError>>>);

impl OneItem {
    /// The item to stream.
    pub fn new(item: Result<Arc<crate::entity::event::Model>, AppError>) -> OneItem {
        OneItem(Mutex::new(Some(item)))
    }
}

/// Whether this execution streams one given item (see [`OneItem`]).
pub(crate) fn one_item(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<Arc<OneItem>>().is_some()
}

fn parse_after(after: Option<String>) -> Result<Option<i64>, AppError> {
    match after.as_deref() {
        None | Some("HEAD") => Ok(None),
        _ => seq_cursor(after),
    }
}

pub(crate) async fn events_of(
    ctx: &Context<'_>,
    project_id: Option<ID>,
    types: Vec<EventType>,
    after: Option<String>,
    persona: Option<uuid::Uuid>,
) -> Result<EventStream> {
    // The item is given: its arguments were checked when the operation
    // was planned, and the filter already chose it.
    if let Some(one) = ctx.data_opt::<Arc<OneItem>>() {
        let item = one.0.lock().ok().and_then(|mut i| i.take());
        return Ok(futures::stream::iter(item).boxed());
    }
    let p = principal(ctx);
    let s = services(ctx);
    let filter = EventFilter {
        tenant_id: p.tenant_id,
        project_id: project_id
            .map(|i| ids::decode(Kind::Project, &i))
            .transpose()?,
        task_id: None,
        types,
        persona_id: persona,
    };
    let after = parse_after(after)?;
    // A cursor from the future (another database, a typo) would otherwise
    // wait silently until the log caught up with it. This process may not
    // yet have heard of a commit on another replica, so ask the database
    // before refusing (on PostgreSQL: whether any committed transaction
    // could have written that position, final or not).
    if let Some(c) = after
        && c > s.bus().head()
    {
        // Boxed, like every await of a subscription's set-up: the stream keeps
        // its set-up future's space for as long as it lives.
        let head = Box::pin(EventBus::read_latest(s.unscoped())).await?;
        if c > head {
            return Err(AppError::bad_input(format!(
                "cursor {c} is ahead of the event log (latest is {head})"
            ))
            .into());
        }
    }
    let events = stream(s.reader(p.tenant_id), s.bus().clone(), filter, after);
    if let Some(plan) = ctx.data_opt::<Arc<Plan>>() {
        plan.put(events.boxed());
        return Ok(futures::stream::empty().boxed());
    }
    Ok(events.boxed())
}

/// Wraps each event of a stream in its GraphQL item type.
pub(crate) fn items<T>(
    s: impl Stream<Item = Result<Arc<crate::entity::event::Model>, AppError>>,
    wrap: fn(Arc<crate::entity::event::Model>) -> T,
) -> impl Stream<Item = Result<T>> {
    s.map(move |r| r.map(wrap).map_err(async_graphql::Error::from))
}
