//! The graphql-transport-ws protocol as the server speaks it (see
//! enisdenjo/graphql-ws PROTOCOL.md): close codes for protocol violations,
//! per-operation errors that leave the socket open, `complete`, ping/pong,
//! keep-alive, the per-socket subscription cap, clean-up after an abrupt
//! disconnect, and SIGTERM.
//!
//! Tests that read the `cerebral_ws_*` gauges run the server as a child
//! process, so no other test of this binary can move them.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::support;
use crate::support::{RawWs, ServerProcess};
use tokio_tungstenite::tungstenite::Message;

/// Generous wait for anything the server should do "at once".
const T: Duration = Duration::from_secs(20);

const SUBS: &str = "cerebral_ws_subscriptions_active";
const CONNS: &str = "cerebral_ws_connections_active";

/// A long-lived subscription that delivers nothing until something commits.
const HEAD_SUB: &str = "subscription { events(after: \"HEAD\") { cursor type } }";

/// Project creations after a cursor.
const PROJECTS_AFTER: &str = "subscription($after: String) { events(after: $after, types: [PROJECT_CREATED]) { cursor type payload } }";

/// The cursor just before `cursor`, so a replay from it starts with that event.
fn before(cursor: &str) -> String {
    (cursor.parse::<i64>().expect("numeric cursor") - 1).to_string()
}

fn cursor_of(data: &Value) -> String {
    data["events"]["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("an item with a cursor, got {data}"))
        .to_string()
}

/// The gauges of a process that no other client uses.
async fn gauge(base: &str, name: &str) -> f64 {
    support::metric(base, name)
        .await
        .unwrap_or_else(|| panic!("/metrics exports {name}"))
}

async fn wait_gauge(base: &str, name: &str, want: f64, timeout: Duration) {
    if let Err(last) = support::wait_metric(base, name, timeout, |v| v == want).await {
        panic!("{name} should reach {want} within {timeout:?}; last seen {last:?}");
    }
}

/// Checks a Close frame's code and reason (a trailing full stop aside).
fn assert_closed_with(ws: &RawWs, frame: Option<(u16, String)>, code: u16, reason: &str) {
    let got = frame.map(|(c, r)| (c, r.trim_end_matches('.').to_string()));
    assert_eq!(
        got,
        Some((code, reason.to_string())),
        "connection state {:?}, received {:?}",
        ws.closed,
        ws.received
    );
}

// ---------- close codes ----------

#[tokio::test]
async fn the_server_chooses_the_graphql_transport_ws_subprotocol() {
    let app = support::spawn().await;
    let ws = RawWs::connect(&app.base).await;
    assert_eq!(ws.protocol.as_deref(), Some("graphql-transport-ws"));
    let legacy = RawWs::connect_protocol(&app.base, "graphql-ws").await;
    assert_eq!(legacy.protocol.as_deref(), Some("graphql-ws"));
}

#[tokio::test]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 300).await;
    let mut ws = RawWs::connect(&app.base).await;
    let frame = ws.close_frame(T).await;
    assert_closed_with(&ws, frame, 4408, "Connection initialisation timeout");
}

#[tokio::test]
async fn a_ping_does_not_stand_in_for_connection_init() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 1000).await;
    let mut ws = RawWs::connect(&app.base).await;
    ws.send_json(json!({ "type": "ping" })).await;
    let pong = ws.next_json(T).await;
    assert_eq!(pong, Some(json!({ "type": "pong" })));
    assert_eq!(
        ws.close_code(T).await,
        Some(4408),
        "closed: {:?}",
        ws.closed
    );
}

#[tokio::test]
async fn an_initialised_socket_outlives_the_init_timeout() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 1000).await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    // Well past the init timeout the socket is still served.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.assert_alive().await;
    assert!(ws.closed.is_none(), "closed: {:?}", ws.closed);
}

#[tokio::test]
async fn a_subscribe_before_connection_ack_is_closed_with_4401() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 60_000).await;
    let mut ws = RawWs::connect(&app.base).await;
    ws.subscribe("1", HEAD_SUB, json!({})).await;
    let frame = ws.close_frame(T).await;
    assert_closed_with(&ws, frame, 4401, "Unauthorized");
    assert!(
        !ws.received.iter().any(|m| m["type"] == "next"),
        "nothing runs for an unauthorised subscribe: {:?}",
        ws.received
    );
}

#[tokio::test]
async fn a_second_connection_init_is_closed_with_4429() {
    let app = support::spawn().await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.send_json(json!({ "type": "connection_init", "payload": {} }))
        .await;
    let frame = ws.close_frame(T).await;
    assert_closed_with(&ws, frame, 4429, "Too many initialisation requests");
}

#[tokio::test]
async fn a_subscribe_with_an_id_already_active_is_closed_with_4409() {
    let app = support::spawn().await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe("dup", HEAD_SUB, json!({})).await;
    ws.subscribe("dup", HEAD_SUB, json!({})).await;
    let frame = ws.close_frame(T).await;
    assert_closed_with(&ws, frame, 4409, "Subscriber for dup already exists");
}

/// Opens a socket (initialised or not), sends `frame` and expects a close
/// with 4400 and a reason that fits a close frame (at most 123 bytes).
async fn expect_4400(base: &str, init: bool, frame: Message, case: &str) {
    let mut ws = if init {
        RawWs::connect_and_init(base).await
    } else {
        RawWs::connect(base).await
    };
    assert!(ws.try_send(frame).await, "{case}: frame sent");
    let closed = ws.close_frame(T).await;
    let (code, reason) = closed.unwrap_or_else(|| {
        panic!(
            "{case}: expected a Close frame with 4400, connection state {:?}, received {:?}",
            ws.closed, ws.received
        )
    });
    assert_eq!(code, 4400, "{case}: reason {reason:?}");
    assert!(
        reason.len() <= 123,
        "{case}: a close reason is at most 123 bytes, got {} ({reason:?})",
        reason.len()
    );
}

#[tokio::test]
async fn invalid_json_is_closed_with_4400() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 60_000).await;
    expect_4400(&app.base, true, Message::text("{not json"), "after init").await;
    expect_4400(&app.base, false, Message::text("{not json"), "before init").await;
    expect_4400(&app.base, true, Message::text("[]"), "a JSON array").await;
    expect_4400(&app.base, true, Message::text("\"ping\""), "a JSON string").await;
}

#[tokio::test]
async fn an_unknown_message_type_is_closed_with_4400_and_a_short_reason() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 60_000).await;
    expect_4400(
        &app.base,
        true,
        Message::text(json!({ "type": "hello" }).to_string()),
        "unknown type",
    )
    .await;
    expect_4400(
        &app.base,
        true,
        Message::text(json!({ "id": "1" }).to_string()),
        "no type",
    )
    .await;
    // A reason that quoted the type would exceed 123 bytes, and cutting it
    // inside a multi-byte character would not be UTF-8.
    let long = format!("{}{}", "é".repeat(150), "x".repeat(300));
    expect_4400(
        &app.base,
        true,
        Message::text(json!({ "type": long, "id": long }).to_string()),
        "long multi-byte type",
    )
    .await;
}

#[tokio::test]
async fn a_subscribe_or_complete_without_a_string_id_is_closed_with_4400() {
    let app = support::spawn().await;
    let cases = [
        (
            "subscribe without id",
            json!({ "type": "subscribe", "payload": { "query": HEAD_SUB } }),
        ),
        (
            "subscribe with a numeric id",
            json!({ "id": 7, "type": "subscribe", "payload": { "query": HEAD_SUB } }),
        ),
        (
            "subscribe with a null id",
            json!({ "id": null, "type": "subscribe", "payload": { "query": HEAD_SUB } }),
        ),
        ("complete without id", json!({ "type": "complete" })),
        (
            "complete with an object id",
            json!({ "id": { "x": 1 }, "type": "complete" }),
        ),
    ];
    for (case, msg) in cases {
        expect_4400(&app.base, true, Message::text(msg.to_string()), case).await;
    }
}

#[tokio::test]
async fn a_subscribe_without_a_query_payload_is_closed_with_4400() {
    let app = support::spawn().await;
    let cases = [
        ("no payload", json!({ "id": "1", "type": "subscribe" })),
        (
            "null payload",
            json!({ "id": "1", "type": "subscribe", "payload": null }),
        ),
        (
            "string payload",
            json!({ "id": "1", "type": "subscribe", "payload": HEAD_SUB }),
        ),
        (
            "payload without query",
            json!({ "id": "1", "type": "subscribe", "payload": { "variables": {} } }),
        ),
    ];
    for (case, msg) in cases {
        expect_4400(&app.base, true, Message::text(msg.to_string()), case).await;
    }
}

#[tokio::test]
async fn a_binary_frame_is_closed_with_4400() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 60_000).await;
    // Even a binary frame holding a valid message.
    let ping = json!({ "type": "ping" }).to_string().into_bytes();
    expect_4400(&app.base, true, Message::binary(ping.clone()), "after init").await;
    expect_4400(&app.base, false, Message::binary(ping), "before init").await;
}

// ---------- per-operation errors ----------

#[tokio::test]
async fn an_invalid_operation_gets_an_error_for_its_id_and_the_socket_stays_open() {
    let app = support::spawn().await;
    let cursor = support::create_project_cursor(app.http(), &app.base, "seen").await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    let cases = [
        ("syntax", "subscription { events(", "GRAPHQL_PARSE_FAILED"),
        (
            "unknown-field",
            "subscription { noSuchField }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "bad-cursor",
            "subscription { events(after: \"zzz\") { cursor } }",
            "BAD_USER_INPUT",
        ),
    ];
    for (id, query, code) in cases {
        ws.subscribe(id, query, json!({})).await;
        let msg = ws
            .next_for(id, T)
            .await
            .unwrap_or_else(|| panic!("{id}: an answer (closed: {:?})", ws.closed));
        assert_eq!(msg["type"], "error", "{id}: {msg}");
        let errors = msg["payload"]
            .as_array()
            .unwrap_or_else(|| panic!("{id}: payload is a list of errors: {msg}"));
        assert!(!errors.is_empty(), "{id}: {msg}");
        for e in errors {
            assert!(e["message"].is_string(), "{id}: {msg}");
            assert!(e["extensions"]["code"].is_string(), "{id}: {msg}");
        }
        assert_eq!(errors[0]["extensions"]["code"], code, "{id}: {msg}");
    }
    ws.assert_alive().await;

    // The same id, no longer active, and a fresh one both work.
    let vars = json!({ "after": before(&cursor) });
    ws.subscribe("syntax", PROJECTS_AFTER, vars.clone()).await;
    ws.subscribe("fresh", PROJECTS_AFTER, vars).await;
    for id in ["syntax", "fresh"] {
        let data = ws
            .next_data(id, T)
            .await
            .unwrap_or_else(|| panic!("{id}: an item (closed: {:?})", ws.closed));
        assert_eq!(cursor_of(&data), cursor, "{id}");
    }
    ws.assert_alive().await;
    let completes: Vec<&Value> = ws
        .received
        .iter()
        .filter(|m| m["type"] == "complete")
        .collect();
    assert!(
        completes.is_empty(),
        "no complete follows an error: {completes:?}"
    );
    assert!(ws.closed.is_none(), "closed: {:?}", ws.closed);
}

// ---------- complete ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_subscription_stops_its_stream_and_lowers_the_gauges() {
    let server = ServerProcess::start_fresh(&[]).await;
    let base = server.base.as_str();
    let http = reqwest::Client::new();
    let subs0 = gauge(base, SUBS).await;
    let conns0 = gauge(base, CONNS).await;

    let mut ws = RawWs::connect_and_init(base).await;
    wait_gauge(base, CONNS, conns0 + 1.0, T).await;
    let first = support::create_project_cursor(&http, base, "first").await;
    let vars = json!({ "after": before(&first) });
    ws.subscribe("stop", PROJECTS_AFTER, vars.clone()).await;
    ws.subscribe("keep", PROJECTS_AFTER, vars).await;
    for id in ["stop", "keep"] {
        let data = ws.next_data(id, T).await.expect("the first item");
        assert_eq!(cursor_of(&data), first, "{id}");
    }
    wait_gauge(base, SUBS, subs0 + 2.0, T).await;

    ws.complete("stop").await;
    wait_gauge(base, SUBS, subs0 + 1.0, T).await;
    // A `complete` for an id that is not active is ignored.
    ws.complete("never-subscribed").await;
    ws.assert_alive().await;

    for i in 0..3 {
        let c = support::create_project_cursor(&http, base, &format!("after-{i}")).await;
        let data = ws.next_data("keep", T).await.expect("keep goes on");
        assert_eq!(cursor_of(&data), c);
    }
    // Round trip: anything the server would still send for "stop" has
    // arrived by now.
    ws.assert_alive().await;
    let stop_items = ws
        .received
        .iter()
        .filter(|m| m["id"] == "stop" && m["type"] == "next")
        .count();
    assert_eq!(stop_items, 1, "nothing after complete: {:?}", ws.received);
    assert_eq!(gauge(base, SUBS).await, subs0 + 1.0);

    ws.inner().close(None).await.expect("close sent");
    let _ = ws.close_frame(T).await;
    wait_gauge(base, SUBS, subs0, T).await;
    wait_gauge(base, CONNS, conns0, T).await;
}

// ---------- ping / pong ----------

#[tokio::test]
async fn a_ping_gets_a_pong_before_and_after_init_and_a_client_pong_is_ignored() {
    let app = support::spawn_with(|c| c.ws.ws_init_timeout_ms = 60_000).await;
    let mut ws = RawWs::connect(&app.base).await;
    ws.send_json(json!({ "type": "ping" })).await;
    assert_eq!(ws.next_json(T).await, Some(json!({ "type": "pong" })));
    ws.send_json(json!({ "type": "pong" })).await;
    ws.send_json(json!({ "type": "pong", "payload": { "any": "thing" } }))
        .await;
    ws.init().await;
    ws.send_json(json!({ "type": "ping", "payload": { "n": 1 } }))
        .await;
    let pong = ws.next_json(T).await.expect("a pong");
    assert_eq!(pong["type"], "pong", "{pong}");
    ws.send_json(json!({ "type": "pong" })).await;
    ws.assert_alive().await;
    assert!(
        ws.received
            .iter()
            .all(|m| m["type"] == "pong" || m["type"] == "connection_ack"),
        "nothing answers a client pong: {:?}",
        ws.received
    );
    assert!(ws.closed.is_none(), "closed: {:?}", ws.closed);
}

// ---------- keep-alive ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_reading_stays_connected_through_server_pings() {
    let server = ServerProcess::start_fresh(&[("CEREBRAL_WS_PING_INTERVAL_SECONDS", "1")]).await;
    let base = server.base.as_str();
    let conns0 = gauge(base, CONNS).await;
    let mut ws = RawWs::connect_and_init(base).await;
    ws.subscribe("s", HEAD_SUB, json!({})).await;
    // Keep polling (tokio-tungstenite answers each Ping) for more than four
    // intervals.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until && ws.closed.is_none() {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let _ = ws.next_json(left).await;
    }
    assert!(ws.closed.is_none(), "dropped: {:?}", ws.closed);
    assert!(
        ws.pings >= 2,
        "the server pings every second; saw {} Ping frames in 5 s",
        ws.pings
    );
    ws.assert_alive().await;
    assert_eq!(gauge(base, CONNS).await, conns0 + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_polling_its_socket_is_dropped() {
    let server = ServerProcess::start_fresh(&[("CEREBRAL_WS_PING_INTERVAL_SECONDS", "1")]).await;
    let base = server.base.as_str();
    let conns0 = gauge(base, CONNS).await;
    let subs0 = gauge(base, SUBS).await;
    let mut ws = RawWs::connect_and_init(base).await;
    ws.subscribe("s", HEAD_SUB, json!({})).await;
    wait_gauge(base, CONNS, conns0 + 1.0, T).await;
    wait_gauge(base, SUBS, subs0 + 1.0, T).await;
    // From here on the socket is neither read nor written: no pong answers
    // the server's Pings.
    let dropped = support::wait_metric(base, CONNS, Duration::from_secs(15), |v| v <= conns0).await;
    assert!(
        dropped.is_ok(),
        "a silent peer is dropped after two ping intervals; {CONNS} stayed at {dropped:?}"
    );
    wait_gauge(base, SUBS, subs0, T).await;
    drop(ws);
}

// ---------- subscription cap ----------

#[tokio::test]
async fn a_subscribe_beyond_the_cap_gets_too_many_subscriptions_and_the_socket_stays() {
    let app = support::spawn_with(|c| c.ws.ws_max_subscriptions = 2).await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe("a", HEAD_SUB, json!({})).await;
    ws.subscribe("b", HEAD_SUB, json!({})).await;
    ws.subscribe("c", HEAD_SUB, json!({})).await;
    let msg = ws.next_for("c", T).await.expect("an answer for c");
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(
        msg["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{msg}"
    );
    ws.assert_alive().await;

    ws.complete("a").await;
    let cursor = support::create_project_cursor(app.http(), &app.base, "capped").await;
    ws.subscribe("d", PROJECTS_AFTER, json!({ "after": before(&cursor) }))
        .await;
    let data = ws
        .next_data("d", T)
        .await
        .unwrap_or_else(|| panic!("d runs (closed: {:?})", ws.closed));
    assert_eq!(cursor_of(&data), cursor);
    ws.assert_alive().await;
    assert!(ws.closed.is_none(), "closed: {:?}", ws.closed);
}

// ---------- abrupt disconnect ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_disconnect_releases_all_its_subscriptions() {
    let server = ServerProcess::start_fresh(&[("CEREBRAL_WS_MAX_SUBSCRIPTIONS", "1000")]).await;
    let base = server.base.as_str();
    let subs0 = gauge(base, SUBS).await;
    let conns0 = gauge(base, CONNS).await;
    let mut ws = RawWs::connect_and_init(base).await;
    for i in 0..1000 {
        let msg =
            json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": HEAD_SUB } });
        ws.inner()
            .feed(Message::text(msg.to_string()))
            .await
            .expect("subscribe queued");
    }
    ws.inner().flush().await.expect("subscribes sent");
    wait_gauge(base, SUBS, subs0 + 1000.0, Duration::from_secs(60)).await;
    assert_eq!(gauge(base, CONNS).await, conns0 + 1.0);

    // Gone without close or complete.
    drop(ws);
    wait_gauge(base, SUBS, subs0, Duration::from_secs(10)).await;
    wait_gauge(base, CONNS, conns0, Duration::from_secs(10)).await;
}

// ---------- shutdown ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_subscriptions_with_1001_and_exits_zero() {
    let mut server = ServerProcess::start_fresh(&[]).await;
    let mut ws = RawWs::connect_and_init(&server.base).await;
    ws.subscribe("s", HEAD_SUB, json!({})).await;
    ws.assert_alive().await;

    server.terminate();
    let frame = ws.close_frame(Duration::from_secs(15)).await;
    assert_eq!(
        frame.as_ref().map(|(c, _)| *c),
        Some(1001),
        "Going Away on shutdown; got {frame:?} (connection state {:?})",
        ws.closed
    );
    let status = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the server exits within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let app = support::spawn().await;
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    let inner = ws.inner();
    inner
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await
        .expect("close sent");
    // A clean closing handshake: the server's close frame comes back, then
    // the stream ends. Without it tungstenite reports a reset.
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match inner.next().await {
                Some(Ok(Message::Close(_))) | None => return true,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return false,
            }
        }
    })
    .await
    .expect("an answer in time");
    assert!(
        answer,
        "the server dropped the socket without answering the close"
    );
}

// ---------- connection limits ----------

/// Opens a graphql-transport-ws socket: Ok, or the refusal's status,
/// `Retry-After` and `extensions.code`.
async fn open(base: &str) -> Result<support::WsStream, (u16, Option<String>, Value)> {
    support::ws_upgrade(base, &[])
        .await
        .map_err(|(status, retry, body)| {
            (
                status,
                retry,
                body["errors"][0]["extensions"]["code"].clone(),
            )
        })
}

#[tokio::test]
async fn an_address_over_its_socket_limit_gets_429_until_one_closes() {
    let app = support::spawn_with(|c| {
        c.ws.ws_max_connections_per_address = 3;
        c.ws.ws_upgrades_per_second = 0;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open(&app.base).await.expect("within the limit"));
    }
    let (status, retry, code) = open(&app.base).await.expect_err("refused");
    assert_eq!((status, code), (429, json!("TOO_MANY_CONNECTIONS")));
    assert_eq!(retry, None, "a held socket, not a rate: no time to wait");
    // Refusing costs the others nothing, and a closed socket frees its
    // place.
    let mut first = held.remove(0);
    first.close(None).await.expect("closed");
    drop(first);
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match open(&app.base).await {
            Ok(ws) => {
                held.push(ws);
                break;
            }
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "still {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_full_server_answers_503_and_a_fast_address_429_with_retry_after() {
    let full = support::spawn_with(|c| {
        c.ws.ws_max_connections = 2;
        c.ws.ws_max_connections_per_address = 0;
        c.ws.ws_upgrades_per_second = 0;
    })
    .await;
    let _a = open(&full.base).await.expect("first");
    let _b = open(&full.base).await.expect("second");
    let (status, _, code) = open(&full.base).await.expect_err("refused");
    assert_eq!((status, code), (503, json!("TOO_MANY_CONNECTIONS")));

    let fast = support::spawn_with(|c| {
        c.ws.ws_max_connections_per_address = 2;
        c.ws.ws_upgrades_per_second = 1;
    })
    .await;
    // A burst of the per-address limit, then one a second: closing and
    // reopening at once is refused.
    for _ in 0..2 {
        let mut ws = open(&fast.base).await.expect("within the burst");
        ws.close(None).await.expect("closed");
    }
    let (status, retry, code) = open(&fast.base).await.expect_err("refused");
    assert_eq!((status, code), (429, json!("TOO_MANY_CONNECTIONS")));
    assert_eq!(retry.as_deref(), Some("1"));
}
