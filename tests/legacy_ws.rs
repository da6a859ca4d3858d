//! The legacy `graphql-ws` subprotocol (subscriptions-transport-ws) keeps
//! working beside graphql-transport-ws.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn a_legacy_graphql_ws_client_replays_events_from_a_cursor() {
    let app = support::spawn().await;
    app.ok(
        "mutation { createProject(input: {name: \"legacy\"}) { project { id } } }",
        json!({}),
    )
    .await;

    let mut req = format!("{}/graphql", app.base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-ws".parse().expect("header"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("graphql-ws")
    );
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": {} }).to_string(),
    ))
    .await
    .expect("init");
    ws.send(Message::text(
        json!({ "id": "a", "type": "start", "payload": { "query": "subscription { events(after: \"0\", types: [PROJECT_CREATED]) { type cursor } }" } }).to_string(),
    ))
    .await
    .expect("start");
    let data = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "data" {
                    return Some(v["payload"]["data"].clone());
                }
            }
        }
        None
    })
    .await
    .expect("in time")
    .expect("a data message");
    assert_eq!(data["events"]["type"], "PROJECT_CREATED");
}

#[tokio::test]
async fn a_legacy_start_sent_before_connection_init_runs_once_the_connection_is_initialised() {
    let app = support::spawn().await;
    app.ok(
        "mutation { createProject(input: {name: \"early\"}) { project { id } } }",
        json!({}),
    )
    .await;
    let mut req = format!("{}/graphql", app.base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-ws".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    // Apollo's client may send `start` while it still awaits its
    // connectionParams, before `connection_init`.
    ws.send(Message::text(
        json!({ "id": "e", "type": "start", "payload": { "query": "subscription { events(after: \"0\", types: [PROJECT_CREATED]) { type } }" } }).to_string(),
    ))
    .await
    .expect("start");
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": {} }).to_string(),
    ))
    .await
    .expect("init");
    let data = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "data" && v["id"] == "e" {
                    return Some(v["payload"]["data"].clone());
                }
            }
        }
        None
    })
    .await
    .expect("in time")
    .expect("a data message for the early start");
    assert_eq!(data["events"]["type"], "PROJECT_CREATED");
}
