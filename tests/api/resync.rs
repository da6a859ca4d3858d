//! A subscriber further behind than the replay limit is told so
//! (`RESYNC_REQUIRED` with the latest cursor) instead of being sent a
//! partial history or nothing.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support;

async fn first_message(app: &support::TestApp, after: &str) -> Value {
    first_message_of(app, &format!("events(after: \"{after}\") {{ cursor }}")).await
}

async fn first_message_of(app: &support::TestApp, field: &str) -> Value {
    let mut req = format!("{}/graphql", app.base.replace("http://", "ws://"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    ws.send(Message::text(
        json!({ "type": "connection_init" }).to_string(),
    ))
    .await
    .expect("init");
    ws.send(Message::text(
        json!({ "id": "r", "type": "subscribe", "payload": { "query": format!("subscription {{ {field} }}") } }).to_string(),
    ))
    .await
    .expect("subscribe");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["id"] == "r" {
                    return v;
                }
            }
        }
        panic!("socket ended");
    })
    .await
    .expect("an answer in time")
}

#[tokio::test]
async fn a_cursor_older_than_the_replay_limit_gets_resync_required_with_the_latest_cursor() {
    let app = support::spawn_with(|c| c.max_replay_events = 5).await;
    let mut cursors = Vec::new();
    for i in 0..8 {
        let d = app
            .ok(
                "mutation($n: String!) { createProject(input: {name: $n}) { event { cursor } } }",
                json!({ "n": format!("p{i}") }),
            )
            .await;
        cursors.push(
            d["createProject"]["event"]["cursor"]
                .as_str()
                .expect("cursor")
                .to_string(),
        );
    }
    let last = cursors.last().expect("cursors").clone();
    let m = first_message(&app, "0").await;
    assert_eq!(m["type"], "error", "{m}");
    let e = &m["payload"][0];
    assert_eq!(e["extensions"]["code"], "RESYNC_REQUIRED", "{m}");
    assert_eq!(e["extensions"]["latestCursor"], last.as_str());
    assert!(e["extensions"]["reason"].as_str().is_some());

    // Within the limit (three events after the cursor), the replay is
    // served as usual. Positions need not be consecutive (on PostgreSQL
    // they are not), so the cursors come from the mutations.
    let m = first_message(&app, &cursors[4]).await;
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(
        m["payload"]["data"]["events"]["cursor"],
        cursors[5].as_str()
    );
}

#[tokio::test]
async fn the_replay_limit_counts_the_subscribers_own_events_not_the_whole_log() {
    let app = support::spawn_with(|c| c.max_replay_events = 5).await;
    for i in 0..8 {
        app.ok(
            "mutation($n: String!) { createProject(input: {name: $n}) { event { cursor } } }",
            json!({ "n": format!("p{i}") }),
        )
        .await;
    }
    let p = app
        .ok(
            "mutation { createProject(input: {name: \"quiet\"}) { project { id } } }",
            json!({}),
        )
        .await["createProject"]["project"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Nine events in the log, one of them in this project: within the limit.
    let m = first_message_of(
        &app,
        &format!("events(after: \"0\", projectId: \"{p}\") {{ cursor type }}"),
    )
    .await;
    assert_eq!(m["type"], "next", "{m}");
    assert_eq!(m["payload"]["data"]["events"]["type"], "PROJECT_CREATED");
}

#[tokio::test]
async fn a_cursor_ahead_of_the_log_is_refused() {
    let app = support::spawn().await;
    // Beyond any position a committed transaction can have written, on
    // either back-end (on PostgreSQL positions are transaction ids shifted
    // left by 20 bits, so a small number is an old, valid position).
    let m = first_message(&app, "9000000000000000000").await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
}
