//! Two servers on one database, as replicas behind a load balancer: an event
//! committed through one reaches a subscriber of the other.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_on_one_replica_reaches_a_subscriber_on_the_other() {
    let a = support::spawn().await;
    // On PostgreSQL the second replica hears of commits only through
    // LISTEN/NOTIFY (polling off); on SQLite, where there is no NOTIFY, it
    // polls the committed head.
    let postgres = support::backend() == "postgres";
    let b = support::spawn_on(a.database_url.clone(), None, |c| {
        c.event_poll_ms = if postgres { 0 } else { 100 };
    })
    .await;
    let mut sub = b
        .subscribe(
            "subscription { events(after: \"HEAD\", types: [PROJECT_CREATED]) { cursor payload } }",
            json!({}),
        )
        .await;
    // Give the subscription a moment to be registered on B.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let created = a
        .ok("mutation { createProject(input: {name: \"via A\"}) { project { id } event { cursor } } }", json!({}))
        .await;
    let item = sub
        .next(Duration::from_secs(5))
        .await
        .expect("B's subscriber hears of A's commit");
    assert_eq!(
        item["events"]["cursor"],
        created["createProject"]["event"]["cursor"]
    );
    assert_eq!(item["events"]["payload"]["name"], "via A");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
