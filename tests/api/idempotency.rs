//! Idempotency keys: a retried request returns the original result and
//! changes nothing; a reused key with other input is a conflict.

use std::sync::Arc;

use serde_json::json;

use crate::support;

const CREATE: &str = "mutation($n: String!, $k: String) { createProject(input: {name: $n, idempotencyKey: $k}) { project { id name } event { cursor } } }";

#[tokio::test]
async fn a_retried_create_returns_the_original_and_creates_nothing_more() {
    let app = support::spawn().await;
    let first = app
        .ok(CREATE, json!({ "n": "Shop", "k": "create-shop-1" }))
        .await;
    let again = app
        .ok(CREATE, json!({ "n": "Shop", "k": "create-shop-1" }))
        .await;
    assert_eq!(first, again, "same project, same event");
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
    let other = app
        .post(CREATE, json!({ "n": "Other", "k": "create-shop-1" }))
        .await;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "CONFLICT",
        "{other}"
    );
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
    // Without a key, the same request acts again.
    app.ok(CREATE, json!({ "n": "Shop" })).await;
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 2);
}

#[tokio::test]
async fn a_retried_transition_is_answered_from_the_log() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app
        .ok("mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\", idempotencyKey: \"task-1\"}) { task { id } } }", json!({ "p": p }))
        .await["createTask"]["task"]["id"]
        .clone();
    let start = "mutation($t: ID!, $k: String) { startTask(input: {taskId: $t, idempotencyKey: $k}) { task { status version } event { cursor type } } }";
    let a = app.ok(start, json!({ "t": t, "k": "start-1" })).await;
    let b = app.ok(start, json!({ "t": t, "k": "start-1" })).await;
    assert_eq!(a, b);
    let n = app
        .event_count(json!({ "projectId": p, "types": ["TASK_STARTED"] }))
        .await;
    assert_eq!(n, 1);
    // Without the key the repeat is refused by the lifecycle.
    let c = app.post(start, json!({ "t": t })).await;
    assert_eq!(c["errors"][0]["extensions"]["code"], "INVALID_TRANSITION");
    // A refused request stores no key: it fails the same way again.
    let done = "mutation($t: ID!) { retryTask(input: {taskId: $t, idempotencyKey: \"retry-1\"}) { task { status } } }";
    assert_eq!(
        app.post(done, json!({ "t": t })).await["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
    assert_eq!(
        app.post(done, json!({ "t": t })).await["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_act_once() {
    let app = Arc::new(support::spawn().await);
    let mut hs = vec![];
    for _ in 0..10 {
        let app = app.clone();
        hs.push(tokio::spawn(async move {
            app.post(CREATE, json!({ "n": "Race", "k": "race-key" }))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in hs {
        let r = h.await.expect("join");
        match r["data"]["createProject"]["project"]["id"].as_str() {
            Some(id) => {
                ids.insert(id.to_string());
            }
            None => assert_eq!(r["errors"][0]["extensions"]["code"], "CONFLICT", "{r}"),
        }
    }
    assert_eq!(ids.len(), 1, "every success names the same project");
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
}

#[tokio::test]
async fn session_and_checkpoint_verbs_take_keys_too() {
    let app = support::spawn().await;
    let s = app.start_session().await;
    let suspend = "mutation($s: ID!) { suspendSession(input: {sessionId: $s, idempotencyKey: \"susp\"}) { session { status } event { cursor } } }";
    let a = app.ok(suspend, json!({ "s": s })).await;
    let b = app.ok(suspend, json!({ "s": s })).await;
    assert_eq!(
        a, b,
        "the repeat is answered, not refused as SUSPENDED → SUSPENDED"
    );

    let p = app.create_project("P").await;
    let t = app.create_task(&p, "t").await;
    let cp = "mutation($t: ID!, $s: JSON!) { createCheckpoint(input: {taskId: $t, stepId: \"s\", state: $s}) { checkpoint { id } } }";
    let v1 = app.ok(cp, json!({ "t": t, "s": { "n": 1 } })).await["createCheckpoint"]["checkpoint"]
        ["id"]
        .clone();
    app.ok(cp, json!({ "t": t, "s": { "n": 2 } })).await;
    let revert = "mutation($c: ID!) { revertToCheckpoint(input: {checkpointId: $c, idempotencyKey: \"rv\"}) { reverted { version status } event { cursor } } }";
    let a = app.ok(revert, json!({ "c": v1 })).await;
    let b = app.ok(revert, json!({ "c": v1 })).await;
    assert_eq!(a, b);
    assert_eq!(
        a["revertToCheckpoint"]["reverted"].as_array().map(Vec::len),
        Some(1)
    );
}
