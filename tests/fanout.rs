//! The in-process ring is an optimisation, never a source of truth: with a
//! ring of two events, subscribers fall behind it all the time, and each
//! must still get every event once, in order, from the log. Projects are
//! created from a workflow, so each commit appends a dozen events at once
//! and the ring is certain to be outrun.

mod support;

use std::time::Duration;

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_keep_falling_behind_a_tiny_ring_miss_nothing() {
    let app = support::spawn_with(|c| c.event_buffer = 2).await;
    let marker = app
        .ok(
            "mutation { createProject(input: {name: \"marker\"}) { event { cursor } } }",
            json!({}),
        )
        .await["createProject"]["event"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
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
                let body: serde_json::Value = http
                    .post(format!("{base}/graphql"))
                    .json(&json!({
                        "query": "mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { event { cursor } } }",
                        "variables": { "n": format!("p{p}-{i}") }
                    }))
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("json");
                cursors.push(
                    body["data"]["createProject"]["event"]["cursor"]
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
    let mut expected = Vec::new();
    let mut after = marker.clone();
    loop {
        let d = app
            .ok(
                "query($a: String) { events(first: 100, after: $a) { pageInfo { hasNextPage endCursor } nodes { cursor } } }",
                json!({ "a": after }),
            )
            .await;
        for n in d["events"]["nodes"].as_array().expect("nodes") {
            expected.push(
                n["cursor"]
                    .as_str()
                    .expect("cursor")
                    .parse::<i64>()
                    .expect("number"),
            );
        }
        if d["events"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = d["events"]["pageInfo"]["endCursor"]
            .as_str()
            .expect("end")
            .to_string();
    }
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
