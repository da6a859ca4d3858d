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

use crate::entity::event;
use crate::error::AppResult;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

mod filter;
mod live;
mod order;
mod tasks;
pub use filter::*;
pub use live::*;
pub use order::*;

/// The PostgreSQL NOTIFY channel that carries committed positions.
pub const CHANNEL: &str = "cerebral_events";

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
}

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
