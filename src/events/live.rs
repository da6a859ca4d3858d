//! A stream of events after a cursor: the log replayed, then the bus followed,
//! with no gap and no duplicate; slow readers get stubs, not unbounded memory.

use crate::domain::EventType;
use crate::entity::event;
use crate::error::AppError;
use crate::rls::Scoped;
use futures::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::*;

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
pub(crate) async fn settled(bus: &EventBus) -> i64 {
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
pub(crate) async fn resync(bus: &EventBus, cursor: i64) -> AppError {
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
pub(crate) struct Item {
    pub(crate) prev: i64,
    pub(crate) body: Ring,
}

/// An event on the ring, or the stub of one too large for the ring's byte
/// budget.
#[derive(Clone)]
pub(crate) enum Ring {
    Whole(Arc<event::Model>),
    Stub(Stub),
}

impl Item {
    pub(crate) fn seq(&self) -> i64 {
        match &self.body {
            Ring::Whole(e) => e.seq,
            Ring::Stub(s) => s.seq,
        }
    }

    /// What filters look at.
    pub(crate) fn stub(&self) -> Stub {
        match &self.body {
            Ring::Whole(e) => Stub::of(e),
            Ring::Stub(s) => *s,
        }
    }
}

/// What a stream's filter looks at, without the payload.
#[derive(Clone, Copy)]
pub(crate) struct Stub {
    pub(crate) seq: i64,
    pub(crate) tenant_id: Uuid,
    pub(crate) project_id: Option<Uuid>,
    pub(crate) task_id: Option<Uuid>,
    pub(crate) event_type: EventType,
}

impl Stub {
    pub(crate) fn of(e: &event::Model) -> Self {
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
pub(crate) struct RingBudget {
    pub(crate) sizes: std::collections::VecDeque<usize>,
    pub(crate) slots: usize,
    pub(crate) total: usize,
    pub(crate) max: usize,
}

impl RingBudget {
    pub(crate) fn new(capacity: usize, max: usize) -> Self {
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
    pub(crate) fn admit(&mut self, size: usize) -> bool {
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
pub(crate) fn payload_bytes(e: &event::Model) -> usize {
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

pub(crate) const RETRY_MIN: Duration = Duration::from_millis(100);

pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);
