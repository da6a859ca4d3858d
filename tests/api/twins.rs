//! Every typed subscription has a query twin with the same items and the
//! same cursors, so a client without WebSockets can poll what a subscriber
//! would have been sent.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;

/// Cursors of a subscription replayed from the start, until `n` items came.
async fn streamed(app: &support::TestApp, query: &str, p: &Value, n: usize) -> Vec<String> {
    let mut sub = app.subscribe(query, json!({ "p": p })).await;
    let mut out = Vec::new();
    while out.len() < n {
        let item = sub
            .next(Duration::from_secs(10))
            .await
            .expect("a replayed item");
        let (_, v) = item
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("one root field");
        out.push(v["cursor"].as_str().expect("cursor").to_string());
    }
    // Nothing more than the log holds.
    assert!(sub.next(Duration::from_millis(300)).await.is_none());
    out
}

/// Cursors of a query twin read page by page (pages of 2, so paging is
/// exercised), and its totalCount.
async fn polled(app: &support::TestApp, field: &str, args: &str, p: &Value) -> (Vec<String>, u64) {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = format!(
            "query($p: ID!, $after: String) {{ {field}(projectId: $p, first: 2, after: $after{args}) {{ totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ cursor event {{ cursor }} }} }} }} }}"
        );
        let d = app.ok(&q, json!({ "p": p, "after": after })).await;
        let c = &d[field];
        for e in c["edges"].as_array().expect("edges") {
            assert_eq!(e["cursor"], e["node"]["cursor"]);
            assert_eq!(e["cursor"], e["node"]["event"]["cursor"]);
            out.push(e["cursor"].as_str().expect("cursor").to_string());
        }
        if c["pageInfo"]["hasNextPage"] != true {
            return (out, c["totalCount"].as_u64().expect("totalCount"));
        }
        after = c["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
}

#[tokio::test]
async fn each_typed_subscription_and_its_query_twin_agree_item_for_item() {
    let app = support::spawn().await;
    let p = app.create_project("twins").await;
    let t = app.working_task(&p).await;
    for pct in [10, 50] {
        app.ok(
            "mutation($t: ID!, $n: Int!) { reportTaskProgress(input: {taskId: $t, progress: $n}) { task { id } } }",
            json!({ "t": t, "n": pct }),
        )
        .await;
    }
    for (persona, status) in [("dev", "WORKING"), ("qa", "WORKING"), ("dev", "IDLE")] {
        app.ok(
            "mutation($p: ID!, $per: ID!, $s: AgentState!) { updateAgentStatus(input: {personaId: $per, projectId: $p, status: $s}) { agentStatus { status } } }",
            json!({ "p": p, "per": persona, "s": status }),
        )
        .await;
    }
    for name in ["a.md", "b.md", "a.md"] {
        app.ok(
            "mutation($p: ID!, $n: String!) { createArtifact(input: {projectId: $p, kind: PLAN, name: $n, content: {}}) { artifact { id } } }",
            json!({ "p": p, "n": name }),
        )
        .await;
    }
    app.request_hitl(&t, "ok?").await;
    let story = app.draft_story(app.create_epic(&p, "e").await, "s").await;
    for verb in ["approveStory", "startStory"] {
        app.ok(
            &format!("mutation($s: ID!) {{ {verb}(input: {{storyId: $s}}) {{ story {{ id }} }} }}"),
            json!({ "s": story }),
        )
        .await;
    }

    let cases = [
        ("taskUpdated", "taskUpdates", "", 5),
        ("artifactCreated", "artifactUpdates", "", 3),
        ("agentStatusChanged", "agentStatusUpdates", "", 3),
        (
            "agentStatusChanged",
            "agentStatusUpdates",
            ", personaId: \"dev\"",
            2,
        ),
        ("hitlRequested", "hitlRequestUpdates", "", 1),
        ("storyUpdated", "storyUpdates", "", 3),
    ];
    for (sub, twin, args, n) in cases {
        let (twin_cursors, total) = polled(&app, twin, args, &p).await;
        let q = format!(
            "subscription($p: ID!) {{ {sub}(projectId: $p, after: \"0\"{args}) {{ cursor }} }}"
        );
        let stream_cursors = streamed(&app, &q, &p, n).await;
        assert_eq!(
            twin_cursors, stream_cursors,
            "{twin}{args} and {sub} disagree"
        );
        assert_eq!(twin_cursors.len(), n, "{twin}{args}");
        assert_eq!(total, n as u64, "{twin}{args} totalCount");
    }
}

/// The cursors of `events` and of `Project.events` for `project`.
async fn polled_now(app: &support::TestApp, project: &str) -> (Vec<String>, Vec<String>) {
    let d = app
        .ok(
            "query($p: ID!) { events(first: 100) { nodes { cursor } } project(id: $p) { events(first: 100) { nodes { cursor } } } }",
            json!({ "p": project }),
        )
        .await;
    let cursors = |v: &Value| -> Vec<String> {
        v["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["cursor"].as_str().expect("cursor").to_string())
            .collect()
    };
    (cursors(&d["events"]), cursors(&d["project"]["events"]))
}

/// On PostgreSQL a committed event is final (listed, so paging on never
/// skips one) only once every transaction begun before it has ended; the
/// reads of the log wait for that, so a client reads its own writes even
/// while some older write transaction in the cluster is still open — and
/// only up to a bound, when that transaction stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_events_while_an_older_write_transaction_is_open() {
    if support::backend() != "postgres" {
        // SQLite writers take turns: an event is final at commit.
        return;
    }
    let (owner, _) = cerebral::db::connect(&app_url(), 2).await.expect("connect");
    let app = support::spawn().await;

    // An older transaction with an id, open while the project is created,
    // ending a moment after the query began.
    let (older, project, mine) = create_beside_an_older_transaction(&owner, &app, "mine").await;
    let ender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        older.commit().await.expect("commit");
    });
    let (all, of_project) = polled_now(&app, &project).await;
    assert!(all.contains(&mine), "{mine} not in {all:?}");
    assert!(of_project.contains(&mine), "{mine} not in {of_project:?}");
    ender.await.expect("ender");

    // One that stays open: the read answers after its bound with what is
    // final, and lists the event once the transaction ends.
    let (older, held_project, held) =
        create_beside_an_older_transaction(&owner, &app, "held").await;
    let began = std::time::Instant::now();
    let (all, of_project) = polled_now(&app, &held_project).await;
    // The bound is 1 s per read (two reads here); generous for a loaded machine.
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert!(all.contains(&mine) && !all.contains(&held), "{all:?}");
    assert!(of_project.is_empty(), "{of_project:?}");
    older.commit().await.expect("commit");
    let (all, of_project) = polled_now(&app, &held_project).await;
    assert!(all.contains(&held), "{held} not in {all:?}");
    assert!(of_project.contains(&held), "{held} not in {of_project:?}");
}

/// Begins a transaction on `owner` that takes a transaction id, then
/// creates a project named `name` while it is open: the transaction, the
/// project's id and the cursor of its PROJECT_CREATED event.
async fn create_beside_an_older_transaction(
    owner: &sea_orm::DatabaseConnection,
    app: &support::TestApp,
    name: &str,
) -> (sea_orm::DatabaseTransaction, String, String) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let older = owner.begin().await.expect("begin");
    older
        .execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .expect("take a transaction id");
    let d = app
        .ok(
            "mutation($n: String!) { createProject(input: {name: $n}) { project { id } event { cursor } } }",
            json!({ "n": name }),
        )
        .await;
    let text = |v: &Value| v.as_str().expect("text").to_string();
    (
        older,
        text(&d["createProject"]["project"]["id"]),
        text(&d["createProject"]["event"]["cursor"]),
    )
}

/// Any database of the test cluster: transaction ids are cluster-wide.
fn app_url() -> String {
    std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL")
}
