//! A subscriber further behind than the replay limit is told so
//! (`RESYNC_REQUIRED` with the latest cursor) instead of being sent a
//! partial history or nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;

async fn first_message(app: &support::TestApp, after: &str) -> Value {
    first_message_of(app, &format!("events(after: \"{after}\") {{ cursor }}")).await
}

async fn first_message_of(app: &support::TestApp, field: &str) -> Value {
    let mut ws = support::RawWs::connect(&app.base).await;
    ws.send_json(json!({ "type": "connection_init" })).await;
    ws.subscribe("r", &format!("subscription {{ {field} }}"), json!({}))
        .await;
    ws.next_for("r", Duration::from_secs(10))
        .await
        .expect("an answer in time")
}

#[tokio::test]
async fn a_cursor_older_than_the_replay_limit_gets_resync_required_with_the_latest_cursor() {
    let app = support::spawn_with(|c| c.events.max_replay_events = 5).await;
    let mut cursors = Vec::new();
    for i in 0..8 {
        cursors.push(support::create_project_cursor(app.http(), &app.base, &format!("p{i}")).await);
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
    let app = support::spawn_with(|c| c.events.max_replay_events = 5).await;
    for i in 0..8 {
        app.create_project(&format!("p{i}")).await;
    }
    let p = app.create_project("quiet").await;
    let p = p.as_str().expect("id");
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
