//! The event bus, the in-process fan-out and the replay-then-live stream.
//!
//! # One total order without a global lock
//!
//! Every event has a position in the log, its `seq` (the stream cursor).
//! Writers never wait for each other to get one:
//!
//! - On PostgreSQL an event's position is [`position`]`(xid, i)`: the id of
//!   the transaction that wrote it (`pg_current_xact_id()`), shifted left by
//!   [`TXN_BITS`], plus its index within that transaction. Positions are
//!   unique and need no lock, but they have holes and are not handed out in
//!   commit order: a transaction with a smaller id may commit after one with
//!   a larger id. They are **final below the horizon**
//!   (`pg_snapshot_xmin(pg_current_snapshot())` shifted the same way, see
//!   [`PG_HORIZON`]): every transaction with a smaller id has committed or
//!   aborted, so no event can appear below it any more. Every read of the
//!   log that streams build on (the fan-out's reads, the events list query
//!   and `Project.events`) reads only below the horizon, computed in the
//!   same statement or before it; in position order the log is then
//!   append-only, which is all the streams need. The price: a transaction
//!   that stays open anywhere in the cluster (any database, any client)
//!   holds delivery back — not writes — while it runs. The list queries
//!   wait for it a little ([`until_final`], at most [`FINAL_WAIT`]), so a
//!   client that polls right after its own mutation sees that mutation's
//!   events whenever the cluster's other writes are short.
//! - On SQLite writers take turns anyway (one in-process lock and
//!   `BEGIN IMMEDIATE`), so positions come from the `event_sequence`
//!   counter, dense and final at commit.
//!
//! Positions written before this scheme (the old counter's small numbers)
//! all lie below any transaction id shifted by [`TXN_BITS`] (checked by the
//! `events_as_positions` migration), so old cursors stay valid.
//!
//! # Three pieces, each with one job
//!
//! - The **head**: the highest position this process knows to be
//!   committed. Local commits move it ([`EventBus::committed`]); with several
//!   replicas on one PostgreSQL database a `LISTEN` connection (and a slow
//!   poll as a safety net) moves it for commits made elsewhere. It carries
//!   positions, never event bodies. After a local commit one notifier task
//!   per process sends the latest position with `pg_notify` to the other
//!   replicas — outside any write transaction, coalescing many commits into
//!   one statement (a notifying transaction takes a database-wide lock at
//!   commit; sending from inside the write transactions serialised them).
//! - The **fan-out**: one task per process that, whenever the head moves,
//!   reads the new events from the log once (all tenants, in position
//!   order, below the horizon) and puts them on a bounded in-memory ring
//!   (`tokio::sync::broadcast`, [`Config::event_buffer`](crate::config::Config)
//!   entries). So a commit costs one read per process, not one per
//!   subscriber. When the horizon holds back a position it knows of, it
//!   reads again soon (1 ms, doubling to 50 ms) rather than at the next
//!   poll. Each ring item carries `prev`, a position below it with no event
//!   in between; the ring announces `delivered`, the position up to which
//!   every event is on the ring (or was).
//! - The **stream** of one subscriber: it registers its filter with the
//!   bus and joins the ring *first*, then replays from the log after its
//!   cursor up to `delivered`, then follows the ring, dropping what it
//!   already sent. When an item's `prev` lies beyond what it has covered, it
//!   missed some — because it fell behind and the ring moved on — and it
//!   reads exactly that range from the log before going on. A slow
//!   subscriber therefore costs no memory while it is slow and never skips
//!   an event; it only reads more rows when it reads again.
//!
//! # Filtered before waking
//!
//! A stream does not wait on the ring itself (every send would wake every
//! stream): it drains the ring without waiting and then sleeps on its own
//! `Notify`. The fan-out checks each new event against the registered
//! filters and wakes only the streams that may want it, after the event is
//! on the ring, leaving them the position of the first such event. A woken
//! stream knows that nothing between its cursor and that position is for
//! it, so it moves its cursor past the events it slept through without
//! reading them, even when the ring has long dropped them. An event a
//! stream's filter excludes costs the stream nothing.
//!
//! The ring is bounded by bytes as well as by count
//! ([`Config::event_buffer_bytes`](crate::config::Config)): an event whose
//! payload would take the ring past its byte budget goes on it as a stub
//! (its position and what filters look at, no payload), and a stream whose
//! filter may want it reads that one row from the log. So a burst of large
//! payloads costs the process at most the byte budget, not the ring's count
//! times the largest payload.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

use crate::domain::EventType;
use crate::entity::event;
use crate::error::{AppError, AppResult};
use crate::rls::Scoped;

/// The PostgreSQL NOTIFY channel that carries committed positions.
pub const CHANNEL: &str = "cerebral_events";

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
const PG_COMMITTED_END: &str = "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint << 20)";

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

/// Shortest pause before the fan-out reads again when the horizon held
/// back a position it knows of.
const HOLD_MIN: Duration = Duration::from_millis(1);

/// Longest such pause.
const HOLD_MAX: Duration = Duration::from_millis(50);

/// How long a stream subscribing at `HEAD` waits for the fan-out to pass
/// the commits this process already knows of (so `HEAD` starts after them),
/// at most.
const HEAD_WAIT: Duration = Duration::from_secs(1);

/// Rows read from the log per query while catching up.
const PAGE: u64 = 200;

/// Rows read per query by the fan-out.
const FANOUT_PAGE: u64 = 500;

/// Most memory one page of events read from the log may take (payloads as
/// parsed JSON, estimated by [`payload_bytes`]): every page also stops
/// here, whatever its row count, so a run of large events costs a
/// catching-up stream (and the fan-out) at most this per read, however
/// many streams read at once (they take turns, see `reads`).
const PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Publishes committed events to every stream of this process.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Highest position known to be committed (the fan-out's target).
    head: watch::Sender<i64>,
    /// Every event at or below this position is on `feed` (or was).
    delivered: watch::Sender<i64>,
    /// The position of the last event announced by `delivered` (no event
    /// lies between it and `delivered`), or where the process started;
    /// stored before the announcement.
    last_event: std::sync::atomic::AtomicI64,
    /// The latest position committed by this process, for the notifier.
    notify: watch::Sender<i64>,
    /// The recent events of every tenant, in log order.
    feed: broadcast::Sender<Item>,
    /// The streams of this process, by tenant, with what they want.
    waiters: std::sync::Mutex<std::collections::HashMap<Uuid, Waiters>>,
    /// Id of the next registered stream.
    next_waiter: std::sync::atomic::AtomicU64,
    /// How far right a position is shifted to measure subscriber lag
    /// ([`TXN_BITS`] on PostgreSQL: lag in transactions there).
    lag_shift: std::sync::atomic::AtomicU32,
    /// Most bytes the events held whole on the ring may take (estimated
    /// memory of their payloads).
    ring_bytes: usize,
    /// Items the ring holds.
    ring_capacity: usize,
    /// Largest number of log events one stream replays before it answers
    /// `RESYNC_REQUIRED` instead (0: no limit).
    max_replay: i64,
    /// Times a stream fell behind the ring and read the gap from the log:
    /// steadily rising means `CEREBRAL_EVENT_BUFFER` is too small for the
    /// burst size (or a subscriber is slow).
    gap_reads: std::sync::atomic::AtomicU64,
    /// Log reads streams may run at once (replays and gap reads). After a
    /// burst larger than the ring, or when a replica's subscribers all
    /// reconnect elsewhere, every stream wants the log at the same moment;
    /// they take turns instead of taking every pooled connection from the
    /// requests.
    reads: tokio::sync::Semaphore,
    /// Where published and delivered events are counted (set once by the
    /// server; a bare bus counts nothing).
    metrics: std::sync::OnceLock<Arc<crate::metrics::Metrics>>,
    /// On PostgreSQL: whether the `LISTEN` connection is up (readiness).
    listening: std::sync::atomic::AtomicBool,
}

/// The registered streams of one tenant.
type Waiters = std::collections::HashMap<u64, Arc<Waiter>>;

/// What the fan-out knows of one stream: its filter, how to wake it, and
/// the first event it may want since it last looked.
struct Waiter {
    filter: EventFilter,
    wake: Notify,
    /// Position of the first event put on the ring for this stream since
    /// the stream last took it (`i64::MAX`: none).
    first: std::sync::atomic::AtomicI64,
}

/// A stream's registration; dropping it unregisters the stream.
struct Registration {
    bus: EventBus,
    tenant: Uuid,
    id: u64,
    waiter: Arc<Waiter>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut all) = self.bus.inner.waiters.lock()
            && let Some(of_tenant) = all.get_mut(&self.tenant)
        {
            of_tenant.remove(&self.id);
            if of_tenant.is_empty() {
                all.remove(&self.tenant);
            }
        }
    }
}

impl EventBus {
    /// A bus whose head starts at `head` (the committed maximum at start-up)
    /// with a ring of `capacity` events; a stream that would replay more
    /// than `max_replay` events (0: no limit) is told to resync instead.
    ///
    /// At most `concurrent_reads` streams read the log at once.
    ///
    /// Events whole on the ring take at most `ring_bytes` (see the module
    /// documentation).
    pub fn new(
        head: i64,
        capacity: usize,
        ring_bytes: usize,
        max_replay: u64,
        concurrent_reads: usize,
    ) -> Self {
        let (head_tx, _) = watch::channel(head);
        let (delivered, _) = watch::channel(head);
        let (notify, _) = watch::channel(head);
        let (feed, _) = broadcast::channel(capacity.max(1));
        EventBus {
            inner: Arc::new(Inner {
                head: head_tx,
                delivered,
                notify,
                last_event: std::sync::atomic::AtomicI64::new(head),
                feed,
                waiters: Default::default(),
                next_waiter: Default::default(),
                lag_shift: Default::default(),
                ring_bytes,
                ring_capacity: capacity.max(1),
                max_replay: i64::try_from(max_replay).unwrap_or(i64::MAX),
                gap_reads: Default::default(),
                reads: tokio::sync::Semaphore::new(concurrent_reads.max(1)),
                metrics: std::sync::OnceLock::new(),
                listening: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Counts this bus's published and delivered events, and subscriber
    /// lag, in `metrics` (the first call wins).
    pub fn set_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Whether the PostgreSQL `LISTEN` connection is up: without it this
    /// replica hears of other replicas' events only by polling.
    pub fn listening(&self) -> bool {
        self.inner
            .listening
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_listening(&self, up: bool) {
        self.inner
            .listening
            .store(up, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that `e` is being handed to a subscriber.
    fn delivering(&self, e: &event::Model) {
        if let Some(m) = self.inner.metrics.get() {
            m.events_delivered.increment(1);
            let shift = self
                .inner
                .lag_shift
                .load(std::sync::atomic::Ordering::Relaxed);
            m.subscriber_lag
                .record(((self.head() >> shift) - (e.seq >> shift)).max(0) as f64);
        }
    }

    /// Reads from the database the position up to which the log is final:
    /// the last position of the `event_sequence` counter on SQLite, one
    /// below the horizon on PostgreSQL.
    pub async fn read_head(db: &impl ConnectionTrait) -> AppResult<i64> {
        Self::read_one(db, format!("SELECT {PG_HORIZON} - 1 AS last_seq")).await
    }

    /// Reads from the database the largest position a committed event may
    /// have (on PostgreSQL it may not be final yet): a cursor beyond it
    /// comes from another database, or is made up.
    pub async fn read_latest(db: &DatabaseConnection) -> AppResult<i64> {
        Self::read_one(db, format!("SELECT {PG_COMMITTED_END} - 1 AS last_seq")).await
    }

    async fn read_one(db: &impl ConnectionTrait, pg: String) -> AppResult<i64> {
        let backend = db.get_database_backend();
        let sql = match backend {
            sea_orm::DbBackend::Postgres => pg,
            _ => "SELECT last_seq FROM event_sequence WHERE name = 'events'".to_string(),
        };
        let row = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?;
        Ok(match row {
            Some(r) => r.try_get("", "last_seq")?,
            None => 0,
        })
    }

    /// Measures subscriber lag in transactions rather than positions (on
    /// PostgreSQL, where positions are transaction ids shifted left).
    pub fn lag_in_transactions(&self) {
        self.inner
            .lag_shift
            .store(TXN_BITS, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that this process committed events up to `seq`: the local
    /// fan-out reads them, and the notifier tells the other replicas.
    pub fn committed(&self, seq: i64) {
        self.published(seq);
        self.inner.notify.send_if_modified(|n| {
            if seq > *n {
                *n = seq;
                true
            } else {
                false
            }
        });
    }

    /// Records that events up to `seq` are committed (here or elsewhere).
    pub fn published(&self, seq: i64) {
        self.inner.head.send_if_modified(|h| {
            if seq > *h {
                *h = seq;
                true
            } else {
                false
            }
        });
    }

    /// The highest committed position this process knows of (on
    /// PostgreSQL it may not be final yet: see the module documentation).
    pub fn head(&self) -> i64 {
        *self.inner.head.borrow()
    }

    /// The position up to which the fan-out has put every event on the
    /// ring: final, and a safe place to start a stream.
    pub fn delivered(&self) -> i64 {
        *self.inner.delivered.borrow()
    }

    /// Registers a stream's filter: from now on the fan-out wakes it for
    /// the events that filter may want.
    fn register(&self, filter: &EventFilter) -> Registration {
        let id = self
            .inner
            .next_waiter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let waiter = Arc::new(Waiter {
            filter: filter.clone(),
            wake: Notify::new(),
            first: std::sync::atomic::AtomicI64::new(i64::MAX),
        });
        if let Ok(mut all) = self.inner.waiters.lock() {
            all.entry(filter.tenant_id)
                .or_default()
                .insert(id, waiter.clone());
        }
        Registration {
            bus: self.clone(),
            tenant: filter.tenant_id,
            id,
            waiter,
        }
    }

    /// Wakes the registered streams that may want some of `items` (just put
    /// on the ring), leaving each the position of the first such item.
    fn wake(&self, items: &[Item]) {
        let mut woken: Vec<Arc<Waiter>> = Vec::new();
        {
            let Ok(all) = self.inner.waiters.lock() else {
                return;
            };
            let mut seen = std::collections::HashSet::new();
            for item in items {
                let stub = item.stub();
                let Some(of_tenant) = all.get(&stub.tenant_id) else {
                    continue;
                };
                for (id, w) in of_tenant {
                    if w.filter.may_match(&stub) {
                        w.first
                            .fetch_min(stub.seq, std::sync::atomic::Ordering::AcqRel);
                        if seen.insert(*id) {
                            woken.push(w.clone());
                        }
                    }
                }
            }
        }
        for w in woken {
            w.wake.notify_one();
        }
    }

    /// Times a stream fell behind the ring and read the gap from the log.
    pub fn gap_reads(&self) -> u64 {
        self.inner
            .gap_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Streams currently joined to the ring.
    pub fn listeners(&self) -> usize {
        self.inner.feed.receiver_count()
    }

    /// Starts the fan-out: whenever the head moves, reads the new events
    /// from the log and puts them on the ring, in order. `db` must read
    /// every tenant's events ([`crate::rls::Scope::AllTenants`]), and reads
    /// the PostgreSQL horizon too (no tenant rows: on a kept all-tenants
    /// session, the two reads are two round trips and nothing else). It
    /// should not count towards per-request statement figures (see
    /// [`crate::rls::Scoped::uncounted`]).
    /// A failing read is retried with a growing pause; the ring then simply
    /// moves on later, and streams that see the jump read the range from
    /// the log themselves.
    pub fn spawn_fanout(&self, db: Scoped) {
        let bus = self.clone();
        tokio::spawn(async move {
            let pg = db.get_database_backend() == sea_orm::DbBackend::Postgres;
            let mut head = bus.inner.head.subscribe();
            let mut pause = RETRY_MIN;
            let mut hold = HOLD_MIN;
            let mut budget = RingBudget::new(bus.inner.ring_capacity, bus.inner.ring_bytes);
            loop {
                let target = *head.borrow_and_update();
                let mut done = bus.delivered();
                while done < target {
                    // Below `bound` every position is final: on PostgreSQL
                    // the horizon, read first (it only grows, so whatever
                    // the read below sees under it is complete); on SQLite
                    // positions are final at commit.
                    let bound = if pg {
                        match Self::read_head(&db).await {
                            Ok(h) => h,
                            Err(e) => {
                                tracing::warn!(error = %e, "event horizon read failed; retrying");
                                tokio::time::sleep(pause).await;
                                pause = (pause * 2).min(RETRY_MAX);
                                continue;
                            }
                        }
                    } else {
                        target
                    };
                    if bound <= done {
                        // Held back: a transaction older than what we know
                        // of is still running somewhere.
                        break;
                    }
                    let stmt = event::Entity::find()
                        .filter(event::Column::Seq.gt(done))
                        .filter(event::Column::Seq.lte(bound))
                        .order_by_asc(event::Column::Seq)
                        .limit(FANOUT_PAGE)
                        .build(db.get_database_backend());
                    let (rows, cut) = match db.rows_within(stmt, PAGE_BYTES, payload_bytes).await {
                        Ok(read) => {
                            pause = RETRY_MIN;
                            read
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, after = done, "event fan-out read failed; retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(RETRY_MAX);
                            continue;
                        }
                    };
                    let full = cut || rows.len() as u64 == FANOUT_PAGE;
                    let batch_end = match (full, rows.last()) {
                        (true, Some(last)) => last.seq,
                        _ => bound,
                    };
                    // Announce the batch *before* putting it on the ring. A
                    // stream that joins the ring and then reads `delivered`
                    // either sees the new value (and replays these rows from
                    // the log, where they already are) or joined before the
                    // sends below (and receives them). Announcing after the
                    // sends would let a stream join just after them, read
                    // the old value, and wait for the next commit.
                    // The batch's last event is recorded before it is
                    // announced, so whoever reads `delivered` and then
                    // `last_event` sees every event below what it read.
                    if let Some(last) = rows.last() {
                        bus.inner
                            .last_event
                            .store(last.seq, std::sync::atomic::Ordering::Release);
                    }
                    bus.inner.delivered.send_replace(batch_end);
                    if let Some(m) = bus.inner.metrics.get() {
                        m.events_published.increment(rows.len() as u64);
                    }
                    let mut prev = done;
                    let mut items = Vec::with_capacity(rows.len());
                    for row in rows {
                        let seq = row.seq;
                        let body = if budget.admit(payload_bytes(&row)) {
                            Ring::Whole(Arc::new(row))
                        } else {
                            Ring::Stub(Stub::of(&row))
                        };
                        let item = Item { prev, body };
                        prev = seq;
                        // No receiver is fine: nobody is listening.
                        let _ = bus.inner.feed.send(item.clone());
                        items.push(item);
                    }
                    // After the sends: a woken stream finds them on the ring.
                    bus.wake(&items);
                    done = batch_end;
                }
                if done < target {
                    // A position we know of is committed but not yet final:
                    // look again soon (the poll would be much later).
                    tokio::select! {
                        _ = tokio::time::sleep(hold) => {}
                        changed = head.changed() => if changed.is_err() { break },
                    }
                    hold = (hold * 2).min(HOLD_MAX);
                    continue;
                }
                hold = HOLD_MIN;
                if head.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    /// On PostgreSQL: sends `pg_notify(CHANNEL, position)` whenever this
    /// process commits, so other replicas' fan-outs read at once. Outside
    /// the write transactions, and one statement for however many commits
    /// happened while the previous one ran. A commit whose notification is
    /// lost (crash between commit and notify, a failed send) reaches the
    /// other replicas at their next poll.
    pub fn spawn_pg_notifier(&self, db: DatabaseConnection) {
        let bus = self.clone();
        tokio::spawn(async move {
            let pool = db.get_postgres_connection_pool().clone();
            let mut latest = bus.inner.notify.subscribe();
            let mut pause = RETRY_MIN;
            while latest.changed().await.is_ok() {
                let seq = *latest.borrow_and_update();
                let sent = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(seq.to_string())
                    .execute(&pool)
                    .await;
                match sent {
                    Ok(_) => pause = RETRY_MIN,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot notify other replicas; their poll will see the events");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        });
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

    /// On PostgreSQL: one `LISTEN` connection per process. After every
    /// commit that appended events the committing process sends
    /// `pg_notify(CHANNEL, position)` (see [`EventBus::spawn_pg_notifier`]),
    /// and this listener moves the local head, so a subscriber on any
    /// replica hears of an event as soon as it is committed. When the
    /// connection drops, notifications sent meanwhile are lost — so after
    /// every reconnect the head is read from the database; streams then
    /// catch up from the log, never skipping.
    pub fn spawn_pg_listener(&self, db: DatabaseConnection) {
        let bus = self.clone();
        // Reads go straight to the pool, outside sea-orm's statement counter:
        // this background work would otherwise show up in the per-request
        // statement figures at random moments.
        async fn head(pool: &sea_orm::sqlx::PgPool) -> Option<i64> {
            sea_orm::sqlx::query_scalar::<_, i64>(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20) - 1",
            )
            .fetch_one(pool)
            .await
            .ok()
        }
        tokio::spawn(async move {
            let pool = db.get_postgres_connection_pool().clone();
            // The LISTEN connection is held for as long as the process runs,
            // so it comes from a pool of its own: taken from the serving
            // pool, it would leave a pool of one with nothing for requests.
            let listen_pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with((*pool.connect_options()).clone());
            loop {
                let mut listener =
                    match sea_orm::sqlx::postgres::PgListener::connect_with(&listen_pool).await {
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
                bus.set_listening(true);
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
                            // Connection lost. Reconnect and LISTEN again;
                            // the head read after that catches up on what
                            // was missed meanwhile.
                            tracing::warn!("event listener lost its connection; reconnecting");
                            bus.set_listening(false);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed; reconnecting");
                            bus.set_listening(false);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                }
            }
        });
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
    fn query(&self, backend: sea_orm::DbBackend) -> sea_orm::Select<event::Entity> {
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
    fn may_match(&self, s: &Stub) -> bool {
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

/// Every matching event after `after`, then every new one as it commits, in
/// order, none twice. `after = None` starts after what this process knows
/// to be committed (live only).
///
/// A failing read (pool exhausted, connection reset) does not end the
/// stream: it is retried from the same cursor with a growing pause (0.1 s up
/// to 5 s), so the subscriber sees a delay, never a gap. The one way the
/// stream ends early is `RESYNC_REQUIRED`, as its last item, when the
/// subscriber is further behind than the configured replay limit.
pub fn stream(
    db: Scoped,
    bus: EventBus,
    filter: EventFilter,
    after: Option<i64>,
) -> impl Stream<Item = Result<Arc<event::Model>, AppError>> {
    async_stream::stream! {
        // Register and join the ring before reading the log, so nothing
        // committed in between can fall through.
        let registration = bus.register(&filter);
        let waiter = registration.waiter.clone();
        let mut feed = bus.inner.feed.subscribe();
        let mut cursor = match after {
            Some(c) => c,
            None => Box::pin(settled(&bus)).await,
        };
        // Measured against the committed head: the ring may not have caught
        // up yet, and its jumps alone would not show the distance.
        let head = bus.head().max(bus.delivered());
        if Box::pin(too_far(&db, &bus, &filter, cursor, head)).await {
            yield Err(Box::pin(resync(&bus, cursor)).await);
            return;
        }
        // Replay from the log up to what the ring has already passed; the
        // ring holds the rest (or an item's `prev` shows it does not).
        let mut upto = bus.delivered();
        // A ring item that showed a gap, sent once the gap before it is.
        let mut held: Option<Item> = None;
        loop {
            while cursor < upto {
                // Boxed: an idle stream should not carry the query's state inline.
                let (page, full) = Box::pin(read_page(&db, &bus, &filter, cursor, upto)).await;
                for e in page {
                    cursor = e.seq;
                    if filter.matches_payload(&e) {
                        bus.delivering(&e);
                        yield Ok(Arc::new(e));
                    }
                }
                if !full {
                    cursor = upto;
                    // Replaying (no ring item waiting): the ring may have
                    // moved on meanwhile. Filling a gap reads just the gap.
                    if held.is_none() {
                        upto = upto.max(bus.delivered());
                    }
                }
            }
            if let Some(item) = held.take()
                && item.seq() > cursor
            {
                match item.body {
                    Ring::Whole(e) => {
                        cursor = e.seq;
                        if filter.matches(&e) {
                            bus.delivering(&e);
                            yield Ok(e);
                        }
                    }
                    // Its payload is only in the log: read that one row
                    // (the filter in SQL drops it if it is not wanted).
                    Ring::Stub(s) if filter.may_match(&s) => {
                        upto = s.seq;
                        continue;
                    }
                    Ring::Stub(s) => cursor = s.seq,
                }
            }
            let item = match feed.try_recv() {
                Ok(item) => item,
                // Fell behind the ring: the next item's `prev` shows the
                // gap, and the missing range comes from the log.
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(broadcast::error::TryRecvError::Closed) => break,
                Err(broadcast::error::TryRecvError::Empty) => {
                    // Nothing on the ring for us: sleep until the fan-out
                    // puts something there this stream may want.
                    waiter.wake.notified().await;
                    if let Some(m) = bus.inner.metrics.get() {
                        m.stream_wakeups.increment(1);
                    }
                    // Every event between the cursor and the first one put
                    // on the ring for us since we last looked was checked
                    // against our filter and is not for us: skip past them
                    // without reading them, wherever the ring is now.
                    let first = waiter
                        .first
                        .swap(i64::MAX, std::sync::atomic::Ordering::AcqRel);
                    if first != i64::MAX {
                        cursor = cursor.max(first - 1);
                    }
                    continue;
                }
            };
            if item.seq() <= cursor {
                continue;
            }
            if item.prev > cursor {
                bus.inner
                    .gap_reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                upto = item.prev;
                if Box::pin(too_far(&db, &bus, &filter, cursor, upto)).await {
                    yield Err(Box::pin(resync(&bus, cursor)).await);
                    return;
                }
            }
            held = Some(item);
        }
        drop(registration);
    }
}

/// Where a stream that starts at `HEAD` starts: after every commit this
/// process knows of when it subscribes (so a client's own earlier writes
/// are not replayed to it), once the fan-out has passed them — waiting for
/// that at most [`HEAD_WAIT`] (a transaction left open elsewhere can hold
/// the horizon back; the stream then starts a little earlier).
///
/// Never past `known`: the fan-out may pass commits made while it waited,
/// and starting after those would lose them for good. Past it only when no
/// event lies beyond it (the usual case on PostgreSQL, where `delivered`
/// follows the horizon, not the events), so that starting costs no read of
/// the log.
///
/// Still open on PostgreSQL: a transaction with a smaller id than the
/// last known commit that commits *during* the wait gets a position below
/// `known` and is skipped, as it was before. Telling it from the commits
/// made before the subscription needs the transaction snapshot of the
/// moment of subscribing (one statement per HEAD subscription).
async fn settled(bus: &EventBus) -> i64 {
    let known = bus.head();
    let mut delivered = bus.inner.delivered.subscribe();
    let _ = tokio::time::timeout(HEAD_WAIT, delivered.wait_for(|d| *d >= known)).await;
    let d = bus.delivered();
    // Read after `delivered`: it covers every event announced up to `d`.
    let last = bus
        .inner
        .last_event
        .load(std::sync::atomic::Ordering::Acquire);
    if last <= known { d } else { d.min(known) }
}

/// One page of matching events in `(after, upto]` and whether it was full,
/// read under one of the bus's read permits. A failing read is retried
/// with a growing pause (0.1 s up to 5 s): a delay, never a gap.
async fn read_page(
    db: &Scoped,
    bus: &EventBus,
    filter: &EventFilter,
    after: i64,
    upto: i64,
) -> (Vec<event::Model>, bool) {
    let mut pause = RETRY_MIN;
    loop {
        let read = {
            let _permit = bus.inner.reads.acquire().await;
            filter.page_between(db, after, upto, PAGE).await
        };
        match read {
            Ok((page, cut)) => {
                let full = cut || page.len() as u64 == PAGE;
                return (page, full);
            }
            Err(e) => {
                tracing::warn!(error = ?e, after, "event stream read failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Whether more than the replay limit of this stream's events lie in
/// `(after, upto]`. Counted in the stream's own events, so a quiet tenant is
/// not sent away because another one was busy. A failed check lets the
/// replay go ahead: the limit protects the server, it never hides events.
async fn too_far(db: &Scoped, bus: &EventBus, filter: &EventFilter, after: i64, upto: i64) -> bool {
    let limit = bus.inner.max_replay;
    // Positions are distinct integers: a range no wider than the limit
    // cannot hold more events than it (with holes it usually holds far
    // fewer, and the probe below counts).
    if limit <= 0 || upto.saturating_sub(after) <= limit {
        return false;
    }
    let _permit = bus.inner.reads.acquire().await;
    filter
        .beyond(db, after, upto, limit as u64)
        .await
        .unwrap_or(false)
}

/// The `RESYNC_REQUIRED` error, with the latest cursor once the fan-out has
/// passed what this process knows to be committed (see [`settled`]).
async fn resync(bus: &EventBus, cursor: i64) -> AppError {
    settled(bus).await;
    let max_replay = bus.inner.max_replay;
    AppError::ResyncRequired {
        // Final (nothing can appear before it once the client resumes
        // there), and the cursor of an event when the process has seen one.
        latest_cursor: bus
            .inner
            .last_event
            .load(std::sync::atomic::Ordering::Acquire),
        reason: format!(
            "the stream is more than {max_replay} events behind (at {cursor}); reload with queries and subscribe again from latestCursor"
        ),
    }
}

/// One item of the ring: an event (or its stub) and `prev`, a position
/// below it such that no event lies in between. A stream that has covered
/// the log up to `prev` misses nothing by taking this item next.
#[derive(Clone)]
struct Item {
    prev: i64,
    body: Ring,
}

/// An event on the ring, or the stub of one too large for the ring's byte
/// budget.
#[derive(Clone)]
enum Ring {
    Whole(Arc<event::Model>),
    Stub(Stub),
}

impl Item {
    fn seq(&self) -> i64 {
        match &self.body {
            Ring::Whole(e) => e.seq,
            Ring::Stub(s) => s.seq,
        }
    }

    /// What filters look at.
    fn stub(&self) -> Stub {
        match &self.body {
            Ring::Whole(e) => Stub::of(e),
            Ring::Stub(s) => *s,
        }
    }
}

/// What a stream's filter looks at, without the payload.
#[derive(Clone, Copy)]
struct Stub {
    seq: i64,
    tenant_id: Uuid,
    project_id: Option<Uuid>,
    task_id: Option<Uuid>,
    event_type: EventType,
}

impl Stub {
    fn of(e: &event::Model) -> Self {
        Stub {
            seq: e.seq,
            tenant_id: e.tenant_id,
            project_id: e.project_id,
            task_id: e.task_id,
            event_type: e.event_type,
        }
    }
}

/// The bytes of the events held whole in the ring's last `slots` items.
struct RingBudget {
    sizes: std::collections::VecDeque<usize>,
    slots: usize,
    total: usize,
    max: usize,
}

impl RingBudget {
    fn new(capacity: usize, max: usize) -> Self {
        // A broadcast channel rounds its capacity up to a power of two,
        // and holds that many items.
        let slots = capacity.next_power_of_two();
        RingBudget {
            sizes: std::collections::VecDeque::with_capacity(slots),
            slots,
            total: 0,
            max,
        }
    }

    /// Whether an event of `size` bytes goes on the ring whole; either way
    /// it takes a slot, and the oldest item leaves.
    fn admit(&mut self, size: usize) -> bool {
        if self.sizes.len() == self.slots
            && let Some(old) = self.sizes.pop_front()
        {
            self.total -= old;
        }
        let whole = self.total + size <= self.max;
        let kept = if whole { size } else { 0 };
        self.sizes.push_back(kept);
        self.total += kept;
        whole
    }
}

/// About the memory an event takes on the heap: its payload as parsed JSON
/// (a value is 32 bytes, an object member a map entry and its key) and the
/// row's own fields.
fn payload_bytes(e: &event::Model) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(a) => a.iter().map(|v| 32 + value(v)).sum(),
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| 72 + k.len() + value(v)).sum(),
            _ => 0,
        }
    }
    256 + value(&e.payload)
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::RingBudget;

    #[test]
    fn the_ring_keeps_events_whole_only_within_its_bytes() {
        // Four slots, 100 bytes.
        let mut b = RingBudget::new(4, 100);
        assert!(b.admit(60));
        assert!(!b.admit(60), "60 + 60 is past 100: a stub");
        assert!(b.admit(40));
        assert!(!b.admit(1), "full: 100 bytes held");
        // A fifth item pushes the first (60 bytes) out of the ring.
        assert!(b.admit(50));
        assert_eq!(b.total, 90);
        // An event larger than the whole budget is always a stub.
        assert!(!RingBudget::new(4, 100).admit(101));
        // The ring rounds its slots up to a power of two, as tokio does.
        assert_eq!(RingBudget::new(1000, 1).slots, 1024);
    }
}
