//! The event bus and the replay-then-live event stream.
//!
//! The bus carries no event bodies, only the *head*: the highest sequence
//! number known to be committed. A stream remembers the last sequence number
//! it delivered, reads every matching event after it from the log, and when
//! it has caught up waits for the head to move. Because the log is read in
//! sequence order and sequence numbers are handed out in commit order (see the
//! events migration), a stream can neither skip nor repeat an event, however
//! far behind it falls: a slow reader simply reads more rows next time.
//!
//! In one process, commits move the head directly. With several replicas on
//! one PostgreSQL database, each process also polls the committed head (one
//! single-row query per interval), so an event committed by another replica
//! reaches local subscribers within that interval.

use std::time::Duration;

use futures::Stream;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::EventType;
use crate::entity::event;
use crate::error::AppResult;

/// The PostgreSQL NOTIFY channel that carries committed sequence numbers.
pub const CHANNEL: &str = "cerebral_events";

/// Rows read from the log per query while catching up.
const PAGE: u64 = 200;

/// Publishes the committed head to every stream of this process.
#[derive(Clone)]
pub struct EventBus {
    head: watch::Sender<i64>,
}

impl EventBus {
    /// A bus whose head starts at `head` (the committed maximum at start-up).
    pub fn new(head: i64) -> Self {
        let (tx, _) = watch::channel(head);
        EventBus { head: tx }
    }

    /// Reads the committed head from the database.
    pub async fn read_head(db: &DatabaseConnection) -> AppResult<i64> {
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT last_seq FROM event_sequence WHERE name = 'events'",
            ))
            .await?;
        Ok(match row {
            Some(r) => r.try_get("", "last_seq")?,
            None => 0,
        })
    }

    /// Records that events up to `seq` are committed.
    pub fn published(&self, seq: i64) {
        self.head.send_if_modified(|h| {
            if seq > *h {
                *h = seq;
                true
            } else {
                false
            }
        });
    }

    /// The highest committed sequence number this process knows of.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// Polls the committed head every `interval` until the process ends, so
    /// events committed by other replicas reach this process's streams.
    pub fn spawn_poller(&self, db: DatabaseConnection, interval: Duration) {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match Self::read_head(&db).await {
                    Ok(h) => bus.published(h),
                    Err(e) => tracing::warn!(error = %e, "cannot read the event head"),
                }
            }
        });
    }

    /// On PostgreSQL: one `LISTEN` connection per process. Every commit that
    /// appended events sends `pg_notify(CHANNEL, last_seq)` inside its
    /// transaction (delivered only if it commits), and this listener moves
    /// the local head, so a subscriber on any replica hears of an event as
    /// soon as it is committed. When the connection drops, notifications
    /// sent meanwhile are lost — so after every reconnect the head is read
    /// from the table; streams then catch up from the log, never skipping.
    pub fn spawn_pg_listener(&self, db: DatabaseConnection) {
        let bus = self.clone();
        // Reads go straight to the pool, outside sea-orm's statement counter:
        // this background work would otherwise show up in the per-request
        // statement figures at random moments.
        async fn head(pool: &sea_orm::sqlx::PgPool) -> Option<i64> {
            sea_orm::sqlx::query_scalar::<_, i64>(
                "SELECT last_seq FROM event_sequence WHERE name = 'events'",
            )
            .fetch_one(pool)
            .await
            .ok()
        }
        tokio::spawn(async move {
            let pool = db.get_postgres_connection_pool().clone();
            loop {
                let mut listener =
                    match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener cannot connect; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "event listener cannot LISTEN; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Whatever was committed before LISTEN took effect.
                if let Some(h) = head(&pool).await {
                    bus.published(h);
                }
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            if let Ok(seq) = n.payload().parse::<i64>() {
                                bus.published(seq);
                            }
                        }
                        Ok(None) => {
                            // Connection lost; sqlx reconnects on the next
                            // call. Catch up on what we may have missed.
                            tracing::warn!("event listener reconnecting");
                            if let Some(h) = head(&pool).await {
                                bus.published(h);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed; reconnecting");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                }
            }
        });
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }
}

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
    fn query(&self) -> sea_orm::Select<event::Entity> {
        let mut q = event::Entity::find().filter(event::Column::TenantId.eq(self.tenant_id));
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
    fn matches_payload(&self, e: &event::Model) -> bool {
        match self.persona_id {
            Some(p) => e.payload.get("personaId").and_then(|v| v.as_str()) == Some(&p.to_string()),
            None => true,
        }
    }

    /// Number of matching events in the log (payload filters aside).
    pub async fn count(&self, db: &DatabaseConnection) -> AppResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(self.query().count(db).await?)
    }

    /// One page of matching events with `seq > after`, oldest first.
    pub async fn page(
        &self,
        db: &DatabaseConnection,
        after: i64,
        limit: u64,
    ) -> AppResult<Vec<event::Model>> {
        let rows = self
            .query()
            .filter(event::Column::Seq.gt(after))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(db)
            .await?;
        Ok(rows)
    }
}

/// Every matching event after `after`, then every new one as it commits, in
/// order, none twice. `after = None` starts at the current head (live only).
///
/// A failing read (pool exhausted, connection reset) does not end the
/// stream: it is retried from the same cursor with a growing pause (0.1 s up
/// to 5 s), so the subscriber sees a delay, never a gap.
pub fn stream(
    db: DatabaseConnection,
    bus: EventBus,
    filter: EventFilter,
    after: Option<i64>,
) -> impl Stream<Item = event::Model> {
    async_stream::stream! {
        // Subscribe before reading, so a commit between the read and the wait
        // still wakes us.
        let mut head = bus.subscribe();
        let mut cursor = match after {
            Some(c) => c,
            None => *head.borrow_and_update(),
        };
        let mut pause = RETRY_MIN;
        loop {
            head.borrow_and_update();
            loop {
                let page = match filter.page(&db, cursor, PAGE).await {
                    Ok(page) => {
                        pause = RETRY_MIN;
                        page
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, cursor, "event stream read failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                        continue;
                    }
                };
                let full = page.len() as u64 == PAGE;
                for e in page {
                    cursor = e.seq;
                    if filter.matches_payload(&e) {
                        yield e;
                    }
                }
                if !full {
                    break;
                }
            }
            if head.changed().await.is_err() {
                break;
            }
        }
    }
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
