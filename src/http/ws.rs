//! GraphQL over WebSocket, written out rather than taken from
//! async-graphql-axum so every rule of the protocol is ours to keep:
//!
//! - `graphql-transport-ws` exactly as enisdenjo/graphql-ws `PROTOCOL.md`
//!   says: `connection_init` within the init timeout (else close 4408), no
//!   `subscribe` before `connection_ack` (4401), one `connection_init` only
//!   (4429), ids unique among active operations (4409), anything malformed
//!   closes with 4400 and a reason of at most 123 bytes, an operation that
//!   cannot run answers `error` for its id and the socket stays, `complete`
//!   from the client drops that stream at once, `ping` gets `pong`.
//!   Authentication failures in `connection_init` close with 4403.
//! - The legacy `graphql-ws` subprotocol (subscriptions-transport-ws:
//!   `start`/`data`/`stop`/`ka`) on the same state machine, for old clients.
//!
//! Lifetimes are explicit: every operation is a stream owned by its
//! connection's task, so a socket that goes away — closed, reset, or silent
//! for two ping intervals — drops all its streams with it; a gauge counts
//! connections and subscriptions; server shutdown closes every socket with
//! 1001 (going away) so clients reconnect to another replica.

use crate::error::code;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_graphql::{Data, Response};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response as HttpResponse;
use futures::stream::{BoxStream, SplitSink};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::graphql::share::{ItemSlot, SelectionKey};
use crate::graphql::subscription::{EventStream, OneItem, Plan};

/// The subprotocols this endpoint speaks, preferred first.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// WebSocket limits and timers (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Time allowed between the upgrade and `connection_init`.
    pub init_timeout: Duration,
    /// Active operations one socket may hold.
    pub max_subscriptions: usize,
    /// Interval of server pings; `None` turns pinging and the dead-peer
    /// check off.
    pub ping_interval: Option<Duration>,
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// What may arrive before `connection_ack`, in bytes: one message, or
    /// all queued legacy `start`s together.
    pub max_early_bytes: usize,
    /// Legacy `start`s that may be queued before `connection_init`.
    pub max_early_operations: usize,
}

/// Who may open a WebSocket now: open sockets per client address and in
/// total, and new upgrades per address. Checked before the upgrade, so a
/// refused client costs a short HTTP answer, not a socket.
pub struct Admission {
    per_address: usize,
    total: usize,
    open: std::sync::Mutex<OpenSockets>,
    upgrades: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

#[derive(Default)]
struct OpenSockets {
    total: usize,
    by_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// Why an upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its limit of sockets (503).
    Total,
    /// The address holds its limit of sockets (429).
    PerAddress,
    /// The address opens sockets too fast; room again after this (429).
    Rate(Duration),
}

/// One admitted socket's place; freed when dropped, however the socket
/// (or the upgrade) ends.
pub struct Admitted {
    admission: Arc<Admission>,
    address: Option<std::net::IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Ok(mut open) = self.admission.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(a) = self.address
            && let std::collections::hash_map::Entry::Occupied(mut e) = open.by_address.entry(a)
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl Admission {
    /// At most `per_address` open sockets per client address and `total`
    /// in all, and `upgrades_per_second` new ones per address (bursts of
    /// `per_address`); 0 turns each limit off.
    pub fn new(per_address: usize, total: usize, upgrades_per_second: u32) -> Arc<Admission> {
        let upgrades = std::num::NonZeroU32::new(upgrades_per_second).map(|rate| {
            let burst = u32::try_from(per_address)
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .map_or(rate, |b| b.max(rate));
            governor::DefaultKeyedRateLimiter::keyed(
                governor::Quota::per_second(rate).allow_burst(burst),
            )
        });
        let me = Arc::new(Admission {
            per_address,
            total,
            open: Default::default(),
            upgrades,
        });
        // Forget the upgrade buckets of addresses that went quiet, so the
        // map does not grow with every address ever seen.
        if me.upgrades.is_some() {
            let weak = Arc::downgrade(&me);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(me) = weak.upgrade() else { return };
                    if let Some(u) = &me.upgrades {
                        u.retain_recent();
                        u.shrink_to_fit();
                    }
                }
            });
        }
        me
    }

    /// Takes a place for a socket from `address`, or says why not.
    pub fn admit(self: &Arc<Self>, address: Option<std::net::IpAddr>) -> Result<Admitted, Refusal> {
        let mut open = self.open.lock().map_err(|_| Refusal::Total)?;
        if self.total > 0 && open.total >= self.total {
            return Err(Refusal::Total);
        }
        if let Some(a) = address {
            let held = open.by_address.get(&a).copied().unwrap_or(0);
            if self.per_address > 0 && held >= self.per_address {
                return Err(Refusal::PerAddress);
            }
            if let Some(u) = &self.upgrades
                && let Err(not_until) = u.check_key(&a)
            {
                use governor::clock::{Clock, DefaultClock};
                return Err(Refusal::Rate(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ));
            }
            *open.by_address.entry(a).or_insert(0) += 1;
        }
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }
}

/// Live WebSocket figures of this process, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct WsGauges {
    connections: AtomicI64,
    subscriptions: AtomicI64,
}

impl WsGauges {
    /// Open WebSocket connections.
    pub fn connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Active operations over all WebSocket connections.
    pub fn subscriptions(&self) -> i64 {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

/// Adds one to a gauge for as long as it lives, so no exit path can leave a
/// count behind.
struct Held(Arc<WsGauges>, fn(&WsGauges) -> &AtomicI64);

impl Held {
    fn new(g: Arc<WsGauges>, which: fn(&WsGauges) -> &AtomicI64) -> Self {
        which(&g).fetch_add(1, Ordering::Relaxed);
        Held(g, which)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws` (enisdenjo/graphql-ws).
    TransportWs,
    /// `graphql-ws` (apollographql/subscriptions-transport-ws).
    Legacy,
}

/// Accepts the upgrade with deliberately small buffers: an idle socket
/// should cost a few kilobytes, not the 128 KiB read buffer tungstenite
/// allocates by default. Nothing is queued for a client beyond the message
/// being written: each send waits until the socket takes it (write buffer
/// 0), so a client that stops reading stops its streams — which then cost
/// nothing and catch up from the log later — instead of growing a queue.
pub fn upgrade(
    app: AppState,
    upgrade: WebSocketUpgrade,
    from_header: Option<crate::auth::Verified>,
    address: Option<std::net::IpAddr>,
    admitted: Admitted,
) -> HttpResponse {
    let s = app.ws.clone();
    upgrade
        .protocols(PROTOCOLS)
        .read_buffer_size(1024)
        // Frames ready together are written together (see `run`); a
        // `flush` writes the buffer whatever its size.
        .write_buffer_size(BATCH_BYTES)
        .max_message_size(s.max_message_bytes)
        .max_frame_size(s.max_message_bytes)
        .on_upgrade(move |socket| {
            let protocol = match socket.protocol().and_then(|p| p.to_str().ok()) {
                Some("graphql-ws") => Protocol::Legacy,
                // No subprotocol asked for: the current protocol.
                _ => Protocol::TransportWs,
            };
            Connection::new(socket, protocol, app, from_header, address, admitted).run()
        })
}

/// Most `next` frames written in one go: those ready at once, up to this
/// many or [`BATCH_BYTES`], are queued and then flushed together.
const BATCH_FRAMES: usize = 64;

/// Bytes of frames past which a batch is flushed (and past which the
/// socket's write buffer writes out on its own).
const BATCH_BYTES: usize = 16 * 1024;

/// What one item of an operation's stream means for the socket.
enum Item {
    /// A result to send as `next` (`data` in the legacy protocol): the
    /// serialized payload, and whether it came from another subscriber's
    /// execution (see [`crate::graphql::share`]).
    Next(Arc<str>, bool),
    /// An item could not be run or serialized (a bug, never expected):
    /// the socket is closed rather than sent a wrong payload.
    Broken,
    /// The operation could not start: send `error` and forget it.
    Refused(Box<Response>),
    /// The stream ended: send `complete`.
    End,
}

/// One operation's stream, counted in the gauge while it exists.
struct Operation {
    run: Run,
    /// The operation's link to the shared frames; `None` when its items
    /// cannot be shared.
    slot: Option<Arc<ItemSlot>>,
    first: bool,
    ended: bool,
    _held: Held,
}

/// How an operation runs.
///
/// An idle subscription held by async-graphql costs its stream, the parsed
/// document, the query environment and the root field's stream: about
/// 8 KB a socket, most of an idle socket's memory (docs/benchmarks.md).
/// Yet most sockets share their selection with others, whose items the
/// shared frames answer anyway. So an operation that can share is *light*:
/// it is planned first — the library runs it with a [`Plan`] in its data,
/// the root field checks its arguments and hands its event stream over
/// instead of streaming it — and then the operation holds only that event
/// stream. For each event it takes the payload from the shared frames, or,
/// the first of its selection to reach the event, runs the operation
/// through the library once for that event ([`OneItem`]) and stores the
/// payload for the others. The frames are the same as a full run's: the
/// same document, variables and caller run the same resolvers and hooks.
enum Run {
    /// The library's stream does everything, item by item: an operation
    /// that cannot share.
    Full(BoxStream<'static, Response>),
    /// Being planned; what was asked is kept to run it in full should it
    /// not plan (several root fields).
    Planning {
        setup: BoxStream<'static, Response>,
        plan: Arc<Plan>,
        asked: Box<Asked>,
    },
    /// Planned: its events, and each event's payload from the shared
    /// frames or one run of the selection.
    Light(Box<Light>),
}

/// What a subscribe asked for, to run it in full if planning does not do.
struct Asked {
    request: Value,
    schema: crate::graphql::AppSchema,
    session: Arc<Data>,
}

/// A planned operation.
struct Light {
    events: EventStream,
    /// The document its items run, when it differs from the one sent (a
    /// persisted query's text).
    query: Option<String>,
    schema: crate::graphql::AppSchema,
    session: Arc<Data>,
    /// The item being run: its event (`None` for an error) and the run.
    running: Option<(Option<i64>, BoxStream<'static, Response>)>,
}

impl Operation {
    /// An operation run in full by the library.
    fn full(stream: BoxStream<'static, Response>, held: Held) -> Operation {
        Operation {
            run: Run::Full(stream),
            slot: None,
            first: true,
            ended: false,
            _held: held,
        }
    }

    /// An executed item: the protocol's `error` when it is the first and
    /// nothing executed (a parse, validation or argument error), else its
    /// payload.
    fn answer(&mut self, r: Response, seq: Option<i64>) -> Item {
        let first = std::mem::replace(&mut self.first, false);
        if first && nothing_ran(&r) {
            self.ended = true;
            return Item::Refused(Box::new(r));
        }
        let text: Arc<str> = match serde_json::to_string(&r) {
            Ok(t) => Arc::from(t),
            Err(_) => return Item::Broken,
        };
        if let (Some(seq), Some(slot)) = (seq, &self.slot) {
            slot.keep(seq, &r, &text);
        }
        Item::Next(text, false)
    }

    /// Planning ended with `streams` handed over: light with one; with
    /// none (every root skipped by `@skip` or `@include`) nothing to
    /// stream, as a full run would find; with several, whose items would
    /// interleave, run in full.
    fn planned(&mut self, mut streams: Vec<EventStream>, query: Option<String>) {
        let slot = match (&self.slot, streams.len()) {
            (Some(slot), 1) => slot.clone(),
            (_, 0) => {
                self.run = Run::Full(futures::stream::empty().boxed());
                return;
            }
            _ => return self.rerun(query),
        };
        let Run::Planning { asked, .. } = self.take_run() else {
            return;
        };
        let query = query.filter(|q| !slot.sent(q));
        if let Some(events) = streams.pop() {
            self.run = Run::Light(Box::new(Light {
                events,
                query,
                schema: asked.schema,
                session: asked.session,
                running: None,
            }));
        }
    }

    /// Runs a planned operation again, in full, from the start (nothing
    /// was sent for it yet); its items are not shared.
    fn rerun(&mut self, query: Option<String>) {
        if let Run::Planning { asked, .. } = self.take_run() {
            self.slot = None;
            self.run = Run::Full(asked.full(query));
        }
    }

    /// The operation's run, leaving an ended one in its place for the
    /// caller to replace.
    fn take_run(&mut self) -> Run {
        std::mem::replace(&mut self.run, Run::Full(futures::stream::empty().boxed()))
    }
}

/// Whether an answer is a refusal: errors and no data (a parse, validation
/// or argument error), so nothing executed.
fn nothing_ran(r: &Response) -> bool {
    !r.errors.is_empty() && r.data == async_graphql::Value::Null
}

impl Asked {
    /// The operation as a full run of the library's stream, of `query`
    /// when planning noted it (a persisted query's text: its hash may have
    /// left the store since). The operation was counted when it was
    /// planned, so this run is not.
    fn full(self, query: Option<String>) -> BoxStream<'static, Response> {
        let request = match serde_json::from_value::<async_graphql::Request>(self.request) {
            Ok(mut r) => {
                if let Some(q) = query {
                    r.query = q;
                    r.extensions.0.remove("persistedQuery");
                }
                r.data(crate::graphql::observe::Counted)
            }
            // It read the first time.
            Err(e) => {
                let err = crate::graphql::codes::with_code(
                    async_graphql::ServerError::new(e.to_string(), None),
                    code::INTERNAL_SERVER_ERROR,
                );
                return futures::stream::once(async move { Response::from_errors(vec![err]) })
                    .boxed();
            }
        };
        self.schema
            .execute_stream_with_session_data(request, self.session)
    }
}

impl Stream for Operation {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            let this = &mut *self;
            match &mut this.run {
                Run::Full(inner) => {
                    return match inner.poll_next_unpin(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Some(r)) => Poll::Ready(Some(this.answer(r, None))),
                        Poll::Ready(None) => {
                            this.ended = true;
                            Poll::Ready(Some(Item::End))
                        }
                    };
                }
                Run::Planning { setup, plan, .. } => match setup.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(r)) => {
                        let planned = plan.take();
                        if planned.is_empty() {
                            // Nothing planned: a query or mutation sent over
                            // the socket, or a subscription with no event
                            // root. The stream is an ordinary full run.
                            if let Run::Planning { setup, .. } = this.take_run() {
                                this.run = Run::Full(setup);
                            }
                            return Poll::Ready(Some(this.answer(r, None)));
                        }
                        // An argument refused: the operation ends here.
                        if nothing_ran(&r) {
                            return Poll::Ready(Some(this.answer(r, None)));
                        }
                        // Event roots planned beside something that
                        // streamed: run it all in full from the start
                        // (nothing was sent yet). Never the case today:
                        // every root of the schema streams events.
                        let query = plan.query();
                        this.rerun(query);
                    }
                    Poll::Ready(None) => {
                        let (streams, query) = (plan.take(), plan.query());
                        this.planned(streams, query);
                    }
                },
                Run::Light(light) => {
                    if let Some((seq, running)) = &mut light.running {
                        let seq = *seq;
                        match running.poll_next_unpin(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(r) => {
                                light.running = None;
                                // One run, one item; none is a bug.
                                let Some(r) = r else {
                                    return Poll::Ready(Some(Item::Broken));
                                };
                                return Poll::Ready(Some(this.answer(r, seq)));
                            }
                        }
                    }
                    let item = match light.events.poll_next_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) => {
                            this.ended = true;
                            return Poll::Ready(Some(Item::End));
                        }
                        Poll::Ready(Some(item)) => item,
                    };
                    let seq = item.as_ref().ok().map(|e| e.seq);
                    if let (Some(seq), Some(slot)) = (seq, &this.slot)
                        && let Some(payload) = slot.cached(seq)
                    {
                        this.first = false;
                        return Poll::Ready(Some(Item::Next(payload, true)));
                    }
                    let request = this
                        .slot
                        .as_ref()
                        .and_then(|slot| slot.request(light.query.as_deref()));
                    let Some(request) = request else {
                        return Poll::Ready(Some(Item::Broken));
                    };
                    let request = request.data(Arc::new(OneItem::new(item)));
                    let run = light
                        .schema
                        .execute_stream_with_session_data(request, light.session.clone());
                    light.running = Some((seq, run));
                }
            }
        }
    }
}

/// Why the connection loop stopped.
enum Stop {
    /// Close with this code and reason.
    Close(u16, String),
    /// The peer is gone or unresponsive: just drop the socket.
    Drop,
    /// The client sent a close frame: answer it and end.
    ClientClosed,
}

fn close(code: u16, reason: impl Into<String>) -> Stop {
    Stop::Close(code, reason.into())
}

/// A close reason must fit in a control frame: at most 123 bytes of UTF-8.
fn clip_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

struct Connection {
    sink: SplitSink<WebSocket, Message>,
    source: futures::stream::SplitStream<WebSocket>,
    protocol: Protocol,
    app: AppState,
    /// The caller as established by the upgrade request's header, if any.
    from_header: Option<crate::auth::Verified>,
    /// When the socket's token expires; the socket is closed (4403) then.
    expires_at: Option<Instant>,
    /// The client's address, for rate limits without authentication.
    address: Option<std::net::IpAddr>,
    /// The rate-limit bucket each operation draws from, set at init.
    rate_key: Option<crate::http::rate::Key>,
    shutdown: CancellationToken,
    /// Resolves at shutdown. Made once and kept: a fresh `cancelled()` per
    /// loop turn or per send would join and leave the token's waiter list
    /// — one lock shared by every socket — for every frame sent.
    stopping: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// Per-connection request data (principal, loaders), made at
    /// `connection_init` so an uninitialised socket holds none of it.
    session: Option<Arc<Data>>,
    /// What of the caller decides a payload (tenant, role names), for the
    /// shared frames' key; set at `connection_init`.
    caller: Option<(uuid::Uuid, Vec<&'static str>)>,
    operations: StreamMap<String, Operation>,
    /// Legacy `start` messages that arrived before `connection_init`, as
    /// sent (id and text): Apollo's subscriptions-transport-ws client sends
    /// them while it still awaits its `connectionParams`, and its old
    /// servers accepted that. Bounded by count and bytes (`early_bytes`);
    /// kept as text, so what is held is what was counted.
    early: Vec<(String, Utf8Bytes)>,
    early_bytes: usize,
    init_received: bool,
    /// Bytes of `next` frames queued since the last flush.
    unflushed: usize,
    last_heard: Instant,
    _held: Held,
    _admitted: Admitted,
}

impl Connection {
    fn new(
        socket: WebSocket,
        protocol: Protocol,
        app: AppState,
        from_header: Option<crate::auth::Verified>,
        address: Option<std::net::IpAddr>,
        admitted: Admitted,
    ) -> Self {
        let (sink, source) = socket.split();
        let held = Held::new(app.ws_gauges.clone(), |g| &g.connections);
        Connection {
            sink,
            source,
            protocol,
            shutdown: app.shutdown.clone(),
            stopping: Box::pin(app.shutdown.clone().cancelled_owned()),
            app,
            from_header,
            expires_at: None,
            address,
            rate_key: None,
            session: None,
            caller: None,
            operations: StreamMap::new(),
            early: Vec::new(),
            early_bytes: 0,
            init_received: false,
            unflushed: 0,
            last_heard: Instant::now(),
            _held: held,
            _admitted: admitted,
        }
    }

    async fn run(mut self) {
        let settings = self.app.ws.clone();
        let init_deadline = tokio::time::sleep(settings.init_timeout);
        tokio::pin!(init_deadline);
        // Legacy clients (subscriptions-transport-ws) close the socket when
        // no `ka` arrives within their timeout (30 s by default), whatever
        // the ping setting: they get one at least every 10 s.
        const KEEP_ALIVE: Duration = Duration::from_secs(10);
        let period = match (self.protocol, settings.ping_interval) {
            (Protocol::Legacy, Some(p)) => p.min(KEEP_ALIVE),
            (Protocol::Legacy, None) => KEEP_ALIVE,
            (Protocol::TransportWs, Some(p)) => p,
            (Protocol::TransportWs, None) => Duration::from_secs(3600),
        };
        let ticking = settings.ping_interval.is_some() || self.protocol == Protocol::Legacy;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Armed at `connection_init` when the token has an expiry.
        let expiry = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(expiry);
        let mut armed = false;
        let stop = loop {
            if !armed && let Some(at) = self.expires_at {
                expiry.as_mut().reset(at);
                armed = true;
            }
            tokio::select! {
                biased;
                _ = self.stopping.as_mut() => break close(1001, "server shutting down"),
                _ = &mut expiry, if armed => break close(4403, "Forbidden: token expired"),
                _ = &mut init_deadline, if !self.init_received => {
                    break close(4408, "Connection initialisation timeout");
                }
                _ = ping.tick(), if ticking => {
                    if let Some(interval) = settings.ping_interval {
                        if self.last_heard.elapsed() > interval * 2 {
                            tracing::debug!("dropping a WebSocket peer that stopped answering pings");
                            break Stop::Drop;
                        }
                        if !Box::pin(self.send(Message::Ping(Default::default()))).await {
                            break Stop::Drop;
                        }
                    }
                    if self.protocol == Protocol::Legacy
                        && self.session.is_some()
                        && !Box::pin(self.send_json(json!({ "type": "ka" }))).await
                    {
                        break Stop::Drop;
                    }
                }
                msg = self.source.next() => {
                    let Some(Ok(msg)) = msg else { break Stop::Drop };
                    self.last_heard = Instant::now();
                    // Boxed: the connection future stays small while idle.
                    if let Some(stop) = Box::pin(self.on_message(msg)).await {
                        break stop;
                    }
                }
                Some((id, item)) = self.operations.next(), if !self.operations.is_empty() => {
                    // The items already waiting go out in one write: a
                    // commit appends a dozen events at once, and a write
                    // per frame cost more CPU in the kernel than the whole
                    // frame did in the server (docs/benchmarks.md).
                    let mut ok = Box::pin(self.on_item(id, item)).await;
                    let mut batched = 1;
                    while ok && batched < BATCH_FRAMES && self.unflushed < BATCH_BYTES {
                        match self.operations.next().now_or_never() {
                            Some(Some((id, item))) => {
                                ok = Box::pin(self.on_item(id, item)).await;
                                batched += 1;
                            }
                            _ => break,
                        }
                    }
                    if !ok || !Box::pin(self.flush()).await {
                        break Stop::Drop;
                    }
                }
            }
        };
        // Streams end here, whatever the reason, before the close is sent.
        self.operations = StreamMap::new();
        // A send cut short by shutdown still owes the client its 1001, so it
        // reconnects elsewhere instead of seeing an abnormal closure.
        let stop = match stop {
            Stop::Drop if self.shutdown.is_cancelled() => close(1001, "server shutting down"),
            other => other,
        };
        if let Stop::ClientClosed = stop {
            // tungstenite queued the reply to the client's close frame; flush it
            // so the client sees a clean close.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
        }
        if let Stop::Close(code, reason) = stop {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(clip_reason(&reason)),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.sink.send(Message::Close(Some(frame))),
            )
            .await;
        }
    }

    /// Sends one message (and whatever was queued before it); false when
    /// the peer is gone, does not take it within two ping intervals, or the
    /// server is shutting down.
    async fn send(&mut self, msg: Message) -> bool {
        self.unflushed = 0;
        let sink = &mut self.sink;
        Self::bounded(
            &self.app,
            &self.shutdown,
            &mut self.stopping,
            sink.send(msg),
        )
        .await
    }

    /// Queues one message without flushing it: the caller flushes once
    /// the frames ready together are queued ([`Connection::flush`]).
    /// Waits, as a send does, while the socket takes nothing.
    async fn queue(&mut self, msg: Message) -> bool {
        let sink = &mut self.sink;
        Self::bounded(
            &self.app,
            &self.shutdown,
            &mut self.stopping,
            sink.feed(msg),
        )
        .await
    }

    /// Writes out what [`Connection::queue`] left; as [`Connection::send`].
    async fn flush(&mut self) -> bool {
        if self.unflushed == 0 {
            return true;
        }
        self.unflushed = 0;
        let sink = &mut self.sink;
        Self::bounded(&self.app, &self.shutdown, &mut self.stopping, sink.flush()).await
    }

    /// Runs a write on the socket; false when it fails, takes longer than
    /// two ping intervals, or the server shuts down meanwhile.
    async fn bounded(
        app: &AppState,
        shutdown: &CancellationToken,
        stopping: &mut Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
        write: impl std::future::Future<Output = Result<(), axum::Error>>,
    ) -> bool {
        let limit = app
            .ws
            .ping_interval
            .map(|p| p * 2)
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        if shutdown.is_cancelled() {
            return false;
        }
        // Biased, the write first: one the socket takes at once (nearly
        // all) never polls the timer or the shutdown future.
        tokio::select! {
            biased;
            r = tokio::time::timeout(limit, write) => matches!(r, Ok(Ok(()))),
            _ = stopping.as_mut() => false,
        }
    }

    async fn send_json(&mut self, v: Value) -> bool {
        self.send(Message::Text(v.to_string().into())).await
    }

    async fn on_item(&mut self, id: String, item: Item) -> bool {
        let legacy = self.protocol == Protocol::Legacy;
        match item {
            Item::Next(payload, shared) => {
                if shared {
                    self.app.metrics.frames_shared.increment(1);
                }
                let ty = if legacy { "data" } else { "next" };
                // The payload is JSON already: framed, not parsed again.
                let id = serde_json::to_string(&id).unwrap_or_default();
                let frame = format!(r#"{{"id":{id},"type":"{ty}","payload":{payload}}}"#);
                self.unflushed += frame.len();
                self.queue(Message::Text(frame.into())).await
            }
            Item::Broken => {
                tracing::error!("a subscription item could not be run; closing the socket");
                self.operations.remove(&id);
                false
            }
            Item::Refused(r) => {
                self.operations.remove(&id);
                self.send_json(json!({ "id": id, "type": "error", "payload": r.errors }))
                    .await
            }
            Item::End => {
                self.operations.remove(&id);
                self.send_json(json!({ "id": id, "type": "complete" }))
                    .await
            }
        }
    }

    /// Handles one client frame; `Some` ends the connection.
    async fn on_message(&mut self, msg: Message) -> Option<Stop> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Some(Stop::ClientClosed),
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Binary(_) => return Some(close(4400, "Binary messages are not supported")),
        };
        // Before the ack the client is nobody yet: what it may make the
        // server parse and hold is small (a `connection_init` with a token,
        // a few legacy `start`s). Checked before parsing.
        if self.session.is_none() && text.len() > self.app.ws.max_early_bytes {
            return Some(self.too_much_before_init());
        }
        // Parsed JSON costs many times its text: count the values first.
        let max = self.app.limits.max_json_values;
        if crate::graphql::limits::json_values(text.as_bytes(), max) > max {
            return Some(close(
                4400,
                format!("Invalid message received: more than {max} JSON values"),
            ));
        }
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text.as_str()) else {
            return Some(close(4400, "Invalid message received: not a JSON object"));
        };
        let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let legacy = self.protocol == Protocol::Legacy;
        match (ty, legacy) {
            ("connection_init", _) => self.on_init(m.get("payload")).await,
            ("ping", false) => {
                if self.send_json(json!({ "type": "pong" })).await {
                    None
                } else {
                    Some(Stop::Drop)
                }
            }
            ("pong", false) => None,
            ("subscribe", false) | ("start", true) => {
                let Some(id) = m
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                else {
                    return Some(close(
                        4400,
                        format!("Invalid message received: `{ty}` needs an `id` string"),
                    ));
                };
                if legacy && !self.init_received {
                    return self.queue_early(id.to_string(), text);
                }
                self.on_subscribe(id.to_string(), m.get("payload")).await
            }
            ("complete", false) | ("stop", true) => {
                let Some(id) = m.get("id").and_then(Value::as_str) else {
                    return Some(close(
                        4400,
                        format!("Invalid message received: `{ty}` needs an `id` string"),
                    ));
                };
                // Dropping the stream frees it now; the client asked for the
                // end, so no `complete` goes back (PROTOCOL.md).
                self.operations.remove(id);
                None
            }
            ("connection_terminate", true) => Some(close(1000, "connection terminated")),
            _ => Some(close(
                4400,
                format!(
                    "Invalid message received: unknown type `{}`",
                    clip_reason(ty)
                ),
            )),
        }
    }

    async fn on_init(&mut self, payload: Option<&Value>) -> Option<Stop> {
        if self.init_received {
            return Some(close(4429, "Too many initialisation requests"));
        }
        self.init_received = true;
        let payload = match payload {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => {
                return Some(close(
                    4400,
                    "Invalid message received: the `connection_init` payload must be an object",
                ));
            }
        };
        let principal = match self
            .app
            .auth
            .from_init(&payload, self.from_header.as_ref())
            .await
        {
            Ok((p, exp)) => {
                self.expires_at = exp.map(|exp| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    Instant::now() + Duration::from_secs(exp.saturating_sub(now))
                });
                p
            }
            Err(e) => {
                if self.protocol == Protocol::Legacy {
                    let _ = self
                        .send_json(json!({ "type": "connection_error", "payload": { "message": e.to_string() } }))
                        .await;
                }
                return Some(close(4403, "Forbidden"));
            }
        };
        let app = &self.app;
        let mut data = Data::default();
        data.insert(crate::graphql::LazyLoaders::new(
            &app.services,
            principal.tenant_id,
            app.loader_delay,
        ));
        self.rate_key = Some(app.limiter.key(&principal, self.address));
        let mut roles: Vec<&'static str> = principal.roles.iter().map(|r| r.name()).collect();
        roles.sort_unstable();
        roles.dedup();
        self.caller = Some((principal.tenant_id, roles));
        data.insert(principal);
        self.session = Some(Arc::new(data));
        if !self.send_json(json!({ "type": "connection_ack" })).await {
            return Some(Stop::Drop);
        }
        if self.protocol == Protocol::Legacy
            && !Box::pin(self.send_json(json!({ "type": "ka" }))).await
        {
            return Some(Stop::Drop);
        }
        self.early_bytes = 0;
        for (id, text) in std::mem::take(&mut self.early) {
            // Parsed once more now that it runs: it was a JSON object.
            let payload = serde_json::from_str::<Value>(text.as_str())
                .ok()
                .and_then(|mut m| m.get_mut("payload").map(Value::take));
            if let Some(stop) = Box::pin(self.on_subscribe(id, payload.as_ref())).await {
                return Some(stop);
            }
        }
        None
    }

    /// Keeps a legacy `start` that came before `connection_init` until the
    /// connection is initialised, within the count and byte limits; past
    /// them the socket is closed (4400) and the queue dropped with it.
    fn queue_early(&mut self, id: String, text: Utf8Bytes) -> Option<Stop> {
        let s = &self.app.ws;
        let bytes = self.early_bytes.saturating_add(text.len());
        if self.early.len() >= s.max_early_operations || bytes > s.max_early_bytes {
            return Some(self.too_much_before_init());
        }
        self.early_bytes = bytes;
        self.early.push((id, text));
        None
    }

    /// The shared-frames slot of an operation: keyed by everything that
    /// decides its payloads (see [`crate::graphql::share`]).
    fn slot_for(&self, request: &async_graphql::Request) -> Option<Arc<ItemSlot>> {
        let (tenant, roles) = self.caller.clone()?;
        // Extensions are a hash map: sorted, so equal requests make equal
        // text whatever order their keys come out in.
        let extensions: std::collections::BTreeMap<_, _> = request.extensions.0.iter().collect();
        let variables = serde_json::to_string(&(&request.variables, &extensions)).ok()?;
        let key = SelectionKey {
            tenant,
            roles,
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables,
        };
        self.app.frames.intern(key).map(ItemSlot::new)
    }

    fn too_much_before_init(&self) -> Stop {
        let s = &self.app.ws;
        close(
            4400,
            format!(
                "Too much sent before connection_init: at most {} bytes and {} operations",
                s.max_early_bytes, s.max_early_operations
            ),
        )
    }

    async fn on_subscribe(&mut self, id: String, payload: Option<&Value>) -> Option<Stop> {
        let Some(session) = self.session.clone() else {
            return Some(close(4401, "Unauthorized"));
        };
        if self.operations.contains_key(&id) {
            return Some(close(
                4409,
                format!("Subscriber for {} already exists", clip_reason(&id)),
            ));
        }
        let request = match payload {
            Some(p @ Value::Object(m)) if m.get("query").is_some_and(Value::is_string) => {
                match serde_json::from_value::<async_graphql::Request>(p.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        return Some(close(4400, format!("Invalid message received: {e}")));
                    }
                }
            }
            _ => {
                return Some(close(
                    4400,
                    "Invalid message received: the payload needs a `query` string",
                ));
            }
        };
        if self.operations.len() >= self.app.ws.max_subscriptions {
            let limit = self.app.ws.max_subscriptions;
            let err = crate::graphql::codes::with_code(
                async_graphql::ServerError::new(
                    format!(
                        "this connection already has {limit} active operations (the limit); complete one first or open another connection"
                    ),
                    None,
                ),
                code::TOO_MANY_SUBSCRIPTIONS,
            );
            return if self
                .send_json(json!({ "id": id, "type": "error", "payload": [err] }))
                .await
            {
                None
            } else {
                Some(Stop::Drop)
            };
        }
        // Each operation is one request against the caller's rate; a
        // refused one gets `error` and the socket stays open.
        if let Some(wait) = self
            .rate_key
            .as_ref()
            .and_then(|k| self.app.limiter.wait(k))
        {
            let secs = crate::http::rate::retry_after(wait);
            let err = crate::graphql::codes::with_code(
                async_graphql::ServerError::new(
                    format!("too many requests; retry in {secs} s"),
                    None,
                ),
                code::RATE_LIMITED,
            );
            return if self
                .send_json(json!({ "id": id, "type": "error", "payload": [err] }))
                .await
            {
                None
            } else {
                Some(Stop::Drop)
            };
        }
        let slot = self.slot_for(&request);
        let held = Held::new(self.app.ws_gauges.clone(), |g| &g.subscriptions);
        let op = match (slot, payload) {
            // Shareable: planned, then light (see `Run`).
            (Some(slot), Some(asked)) => {
                let plan = Arc::new(Plan::default());
                let setup = self
                    .app
                    .schema
                    .execute_stream_with_session_data(request.data(plan.clone()), session.clone());
                Operation {
                    run: Run::Planning {
                        setup,
                        plan,
                        asked: Box::new(Asked {
                            request: asked.clone(),
                            schema: self.app.schema.clone(),
                            session,
                        }),
                    },
                    slot: Some(slot),
                    first: true,
                    ended: false,
                    _held: held,
                }
            }
            _ => {
                let stream = self
                    .app
                    .schema
                    .execute_stream_with_session_data(request, session);
                Operation::full(stream, held)
            }
        };
        self.operations.insert(id, op);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_clipped_to_123_bytes_on_a_char_boundary() {
        let long = "é".repeat(100);
        let clipped = clip_reason(&long);
        assert!(clipped.len() <= 123);
        assert!(clipped.len() >= 121);
        assert!(clipped.chars().all(|c| c == 'é'));
        assert_eq!(clip_reason("short"), "short");
    }
}
