//! Racing transitions on one row: exactly one wins, exactly one event.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support;

const START: &str = "mutation($id: ID!) { startTask(input: {taskId: $id}) { task { status } } }";
const RESOLVE: &str = "mutation($id: ID!) { resolveHitlRequest(input: {requestId: $id, decision: APPROVE}) { hitlRequest { status } } }";

async fn setup(app: &support::TestApp) -> (Value, Value) {
    let p = app.create_project("race").await;
    let t = app.create_task(&p, "t").await;
    (p, t)
}

/// Sends `query` for `id` `n` times at once: exactly one must win, and
/// every loser be refused as a conflict or an invalid transition.
async fn race(app: Arc<support::TestApp>, query: &'static str, id: Value, n: usize) {
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
    assert_eq!(wins, 1, "codes of the losers: {codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c == "CONFLICT" || c == "INVALID_TRANSITION"),
        "{codes:?}"
    );
}

async fn events_of(app: &support::TestApp, project: &Value, ty: &str) -> i64 {
    app.event_count(json!({ "projectId": project, "types": [ty] }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_starts_of_one_task_let_exactly_one_win() {
    let app = Arc::new(support::spawn().await);
    let (pid, tid) = setup(&app).await;
    race(app.clone(), START, tid, 50).await;
    assert_eq!(events_of(&app, &pid, "TASK_STARTED").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_to_one_hitl_request_let_exactly_one_win() {
    let app = Arc::new(support::spawn().await);
    let (pid, tid) = setup(&app).await;
    app.start_task(&tid).await;
    let rid = app.request_hitl(&tid, "go?").await;
    race(app.clone(), RESOLVE, rid, 20).await;
    assert_eq!(events_of(&app, &pid, "HITL_RESOLVED").await, 1);
    assert_eq!(events_of(&app, &pid, "TASK_RESUMED").await, 1);
}

/// Task verbs lock the project and then the task (on PostgreSQL in one
/// statement, `lock_project_and_task`), and a project-wide change locks the
/// project and then its tasks: one order, so a project cancelled while its
/// tasks report progress and complete never deadlocks. A deadlock would
/// abort one side with an internal error (after PostgreSQL's 1 s
/// `deadlock_timeout`); here every answer is a success or a refusal that
/// names the state it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_verbs_racing_a_project_cancel_never_deadlock() {
    let app = Arc::new(support::spawn().await);
    for round in 0..4 {
        let pid = app.create_project(&format!("race {round}")).await;
        let mut tasks = vec![];
        for i in 0..6 {
            let id = app.create_task(&pid, &format!("t{i}")).await;
            app.start_task(&id).await;
            tasks.push(id);
        }
        let mut handles = vec![];
        for (i, id) in tasks.iter().enumerate() {
            for q in [
                "mutation($id: ID!) { reportTaskProgress(input: {taskId: $id, progress: 50}) { task { id } } }",
                "mutation($id: ID!) { completeTask(input: {taskId: $id}) { task { id } } }",
            ] {
                let app = app.clone();
                let id = id.clone();
                handles.push(tokio::spawn(async move {
                    app.post(q, json!({ "id": id })).await
                }));
            }
            if i == 2 {
                let app = app.clone();
                let pid = pid.clone();
                handles.push(tokio::spawn(async move {
                    app.post(
                        "mutation($p: ID!) { cancelProject(input: {projectId: $p}) { project { id } } }",
                        json!({ "p": pid }),
                    )
                    .await
                }));
            }
        }
        for h in handles {
            let body = h.await.expect("task");
            if let Some(code) = body["errors"][0]["extensions"]["code"].as_str() {
                assert!(
                    matches!(
                        code,
                        "CONFLICT" | "INVALID_TRANSITION" | "PRECONDITION_FAILED"
                    ),
                    "round {round}: {body}"
                );
            }
        }
    }
}
