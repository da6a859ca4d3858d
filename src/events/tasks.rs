//! The bus's background tasks: the fan-out reader that delivers committed
//! events to streams, and on PostgreSQL the NOTIFY sender, the LISTEN
//! connection and the poller that back it up.

use crate::entity::event;
use crate::rls::Scoped;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use std::sync::Arc;
use std::time::Duration;

use super::*;

impl EventBus {
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
