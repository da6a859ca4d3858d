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

use serde_json::json;

use crate::support;

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
        projects.push(
            app.create_project_from(&format!("P{i}"), "greenfield-service")
                .await,
        );
    }
    let task = app.create_task_for(&projects[0], "T", "dev").await;
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
        assert_eq!(d["task"]["id"], task);
    })
    .await;
    assert_eq!(by_id, (1, txns), "one task by id");

    // A mutation: one write transaction (set_config on PostgreSQL; the
    // project found and locked through the task, then the task; the task
    // updated; the event inserted, positioned by the insert itself), and
    // the payload answered from what the transaction returned.
    app.start_task(&task).await;
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
    // PostgreSQL locks the project and the task in one statement
    // (`lock_project_and_task`); SQLite, with no row locks, reads both.
    assert!(
        statements <= if pg { 4 } else { 5 },
        "reportTaskProgress: {statements} statements"
    );
}

/// The leaf fields (no required arguments) of `ty` from an introspected
/// schema, as a selection; `__typename` when it has none.
fn leaves(types: &serde_json::Value, ty: &str) -> String {
    let t = types
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == ty))
        .unwrap_or_else(|| panic!("type {ty} in the schema"));
    let mut out = vec!["__typename".to_string()];
    for f in t["fields"].as_array().into_iter().flatten() {
        let required = f["args"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["type"]["kind"] == "NON_NULL");
        if !required && matches!(named(&f["type"]).1.as_str(), "SCALAR" | "ENUM") {
            out.push(f["name"].as_str().unwrap_or_default().to_string());
        }
    }
    out.join(" ")
}

/// (name, kind) of the named type under any NON_NULL and LIST wrappers.
fn named(t: &serde_json::Value) -> (String, String) {
    let mut t = t;
    while t["name"].is_null() {
        t = &t["ofType"];
    }
    (
        t["name"].as_str().unwrap_or_default().to_string(),
        t["kind"].as_str().unwrap_or_default().to_string(),
    )
}

/// A page of tasks under a project reads only the columns its selection
/// needs (on PostgreSQL; `Task::columns_of` in `src/graphql/types.rs`), so
/// every field of `Task`, asked alone through `Project.tasks` and through
/// `edges { node }`, must answer exactly what the same field answers on
/// the whole row (`task(id:)`). A field whose resolver reads a column its
/// entry does not name answers a default here, and this fails.
#[tokio::test]
async fn a_page_of_tasks_reading_some_columns_answers_every_field_as_whole_rows_do() {
    let app = support::spawn().await;
    let d = app
        .ok(
            "mutation { createProject(input: {name: \"Columns\", workflowId: \"greenfield-service\"}) { project { id tasks(first: 50) { nodes { id dependencies { id } } } } } }",
            json!({}),
        )
        .await;
    let project = d["createProject"]["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    let ready: Vec<String> = d["createProject"]["project"]["tasks"]["nodes"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["dependencies"].as_array().is_some_and(|d| d.is_empty()))
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect();
    let extra = app
        .new_id(
            "mutation($p: ID!) { createTask(input: {projectId: $p, title: \"Extra\", personaId: \"dev\", instructions: \"Do it\", priority: 2}) { task { id } } }",
            json!({ "p": project }),
        )
        .await;
    let broken = app.create_task(&project, "Broken").await;
    // Give the rows something in every column: a failed attempt, a retry,
    // progress with a stage and message, a checkpoint, an output.
    let t = &ready[0];
    for (q, v) in [
        (
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            json!({}),
        ),
        (
            "mutation($t: ID!) { failTask(input: {taskId: $t, error: \"first try failed\"}) { task { id } } }",
            json!({}),
        ),
        (
            "mutation($t: ID!) { retryTask(input: {taskId: $t}) { task { id } } }",
            json!({}),
        ),
        (
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            json!({}),
        ),
        (
            "mutation($t: ID!, $m: String) { reportTaskProgress(input: {taskId: $t, progress: 40, stage: $m, message: $m}) { task { id } } }",
            json!({ "m": "drafting" }),
        ),
        (
            "mutation($t: ID!, $s: JSON!) { createCheckpoint(input: {taskId: $t, stepId: \"s1\", state: $s}) { checkpoint { id } } }",
            json!({ "s": { "k": 1 } }),
        ),
    ] {
        let mut vars = v;
        vars["t"] = json!(t);
        app.ok(q, vars).await;
    }
    // A retry clears the error, so another task is left FAILED with one.
    for (q, id) in [
        (
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            &extra,
        ),
        (
            "mutation($t: ID!) { completeTask(input: {taskId: $t, output: {done: [1, \"two\"]}}) { task { id } } }",
            &extra,
        ),
        (
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            &broken,
        ),
        (
            "mutation($t: ID!) { failTask(input: {taskId: $t, error: \"it broke\"}) { task { id } } }",
            &broken,
        ),
    ] {
        app.ok(q, json!({ "t": id })).await;
    }

    let schema = app
        .ok(
            "{ __schema { types { name kind fields { name args { name type { kind } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }",
            json!({}),
        )
        .await;
    let types = &schema["__schema"]["types"];
    let task_fields = types
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "Task"))
        .expect("Task")["fields"]
        .as_array()
        .expect("fields")
        .clone();
    assert!(
        task_fields.len() >= 30,
        "Task has its fields: {}",
        task_fields.len()
    );
    for f in &task_fields {
        let name = f["name"].as_str().expect("field name");
        let (ty, kind) = named(&f["type"]);
        let sel = if matches!(kind.as_str(), "SCALAR" | "ENUM") {
            format!("id {name}")
        } else {
            format!("id {name} {{ {} }}", leaves(types, &ty))
        };
        let paged = app
            .ok(
                &format!("query($p: ID!) {{ project(id: $p) {{ tasks(first: 50) {{ nodes {{ {sel} }} }} }} }}"),
                json!({ "p": project }),
            )
            .await;
        let edged = app
            .ok(
                &format!("query($p: ID!) {{ project(id: $p) {{ tasks(first: 50) {{ edges {{ cursor node {{ {sel} }} }} }} }} }}"),
                json!({ "p": project }),
            )
            .await;
        let nodes = paged["project"]["tasks"]["nodes"]
            .as_array()
            .expect("nodes");
        let edges = edged["project"]["tasks"]["edges"]
            .as_array()
            .expect("edges");
        assert_eq!(nodes.len(), edges.len());
        assert!(nodes.len() > 10, "the project's tasks: {}", nodes.len());
        for (n, e) in nodes.iter().zip(edges) {
            let whole = app
                .ok(
                    &format!("query($t: ID!) {{ task(id: $t) {{ {sel} }} }}"),
                    json!({ "t": n["id"] }),
                )
                .await;
            assert_eq!(
                n, &whole["task"],
                "Task.{name} through a page of chosen columns"
            );
            assert_eq!(&e["node"], &whole["task"], "Task.{name} through edges");
        }
    }
}
