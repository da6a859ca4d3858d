//! How a request's DataLoaders gather keys before they query.
//!
//! async-graphql's DataLoader collects the keys its callers ask for, then
//! runs one statement for all of them. It learns that the callers are done
//! by waiting: a timer (`delay`, 200 µs here), after which a task of its own
//! takes the keys and queries. The wait is paid at every nesting level of
//! every query (a three-level query waited 0.4 ms for nothing on an idle
//! server, a lookup by id 0.2 ms), each wait is a wake-up of async-io's
//! timer thread, and a key asked for just after the window closes gets a
//! statement of its own.
//!
//! Over HTTP a query runs as one future in one task, so there is a better
//! signal than time: once that future returns `Pending`, every resolver
//! that could run has run and asked for its keys. [`drive`] polls the
//! operation and only then the fetches its loaders started (a [`Ticks`]
//! spawner hands them over instead of spawning them), so a fetch takes
//! every key of its level at once and starts without a timer. This is the
//! JavaScript DataLoader's "next tick" batching.
//!
//! WebSocket connections keep the timer ([`Batching::Window`]): their
//! loaders serve every operation of the connection, which run in tasks of
//! their own.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::task::ArcWake;

/// How a set of loaders batches (see the module's doc).
#[derive(Clone)]
pub enum Batching {
    /// Gather keys for this long, then fetch on a task of its own.
    Window(Duration),
    /// Fetch once the operation driven by [`drive`] next waits.
    Tick(Ticks),
}

impl Batching {
    /// A DataLoader over `loader` that batches this way.
    pub fn loader<T: Send + Sync + 'static>(&self, loader: T) -> DataLoader<T> {
        match self {
            Batching::Window(delay) => DataLoader::new(loader, tokio::spawn).delay(*delay),
            Batching::Tick(ticks) => {
                let ticks = ticks.clone();
                // A zero delay is ready at its first poll (no timer is set).
                DataLoader::new(loader, move |fetch| ticks.spawn(fetch)).delay(Duration::ZERO)
            }
        }
    }
}

/// Hands the fetches of a request's loaders to the [`drive`] running it.
#[derive(Clone)]
pub struct Ticks(mpsc::UnboundedSender<BoxFuture<'static, ()>>);

impl Ticks {
    /// A spawner and the receiving end that [`drive`] polls.
    pub fn new() -> (Ticks, Fetches) {
        let (tx, rx) = mpsc::unbounded();
        (Ticks(tx), Fetches(rx))
    }

    fn spawn(&self, fetch: BoxFuture<'static, ()>) {
        // After the operation finished (its `drive` is gone), a loader that
        // is still used — nothing does today — gets a task of its own
        // rather than a fetch nobody polls, which would leave its callers
        // waiting for ever.
        if let Err(e) = self.0.unbounded_send(fetch) {
            tokio::spawn(e.into_inner());
        }
    }
}

/// The fetches of one request's loaders, for [`drive`].
pub struct Fetches(mpsc::UnboundedReceiver<BoxFuture<'static, ()>>);

/// Runs `operation` and, each time it waits for something outside itself,
/// the fetches its loaders started meanwhile, in the caller's task. Ends
/// with `operation`; a fetch still running then is dropped (nothing waits
/// for it any more).
///
/// "Waits" means it returned `Pending` without waking itself during that
/// poll. A future that wakes itself is yielding, not waiting: a
/// `FuturesUnordered` (what `try_join_all` runs a list of more than 30
/// items on) returns after every child was polled once, or after two
/// children woke themselves, with its own waker woken — the rest of its
/// children have not asked for their keys yet. Fetching then split a list
/// of 50 projects into 25 statements of two. Such a poll is repeated at
/// once, up to [`YIELDS_IN_A_ROW`] times, then the task goes back to the
/// scheduler (tokio's budget asks for that) and carries on from there.
pub async fn drive<F: Future>(fetches: Fetches, operation: F) -> F::Output {
    let mut operation = pin!(operation);
    let mut rx = fetches.0;
    let mut running = FuturesUnordered::new();
    let flag = Arc::new(Woken::default());
    let waker = futures::task::waker(flag.clone());
    std::future::poll_fn(move |cx| {
        flag.register(cx.waker());
        let mut yields = 0;
        loop {
            flag.woken.store(false, Ordering::Relaxed);
            if let Poll::Ready(out) = operation.as_mut().poll(&mut Context::from_waker(&waker)) {
                return Poll::Ready(out);
            }
            if flag.woken.load(Ordering::Relaxed) {
                yields += 1;
                if yields < YIELDS_IN_A_ROW {
                    continue;
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            while let Poll::Ready(Some(fetch)) = rx.poll_next_unpin(cx) {
                running.push(fetch);
            }
            // A finished fetch has handed its rows to the resolvers waiting
            // for them: run the operation again at once rather than after
            // a round through the scheduler.
            let mut finished = false;
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
                finished = true;
            }
            if !finished {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// How many times in a row [`drive`] polls an operation that keeps waking
/// itself before it lets the scheduler run other tasks.
const YIELDS_IN_A_ROW: u32 = 32;

/// The operation's waker: notes that it was woken and passes the wake on
/// to the task's own waker (kept, not taken: a nested query wakes it once
/// per loaded key).
#[derive(Default)]
struct Woken {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Woken {
    fn register(&self, waker: &Waker) {
        let mut outer = self.outer.lock().unwrap_or_else(PoisonError::into_inner);
        if !outer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *outer = Some(waker.clone());
        }
    }
}

impl ArcWake for Woken {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Relaxed);
        let outer = arc_self
            .outer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = outer.as_ref() {
            w.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::dataloader::Loader;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Records the batches it is asked for.
    struct Recorder(Arc<Mutex<Vec<Vec<u32>>>>);

    impl Loader<u32> for Recorder {
        type Value = u32;
        type Error = std::convert::Infallible;
        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u32>, Self::Error> {
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            self.0.lock().expect("not poisoned").push(keys.clone());
            tokio::task::yield_now().await;
            Ok(keys.into_iter().map(|k| (k, k * 10)).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_asked_for_before_the_operation_waits_are_one_batch_per_level() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (ticks, fetches) = Ticks::new();
        let dl = Batching::Tick(ticks).loader(Recorder(batches.clone()));
        let dl = &dl;
        // As async-graphql resolves a list: `try_join_all`, which runs more
        // than 30 items on a `FuturesUnordered` that yields part-way. Level
        // one: 31 items of 31 siblings each (961 keys, under the
        // loader's 1,000 a batch); level two: each asks for one
        // more key once its first answer came.
        let out = drive(fetches, async move {
            let items = (0..31u32).map(|i| async move {
                let siblings = (0..31u32).map(|j| async move {
                    let v = dl.load_one(i * 100 + j).await?.unwrap_or_default();
                    dl.load_one(v + 1).await
                });
                futures::future::try_join_all(siblings).await
            });
            futures::future::try_join_all(items).await
        })
        .await
        .expect("loaded");
        assert_eq!(out[7][3], Some(70310));
        let batches = batches.lock().expect("not poisoned").clone();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [961, 961], "one statement per level");
    }

    #[tokio::test]
    async fn a_loader_used_after_its_operation_still_answers() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (ticks, fetches) = Ticks::new();
        let dl = Batching::Tick(ticks).loader(Recorder(batches.clone()));
        drive(fetches, async {}).await;
        let v = tokio::time::timeout(Duration::from_secs(5), dl.load_one(3)).await;
        assert_eq!(v.ok().and_then(|r| r.ok()).flatten(), Some(30));
    }
}
