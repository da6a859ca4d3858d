//! One socket: the graphql-transport-ws (and legacy graphql-ws) conversation,
//! its operations, keep-alive and the frames it writes.

use super::AppState;
use crate::error::code;
use crate::graphql::share::{ItemSlot, SelectionKey};
use crate::graphql::subscription::Plan;
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::SplitSink;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::*;

pub(crate) struct Connection {
    sink: SplitSink<WebSocket, Message>,
    pub(crate) source: futures::stream::SplitStream<WebSocket>,
    pub(crate) protocol: Protocol,
    pub(crate) app: AppState,
    /// The caller as established by the upgrade request's header, if any.
    pub(crate) from_header: Option<crate::auth::Verified>,
    /// When the socket's token expires; the socket is closed (4403) then.
    pub(crate) expires_at: Option<Instant>,
    /// The client's address, for rate limits without authentication.
    pub(crate) address: Option<std::net::IpAddr>,
    /// The rate-limit bucket each operation draws from, set at init.
    rate_key: Option<crate::http::rate::Key>,
    pub(crate) shutdown: CancellationToken,
    /// Resolves at shutdown. Made once and kept: a fresh `cancelled()` per
    /// loop turn or per send would join and leave the token's waiter list
    /// — one lock shared by every socket — for every frame sent.
    pub(crate) stopping: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// Per-connection request data (principal, loaders), made at
    /// `connection_init` so an uninitialised socket holds none of it.
    pub(crate) session: Option<Arc<Data>>,
    /// What of the caller decides a payload (tenant, role names), for the
    /// shared frames' key; set at `connection_init`.
    pub(crate) caller: Option<(uuid::Uuid, Vec<&'static str>)>,
    pub(crate) operations: StreamMap<String, Operation>,
    /// Legacy `start` messages that arrived before `connection_init`, as
    /// sent (id and text): Apollo's subscriptions-transport-ws client sends
    /// them while it still awaits its `connectionParams`, and its old
    /// servers accepted that. Bounded by count and bytes (`early_bytes`);
    /// kept as text, so what is held is what was counted.
    pub(crate) early: Vec<(String, Utf8Bytes)>,
    early_bytes: usize,
    init_received: bool,
    /// Bytes of `next` frames queued since the last flush.
    unflushed: usize,
    last_heard: Instant,
    pub(crate) _held: Held,
    _admitted: Admitted,
}

impl Connection {
    pub(crate) fn new(
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

    pub(crate) async fn run(mut self) {
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
    pub(crate) async fn send(&mut self, msg: Message) -> bool {
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
    pub(crate) async fn queue(&mut self, msg: Message) -> bool {
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
    pub(crate) async fn flush(&mut self) -> bool {
        if self.unflushed == 0 {
            return true;
        }
        self.unflushed = 0;
        let sink = &mut self.sink;
        Self::bounded(&self.app, &self.shutdown, &mut self.stopping, sink.flush()).await
    }

    /// Runs a write on the socket; false when it fails, takes longer than
    /// two ping intervals, or the server shuts down meanwhile.
    pub(crate) async fn bounded(
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
