//! Round trips per request: the cheap invariants behind the side-by-side
//! benchmark (bench/sidebyside, docs/benchmarks.md). A query is one
//! statement per nesting level, whatever the page sizes, and nothing else:
//! on PostgreSQL its tenant is set once per kept read session, not once per
//! request (`cerebral::rls::sessions`), so a warm server sends no
//! `BEGIN`, `set_config` or `COMMIT` for it; a count runs only when
//! `totalCount` is selected.
//!
//! Counted in-process ([`cerebral::db::StatementCounter`]): statements
//! include every `set_config` (counted as "transactions": the times a
//! scope was set), not `BEGIN`/`COMMIT`. The server's background work is off in tests
//! (sweepers, the event poll), and each figure is the least of three runs,
//! so a stray statement of the event fan-out after a setup mutation cannot
//! make the test flaky; a regression adds to every run.

mod support;

use serde_json::json;

const FLAT: &str = "{ projects(first: 20) { nodes { id name status createdAt } } }";
const FLAT_COUNTED: &str =
    "{ projects(first: 20) { totalCount nodes { id name status createdAt } } }";
const NESTED: &str = "{ projects(first: 20) { nodes { id name tasks(first: 20) { nodes { id title status persona { key name } } } } } }";
const BY_ID: &str = "query($id: ID!) { task(id: $id) { id title status createdAt updatedAt } }";
const PROGRESS: &str = "mutation($id: ID!, $p: Int!) { reportTaskProgress(input: {taskId: $id, progress: $p}) { task { id progress } } }";

/// (statements, transactions) of the least costly of three runs of `run`.
async fn cost<F, Fut>(app: &support::TestApp, mut run: F) -> (u64, u64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut best = (u64::MAX, u64::MAX);
    for i in 0..3 {
        // Let what earlier requests started (the fan-out's read of new
        // events) finish first.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let (s0, t0) = (app.statements.get(), app.statements.transactions());
        run(i).await;
        let (s1, t1) = (app.statements.get(), app.statements.transactions());
        best = best.min((s1 - s0, t1 - t0));
    }
    best
}

#[tokio::test]
async fn a_query_is_one_statement_per_level_and_sets_no_tenant_when_warm() {
    let app = support::spawn().await;
    let pg = support::backend() == "postgres";
    let mut projects = vec![];
    for i in 0..3 {
        let d = app
            .ok(
                "mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { project { id } } }",
                json!({ "n": format!("P{i}") }),
            )
            .await;
        projects.push(
            d["createProject"]["project"]["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let d = app
        .ok(
            "mutation($p: ID!) { createTask(input: {projectId: $p, title: \"T\", personaId: \"dev\"}) { task { id } } }",
            json!({ "p": projects[0] }),
        )
        .await;
    let task = d["createTask"]["task"]["id"]
        .as_str()
        .expect("task id")
        .to_string();
    // A warm server reuses the session that has the tenant set: the
    // statements of the query and nothing else, on either database.
    let txns = 0;

    let flat = cost(&app, |_| async {
        let d = app.ok(FLAT, json!({})).await;
        assert_eq!(d["projects"]["nodes"].as_array().map(Vec::len), Some(3));
    })
    .await;
    assert_eq!(flat, (1, txns), "flat: (statements, transactions)");

    let counted = cost(&app, |_| async {
        let d = app.ok(FLAT_COUNTED, json!({})).await;
        assert_eq!(d["projects"]["totalCount"], 3);
    })
    .await;
    assert_eq!(counted, (2, txns), "flat with totalCount");

    let nested = cost(&app, |_| async {
        let d = app.ok(NESTED, json!({})).await;
        let first = &d["projects"]["nodes"][0]["tasks"]["nodes"];
        assert!(
            first.as_array().is_some_and(|t| !t.is_empty()),
            "the nested query reaches tasks: {d}"
        );
    })
    .await;
    assert_eq!(nested, (3, txns), "nested: projects, tasks, personas");

    let by_id = cost(&app, |_| async {
        let d = app.ok(BY_ID, json!({ "id": task })).await;
        assert_eq!(d["task"]["id"], task.as_str());
    })
    .await;
    assert_eq!(by_id, (1, txns), "one task by id");

    // A mutation: one write transaction (set_config on PostgreSQL; the
    // project found and locked through the task; the task locked, updated;
    // the event inserted, positioned by the insert itself), and the payload
    // answered from what the transaction returned.
    app.ok(
        "mutation($id: ID!) { startTask(input: {taskId: $id}) { task { id } } }",
        json!({ "id": task }),
    )
    .await;
    let (statements, transactions) = cost(&app, |i| {
        let task = task.clone();
        let app = &app;
        async move {
            let d = app
                .ok(PROGRESS, json!({ "id": task, "p": 10 + i as i64 }))
                .await;
            assert_eq!(d["reportTaskProgress"]["task"]["progress"], 10 + i as i64);
        }
    })
    .await;
    eprintln!("reportTaskProgress: {statements} statements, {transactions} transactions");
    assert!(
        transactions <= if pg { 1 } else { 0 },
        "reportTaskProgress: {transactions} transactions"
    );
    assert!(
        statements <= 5,
        "reportTaskProgress: {statements} statements"
    );
}
