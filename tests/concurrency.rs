//! Racing transitions on one row: exactly one wins, exactly one event.

mod support;

use std::sync::Arc;

use serde_json::json;

const START: &str = "mutation($id: ID!) { startTask(input: {taskId: $id}) { task { status } } }";
const RESOLVE: &str = "mutation($id: ID!) { resolveHitlRequest(input: {requestId: $id, decision: APPROVE}) { hitlRequest { status } } }";

async fn setup(app: &support::TestApp) -> (String, String) {
    let p = app
        .ok(
            "mutation { createProject(input: {name: \"race\"}) { project { id } } }",
            json!({}),
        )
        .await;
    let pid = p["createProject"]["project"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let t = app
        .ok("mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\"}) { task { id } } }", json!({ "p": pid }))
        .await;
    (
        pid,
        t["createTask"]["task"]["id"]
            .as_str()
            .expect("id")
            .to_string(),
    )
}

async fn race(
    app: Arc<support::TestApp>,
    query: &'static str,
    id: String,
    n: usize,
) -> (usize, Vec<String>) {
    let mut handles = vec![];
    for _ in 0..n {
        let app = app.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            app.post(query, json!({ "id": id })).await
        }));
    }
    let mut wins = 0;
    let mut codes = vec![];
    for h in handles {
        let body = h.await.expect("task");
        match body["errors"][0]["extensions"]["code"].as_str() {
            Some(code) => codes.push(code.to_string()),
            None => wins += 1,
        }
    }
    (wins, codes)
}

async fn events_of(app: &support::TestApp, project: &str, ty: &str) -> i64 {
    app.ok(
        "query($p: ID!, $t: [EventType!]) { events(first: 0, filter: {projectId: $p, types: $t}) { totalCount } }",
        json!({ "p": project, "t": [ty] }),
    )
    .await["events"]["totalCount"]
        .as_i64()
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_starts_of_one_task_let_exactly_one_win() {
    let app = Arc::new(support::spawn().await);
    let (pid, tid) = setup(&app).await;
    let (wins, codes) = race(app.clone(), START, tid, 50).await;
    assert_eq!(wins, 1, "codes of the losers: {codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c == "CONFLICT" || c == "INVALID_TRANSITION"),
        "{codes:?}"
    );
    assert_eq!(events_of(&app, &pid, "TASK_STARTED").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_to_one_hitl_request_let_exactly_one_win() {
    let app = Arc::new(support::spawn().await);
    let (pid, tid) = setup(&app).await;
    app.ok(START, json!({ "id": tid })).await;
    let r = app
        .ok("mutation($id: ID!) { requestHitl(input: {taskId: $id, question: \"go?\"}) { hitlRequest { id } } }", json!({ "id": tid }))
        .await;
    let rid = r["requestHitl"]["hitlRequest"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (wins, codes) = race(app.clone(), RESOLVE, rid, 20).await;
    assert_eq!(wins, 1, "codes of the losers: {codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c == "CONFLICT" || c == "INVALID_TRANSITION"),
        "{codes:?}"
    );
    assert_eq!(events_of(&app, &pid, "HITL_RESOLVED").await, 1);
    assert_eq!(events_of(&app, &pid, "TASK_RESUMED").await, 1);
}
