//! The in-process ring is an optimisation, never a source of truth: with a
//! ring of two events, subscribers fall behind it all the time, and each
//! must still get every event once, in order, from the log. Projects are
//! created from a workflow, so each commit appends a dozen events at once
//! and the ring is certain to be outrun.

use std::time::Duration;

use serde_json::json;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_keep_falling_behind_a_tiny_ring_miss_nothing() {
    let app = support::spawn_with(|c| c.events.event_buffer = 2).await;
    let marker = support::create_project_cursor(app.http(), &app.base, "marker").await;
    let q = "subscription($a: String!) { events(after: $a) { cursor } }";
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(app.subscribe(q, json!({ "a": marker })).await);
    }
    // Four publishers at once, so commits arrive in bursts.
    let mut publishers = Vec::new();
    for p in 0..4 {
        let base = app.base.clone();
        publishers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut cursors = Vec::new();
            for i in 0..10 {
                let data = support::gql_ok(
                    &http,
                    &base,
                    "mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { event { cursor } } }",
                    json!({ "n": format!("p{p}-{i}") }),
                )
                .await;
                cursors.push(
                    data["createProject"]["event"]["cursor"]
                        .as_str()
                        .expect("cursor")
                        .parse::<i64>()
                        .expect("number"),
                );
            }
            cursors
        }));
    }
    for p in publishers {
        assert_eq!(p.await.expect("publisher").len(), 10);
    }
    // Every event after the marker, read with the query twin.
    let expected: Vec<i64> = app
        .events_after(json!(marker), "cursor")
        .await
        .iter()
        .map(|n| {
            n["cursor"]
                .as_str()
                .expect("cursor")
                .parse()
                .expect("number")
        })
        .collect();
    assert!(expected.len() >= 40 * 13, "{} events", expected.len());
    for (n, sub) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let item = sub
                .next(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("subscriber {n} stalled after {} events", got.len()));
            got.push(
                item["events"]["cursor"]
                    .as_str()
                    .expect("cursor")
                    .parse::<i64>()
                    .expect("number"),
            );
        }
        assert_eq!(got, expected, "subscriber {n}");
        assert!(
            sub.next(Duration::from_millis(300)).await.is_none(),
            "subscriber {n} got more than was published"
        );
    }
    // The ring really was outrun: streams read gaps back from the log.
    let gaps = support::metric(&app.base, "cerebral_event_gap_reads_total")
        .await
        .expect("gap metric");
    assert!(gaps > 0.0, "no stream ever fell behind a ring of two");
}

/// The `cerebral_subscription_frames_shared_total` counter now (0 before
/// the first shared frame).
async fn shared(base: &str) -> f64 {
    support::metric(base, "cerebral_subscription_frames_shared_total")
        .await
        .unwrap_or(0.0)
}

/// The next `count` messages for operation `1`, whole (type and payload).
async fn frames(ws: &mut support::RawWs, count: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for i in 0..count {
        let msg = ws
            .next_for("1", Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("stalled after {i} of {count} frames"));
        out.push(msg);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_selection_get_one_execution_and_other_selections_their_own() {
    let app = support::spawn().await;
    let marker = support::create_project_cursor(app.http(), &app.base, "marker").await;
    app.create_project_from("shared", "greenfield-service")
        .await;
    let log = app
        .ok(
            "query($a: String) { events(first: 100, after: $a) { nodes { cursor } } }",
            json!({ "a": marker }),
        )
        .await;
    let n = log["events"]["nodes"].as_array().expect("nodes").len();
    assert!(n > 5, "{n} events");
    // A nested field read through the connection's loaders, and the raw
    // payload: the whole selection must come out the same.
    let q =
        "subscription($a: String!) { events(after: $a) { cursor type payload project { name } } }";

    let mut a = support::RawWs::connect_and_init(&app.base).await;
    a.subscribe("1", q, json!({ "a": marker })).await;
    let first = frames(&mut a, n).await;
    assert!(first.iter().all(|m| m["type"] == "next"), "{first:?}");
    assert_eq!(
        first[0]["payload"]["data"]["events"]["project"]["name"],
        "shared"
    );

    // The same selection replayed on another socket: every frame comes
    // from the first socket's executions.
    let before = shared(&app.base).await;
    let mut b = support::RawWs::connect_and_init(&app.base).await;
    b.subscribe("1", q, json!({ "a": marker })).await;
    let second = frames(&mut b, n).await;
    assert_eq!(second, first);
    assert_eq!(shared(&app.base).await - before, n as f64);

    // The same document with other variables is another selection: run
    // on its own, and right.
    let before = shared(&app.base).await;
    let from = first[0]["payload"]["data"]["events"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let mut c = support::RawWs::connect_and_init(&app.base).await;
    c.subscribe("1", q, json!({ "a": from })).await;
    let third = frames(&mut c, n - 1).await;
    assert_eq!(third, first[1..]);
    // So is another selection of the same events.
    let mut d = support::RawWs::connect_and_init(&app.base).await;
    d.subscribe(
        "1",
        "subscription($a: String!) { events(after: $a) { cursor } }",
        json!({ "a": marker }),
    )
    .await;
    let fourth = frames(&mut d, n).await;
    for (f, x) in fourth.iter().zip(&first) {
        assert_eq!(
            f["payload"]["data"]["events"],
            json!({ "cursor": x["payload"]["data"]["events"]["cursor"] })
        );
    }
    assert_eq!(shared(&app.base).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_with_an_error_is_each_subscribers_own() {
    // Every event's payload is larger than this: each item fails with
    // RESPONSE_TOO_LARGE, and an answer with errors is never shared.
    let app = support::spawn_with(|c| c.query.max_response_bytes = 120).await;
    let marker = support::create_project_cursor(app.http(), &app.base, "marker").await;
    support::create_project_cursor(app.http(), &app.base, "a project with a long enough name")
        .await;
    let q = "subscription($a: String!) { events(after: $a) { cursor payload } }";
    let before = shared(&app.base).await;
    for _ in 0..2 {
        let mut ws = support::RawWs::connect_and_init(&app.base).await;
        ws.subscribe("1", q, json!({ "a": marker })).await;
        let msg = frames(&mut ws, 1).await.remove(0);
        assert!(
            msg.to_string().contains("RESPONSE_TOO_LARGE"),
            "expected RESPONSE_TOO_LARGE: {msg}"
        );
    }
    assert_eq!(shared(&app.base).await, before);
}

/// Writes `n` events of `event_type` in `project` in one transaction, in
/// process (a thousand events over HTTP would take most of the test).
async fn append_events(
    app: &support::TestApp,
    project: uuid::Uuid,
    event_type: cerebral::domain::EventType,
    n: usize,
) {
    let principal = cerebral::auth::Principal::development();
    let mut tx = app.services.begin(&principal).await.expect("begin");
    for i in 0..n {
        tx.append(cerebral::service::NewEvent {
            event_type,
            project_id: Some(project),
            task_id: None,
            subject: cerebral::ids::Kind::Task.into(),
            subject_id: uuid::Uuid::now_v7(),
            payload: json!({ "i": i }),
        });
    }
    tx.commit().await.expect("commit");
}

/// Issue 14: events a stream's filter excludes cost it nothing. A stream
/// narrowed to one project and one type sleeps through a thousand events
/// of other projects and other types — it is never woken, and it reads
/// nothing from the log although they run far past its ring of 16 — and
/// still gets its own event when it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_is_not_woken_by_the_events_it_excludes() {
    use cerebral::domain::EventType;
    let app = support::spawn_with(|c| c.events.event_buffer = 16).await;
    let mine = app.create_project("mine").await;
    let mine_id = cerebral::ids::decode(
        cerebral::ids::Kind::Project,
        mine.as_str().expect("project id"),
    )
    .expect("project id");
    let mut sub = app
        .subscribe(
            "subscription($p: ID!) { events(after: \"HEAD\", projectId: $p, types: [TASK_PROGRESS]) { cursor type payload } }",
            json!({ "p": mine }),
        )
        .await;
    support::wait_metric(
        &app.base,
        "cerebral_event_listeners",
        Duration::from_secs(10),
        |v| v >= 1.0,
    )
    .await
    .expect("the stream is registered");
    let metric = |name: &'static str| {
        let base = app.base.clone();
        async move { support::metric(&base, name).await.unwrap_or(0.0) }
    };
    let wakeups = metric("cerebral_event_stream_wakeups_total").await;
    let gaps = metric("cerebral_event_gap_reads_total").await;
    let published = metric("cerebral_events_published_total").await;

    // 500 of its type in another project, 500 of another type in its own.
    let other = uuid::Uuid::now_v7();
    for _ in 0..5 {
        append_events(&app, other, EventType::TaskProgress, 100).await;
        append_events(&app, mine_id, EventType::TaskCreated, 100).await;
    }
    support::wait_metric(
        &app.base,
        "cerebral_events_published_total",
        Duration::from_secs(20),
        |v| v >= published + 1000.0,
    )
    .await
    .expect("the fan-out put the thousand events on the ring");
    assert_eq!(
        metric("cerebral_event_stream_wakeups_total").await,
        wakeups,
        "a stream was woken by events its filter excludes"
    );
    assert_eq!(
        metric("cerebral_event_gap_reads_total").await,
        gaps,
        "a stream read events it excludes back from the log"
    );
    assert!(
        sub.next(Duration::from_millis(300)).await.is_none(),
        "an excluded event was delivered"
    );

    // Its own event wakes it and arrives.
    append_events(&app, mine_id, EventType::TaskProgress, 1).await;
    let got = sub
        .next(Duration::from_secs(10))
        .await
        .expect("its own event arrives");
    assert_eq!(got["events"]["type"], "TASK_PROGRESS");
    assert_eq!(got["events"]["payload"]["i"], 0);
    assert!(metric("cerebral_event_stream_wakeups_total").await > wakeups);
}
