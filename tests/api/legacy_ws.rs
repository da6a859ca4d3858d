//! The legacy `graphql-ws` subprotocol (subscriptions-transport-ws) keeps
//! working beside graphql-transport-ws.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support;

#[tokio::test]
async fn a_legacy_graphql_ws_client_replays_events_from_a_cursor() {
    let app = support::spawn().await;
    app.create_project("legacy").await;
    let mut ws = legacy(&app.base).await;
    ws.send_json(json!({ "type": "connection_init", "payload": {} }))
        .await;
    ws.send_json(json!({ "id": "a", "type": "start", "payload": { "query": "subscription { events(after: \"0\", types: [PROJECT_CREATED]) { type cursor } }" } }))
        .await;
    let data = first_data(&mut ws, "a").await.expect("a data message");
    assert_eq!(data["events"]["type"], "PROJECT_CREATED");
}

#[tokio::test]
async fn a_legacy_start_sent_before_connection_init_runs_once_the_connection_is_initialised() {
    let app = support::spawn().await;
    app.create_project("early").await;
    let mut ws = legacy(&app.base).await;
    // Apollo's client may send `start` while it still awaits its
    // connectionParams, before `connection_init`.
    ws.send_json(json!({ "id": "e", "type": "start", "payload": { "query": "subscription { events(after: \"0\", types: [PROJECT_CREATED]) { type } }" } }))
        .await;
    ws.send_json(json!({ "type": "connection_init", "payload": {} }))
        .await;
    let data = first_data(&mut ws, "e")
        .await
        .expect("a data message for the early start");
    assert_eq!(data["events"]["type"], "PROJECT_CREATED");
}

/// A legacy socket to `base`, not yet initialised.
async fn legacy(base: &str) -> support::RawWs {
    let ws = support::RawWs::connect_protocol(base, "graphql-ws").await;
    assert_eq!(ws.protocol.as_deref(), Some("graphql-ws"));
    ws
}

/// The `data` of the first legacy `data` message for `id`, or None when
/// none came within 10 s of the one before.
async fn first_data(ws: &mut support::RawWs, id: &str) -> Option<Value> {
    loop {
        let msg = ws.next_for(id, Duration::from_secs(10)).await?;
        if msg["type"] == "data" {
            return Some(msg["payload"]["data"].clone());
        }
    }
}

fn start(id: &str, padding: usize) -> Value {
    json!({ "id": id, "type": "start", "payload": {
        "query": "subscription { events(after: \"HEAD\") { type } }",
        "variables": { "padding": "x".repeat(padding) },
    } })
}

#[tokio::test]
async fn starts_queued_before_connection_init_are_capped_by_count_and_bytes() {
    let app = support::spawn_with(|c| {
        c.ws.ws_max_early_operations = 4;
        c.ws.ws_max_early_bytes = 16 * 1024;
    })
    .await;
    // Up to the count: kept, and all run once initialised.
    let mut ws = legacy(&app.base).await;
    for i in 0..4 {
        ws.send_json(start(&i.to_string(), 100)).await;
    }
    ws.send_json(json!({ "type": "connection_init", "payload": {} }))
        .await;
    let ack = ws.next_json(Duration::from_secs(10)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack", "{:?}", ws.received);
    ws.send_json(json!({ "type": "connection_terminate" }))
        .await;

    // One more than the count: closed, nothing runs.
    let mut ws = legacy(&app.base).await;
    for i in 0..5 {
        if !ws
            .try_send(Message::text(start(&i.to_string(), 100).to_string()))
            .await
        {
            break;
        }
    }
    let (code, reason) = ws
        .close_frame(Duration::from_secs(10))
        .await
        .expect("a close frame");
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("before connection_init"), "{reason}");

    // Within the count but over the bytes: closed at the start that
    // crosses them.
    let mut ws = legacy(&app.base).await;
    for i in 0..3 {
        if !ws
            .try_send(Message::text(start(&i.to_string(), 6 * 1024).to_string()))
            .await
        {
            break;
        }
    }
    assert_eq!(ws.close_code(Duration::from_secs(10)).await, Some(4400));

    // One message over the bytes is closed before it is parsed, on either
    // protocol, `connection_init` included.
    let mut ws = legacy(&app.base).await;
    let _ = ws
        .try_send(Message::text(start("big", 20 * 1024).to_string()))
        .await;
    assert_eq!(ws.close_code(Duration::from_secs(10)).await, Some(4400));
    let mut ws = support::RawWs::connect(&app.base).await;
    let big_init = json!({ "type": "connection_init", "payload": { "x": "y".repeat(20 * 1024) } });
    let _ = ws.try_send(Message::text(big_init.to_string())).await;
    assert_eq!(ws.close_code(Duration::from_secs(10)).await, Some(4400));
    // After the ack the message limit is the only one.
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    ws.subscribe(
        "after",
        "subscription($p: String) { events(after: \"HEAD\") { type } }",
        json!({ "p": "z".repeat(20 * 1024) }),
    )
    .await;
    ws.assert_alive().await;
}
