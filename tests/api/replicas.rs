//! Two servers on one database, as replicas behind a load balancer: an event
//! committed through one reaches a subscriber of the other.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_on_one_replica_reaches_a_subscriber_on_the_other() {
    let a = support::spawn().await;
    // On PostgreSQL the second replica hears of commits only through
    // LISTEN/NOTIFY (polling off); on SQLite, where there is no NOTIFY, it
    // polls the committed head.
    let postgres = support::backend() == "postgres";
    let b = support::spawn_on(a.database_url.clone(), None, |c| {
        c.events.event_poll_ms = if postgres { 0 } else { 100 };
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

/// Replicas started together on a fresh database (compose starts both as
/// soon as the migration has run) race to load the built-in catalog: one
/// commits it, and the others must find it loaded rather than fail start-up
/// with `CONFLICT`. On SQLite one file is not shared by replicas, and
/// concurrent first start-ups are not a deployment, so this runs on
/// PostgreSQL (`TEST_DATABASE_URL`, as `.ci/run` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_on_a_fresh_database_all_come_up() {
    if support::backend() != "postgres" {
        return;
    }
    let (url, _) = support::fresh_database().await;
    // As `cerebral migrate up` does before the replicas start: with the
    // migrations applied, nothing else orders the replicas' start-ups.
    let (db, _) = cerebral::db::connect(&url, 1).await.expect("connect");
    cerebral::db::migrate(&db).await.expect("migrate");
    db.close().await.expect("close");
    let (a, b, c, d) = tokio::join!(
        support::spawn_on(url.clone(), None, |_| {}),
        support::spawn_on(url.clone(), None, |_| {}),
        support::spawn_on(url.clone(), None, |_| {}),
        support::spawn_on(url.clone(), None, |_| {}),
    );
    for app in [&a, &b, &c, &d] {
        let data = app.ok("{ workflows { nodes { key } } }", json!({})).await;
        let keys = data["workflows"]["nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(keys, 6, "every replica serves the built-in catalog once");
    }
}
