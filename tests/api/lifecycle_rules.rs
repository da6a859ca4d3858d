//! Lifecycle rules that hold under concurrency and across entities: HITL
//! answers, retries, project ends, sessions, versions and re-imports.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support;
use crate::support::code;

const CREATE_TASK: &str = "mutation($p: ID!, $deps: [ID!]) { createTask(input: {projectId: $p, title: \"T\", dependsOn: $deps}) { task { id dependencies { id } } } }";
const START: &str = "mutation($id: ID!) { startTask(input: {taskId: $id}) { task { status } } }";
const ANSWER: &str = "mutation($id: ID!, $d: HitlDecision!) { resolveHitlRequest(input: {requestId: $id, decision: $d}) { hitlRequest { status decision } task { status } } }";
const TASK: &str = "query($id: ID!) { task(id: $id) { status version updatedAt hitlRequests { nodes { status } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_questions_answered_at_the_same_moment_resume_their_task() {
    let app = Arc::new(support::spawn().await);
    let p = app.create_project("P").await;
    for _ in 0..5 {
        let t = app.working_task(&p).await;
        let (a, b) = (
            app.request_hitl(&t, "ok?").await,
            app.request_hitl(&t, "ok?").await,
        );
        let (app1, app2) = (app.clone(), app.clone());
        let r1 =
            tokio::spawn(
                async move { app1.post(ANSWER, json!({ "id": a, "d": "APPROVE" })).await },
            );
        let r2 =
            tokio::spawn(
                async move { app2.post(ANSWER, json!({ "id": b, "d": "APPROVE" })).await },
            );
        for r in [r1.await.expect("join"), r2.await.expect("join")] {
            assert!(r.get("errors").is_none(), "{r}");
        }
        let d = app.ok(TASK, json!({ "id": t })).await;
        assert_eq!(
            d["task"]["status"], "WORKING",
            "both answered, the task must not wait: {d}"
        );
    }
}

#[tokio::test]
async fn a_task_that_stops_waiting_closes_its_questions_and_can_ask_again_after_a_retry() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.working_task(&p).await;
    let _first = app.request_hitl(&t, "ok?").await;
    app.fail_task(&t, "boom").await;
    let d = app.ok(TASK, json!({ "id": t })).await;
    assert_eq!(d["task"]["hitlRequests"]["nodes"][0]["status"], "EXPIRED");
    app.ok(
        "mutation($id: ID!) { retryTask(input: {taskId: $id}) { task { status attempt } } }",
        json!({ "id": t }),
    )
    .await;
    app.start_task(&t).await;
    let second = app.request_hitl(&t, "ok?").await;
    let r = app
        .ok(ANSWER, json!({ "id": second, "d": "APPROVE" }))
        .await;
    assert_eq!(r["resolveHitlRequest"]["task"]["status"], "WORKING");
    assert_eq!(
        r["resolveHitlRequest"]["hitlRequest"]["decision"],
        "APPROVE"
    );
}

#[tokio::test]
async fn starting_a_task_that_waits_for_a_human_is_refused_and_changes_nothing() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.working_task(&p).await;
    app.request_hitl(&t, "ok?").await;
    let before = app.ok(TASK, json!({ "id": t })).await;
    let body = app.post(START, json!({ "id": t })).await;
    assert_eq!(code(&body), "INVALID_TRANSITION", "{body}");
    assert!(body["errors"][0]["extensions"]["reason"].is_string());
    let after = app.ok(TASK, json!({ "id": t })).await;
    assert_eq!(
        before, after,
        "status, version, updatedAt and requests untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_history_appends_are_all_kept() {
    let app = Arc::new(support::spawn().await);
    let s = app.start_session().await;
    let c = app
        .new_id("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"dev\"}) { context { id } } }", json!({ "s": s })).await;
    let mut hs = vec![];
    for i in 0..20 {
        let (app, c) = (app.clone(), c.clone());
        hs.push(tokio::spawn(async move {
            app.post("mutation($c: ID!, $e: JSON!) { appendPersonaContextHistory(input: {contextId: $c, entry: $e}) { context { id } } }", json!({ "c": c, "e": { "i": i } }))
                .await
        }));
    }
    for h in hs {
        let r = h.await.expect("join");
        assert!(r.get("errors").is_none(), "{r}");
    }
    let d = app.ok("query($c: ID!) { node(id: $c) { ... on PersonaContext { historyTotal historyCount } } }", json!({ "c": c })).await;
    assert_eq!(d["node"]["historyTotal"], 20);
    assert_eq!(d["node"]["historyCount"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_artifacts_of_one_name_get_distinct_versions() {
    let app = Arc::new(support::spawn().await);
    let p = app.create_project("P").await;
    let mut hs = vec![];
    for _ in 0..8 {
        let (app, p) = (app.clone(), p.clone());
        hs.push(tokio::spawn(async move {
            app.post("mutation($p: ID!) { createArtifact(input: {projectId: $p, kind: PLAN, name: \"prd.md\", content: {}}) { artifact { version } } }", json!({ "p": p }))
                .await
        }));
    }
    let mut versions = vec![];
    for h in hs {
        let r = h.await.expect("join");
        match r["data"]["createArtifact"]["artifact"]["version"].as_i64() {
            Some(v) => versions.push(v),
            None => assert_eq!(code(&r), "CONFLICT", "{r}"),
        }
    }
    versions.sort();
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    assert_eq!(versions, expected);
    assert!(!versions.is_empty());
}

#[tokio::test]
async fn a_cancelled_project_stops_its_tasks_and_closes_their_questions() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let waiting = app.working_task(&p).await;
    app.request_hitl(&waiting, "ok?").await;
    let pending = app.create_task(&p, "T").await;
    let d = app
        .ok("mutation($p: ID!) { cancelProject(input: {projectId: $p, reason: \"no longer needed\"}) { project { status completion { cancelledTasks } } } }", json!({ "p": p }))
        .await;
    assert_eq!(d["cancelProject"]["project"]["status"], "CANCELLED");
    assert_eq!(
        d["cancelProject"]["project"]["completion"]["cancelledTasks"],
        2
    );
    let w = app.ok(TASK, json!({ "id": waiting })).await;
    assert_eq!(w["task"]["status"], "CANCELLED");
    assert_eq!(w["task"]["hitlRequests"]["nodes"][0]["status"], "EXPIRED");
    let body = app.post(START, json!({ "id": pending })).await;
    assert_eq!(code(&body), "INVALID_TRANSITION");
    let body = app.post(CREATE_TASK, json!({ "p": p })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn completing_a_project_with_required_work_open_is_refused() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.working_task(&p).await;
    let q = "mutation($p: ID!) { completeProject(input: {projectId: $p}) { project { status } } }";
    let body = app.post(q, json!({ "p": p })).await;
    assert_eq!(code(&body), "INVALID_TRANSITION", "{body}");
    app.complete_task(&t).await;
    assert_eq!(
        app.ok(q, json!({ "p": p })).await["completeProject"]["project"]["status"],
        "COMPLETED"
    );
}

#[tokio::test]
async fn duplicate_dependencies_are_recorded_once() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let a = app.create_task(&p, "T").await;
    let b = app.ok(CREATE_TASK, json!({ "p": p, "deps": [a, a] })).await;
    assert_eq!(
        b["createTask"]["task"]["dependencies"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn name_contains_ignores_case_and_matches_wildcards_literally() {
    let app = support::spawn().await;
    for n in ["Alpha", "beta_1", "100% done", "gamma"] {
        app.create_project(n).await;
    }
    let q = "query($n: String!) { projects(filter: {nameContains: $n}) { nodes { name } } }";
    let names = |d: Value| -> Vec<String> {
        d["projects"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(names(app.ok(q, json!({ "n": "alpha" })).await), ["Alpha"]);
    assert_eq!(names(app.ok(q, json!({ "n": "%" })).await), ["100% done"]);
    assert_eq!(names(app.ok(q, json!({ "n": "_" })).await), ["beta_1"]);
}

#[tokio::test]
async fn a_suspended_session_refuses_persona_switches_and_context_changes() {
    let app = support::spawn().await;
    let s = app.start_session().await;
    let c = app
        .new_id("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"pm\"}) { context { id } } }", json!({ "s": s })).await;
    app.ok(
        "mutation($s: ID!) { suspendSession(input: {sessionId: $s}) { session { status } } }",
        json!({ "s": s }),
    )
    .await;
    let body = app
        .post("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"dev\"}) { context { id } } }", json!({ "s": s }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let body = app
        .post("mutation($c: ID!) { updatePersonaContext(input: {contextId: $c, statePatch: {a: 1}}) { context { id } } }", json!({ "c": c }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let d = app
        .ok(
            "query($s: ID!) { session(id: $s) { status currentContext { state } } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(
        d["session"]["currentContext"]["state"],
        json!({}),
        "kept intact while suspended"
    );
}

#[tokio::test]
async fn reimporting_a_workflow_keeps_running_tasks_on_their_steps() {
    reimport_checks(&support::bmad::own_pack()).await;
}

#[tokio::test]
async fn reimporting_the_real_bmad_workflow_keeps_running_tasks_on_their_steps() {
    let test = "reimporting_the_real_bmad_workflow_keeps_running_tasks_on_their_steps";
    if let Some(pack) = support::bmad::real_files(test) {
        reimport_checks(&pack).await;
    }
}

/// Imports `workflows/greenfield-service.yaml` of `pack` twice, with a
/// project running on it in between.
async fn reimport_checks(pack: &std::path::Path) {
    let app = support::spawn().await;
    let file =
        std::fs::read_to_string(pack.join("workflows/greenfield-service.yaml")).expect("fixture");
    let import = "mutation($c: String!) { importCatalog(input: {files: [{path: \"workflows/greenfield-service.yaml\", content: $c}]}) { workflows { id builtin } errors { reason } } }";
    let first = app.ok(import, json!({ "c": file })).await;
    assert_eq!(first["importCatalog"]["workflows"][0]["builtin"], false);
    let p = app.create_project_from("P", "greenfield-service").await;
    let steps = "query($p: ID!) { project(id: $p) { workflow { builtin } tasks(first: 100) { nodes { workflowStep { id key requiresApproval } } } } }";
    let before = app.ok(steps, json!({ "p": p })).await;
    assert_eq!(
        before["project"]["workflow"]["builtin"], false,
        "the tenant's own import wins"
    );
    app.ok(import, json!({ "c": file })).await;
    let after = app.ok(steps, json!({ "p": p })).await;
    assert_eq!(before, after, "same step ids after re-import");
    assert!(
        after["project"]["tasks"]["nodes"]
            .as_array()
            .expect("tasks")
            .iter()
            .all(|t| t["workflowStep"]["id"].is_string())
    );
}

#[tokio::test]
async fn every_error_has_a_code_including_protocol_errors() {
    let app = support::spawn().await;
    let get = app
        .get("mutation { startSession { session { id } } }")
        .await;
    let body: Value = get.json().await.expect("json");
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(
        code(
            &app.post("{ projects(first: \"x\") { totalCount } }", json!({}))
                .await
        ),
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(
        code(&app.post("{ projects( ", json!({})).await),
        "GRAPHQL_PARSE_FAILED"
    );
    assert_eq!(
        code(&app.post("{ nosuchfield }", json!({})).await),
        "GRAPHQL_VALIDATION_FAILED"
    );
    let var = app
        .post(
            "query($n: Int) { projects(first: $n) { totalCount } }",
            json!({ "n": "x" }),
        )
        .await;
    assert!(!code(&var).is_empty(), "{var}");
    let raw = app
        .http()
        .post(app.graphql_url())
        .header("content-type", "application/json")
        .body("{\"query\": 12")
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.expect("a JSON error body");
    assert_eq!(code(&body), "BAD_REQUEST");
}

#[tokio::test]
async fn events_are_nodes() {
    let app = support::spawn().await;
    let d = app
        .ok(
            "mutation { createProject(input: {name: \"n\"}) { event { id type } } }",
            json!({}),
        )
        .await;
    let id = d["createProject"]["event"]["id"].clone();
    let n = app
        .ok(
            "query($id: ID!) { node(id: $id) { id ... on Event { type } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(n["node"]["type"], "PROJECT_CREATED");
}

const PROJECT_TASKS: &str = "query($p: ID!) { project(id: $p) { status autoComplete tasks(first: 100) { nodes { id status required dependencies { id status } } } } }";

#[tokio::test]
async fn a_workflow_project_completes_itself_when_its_last_required_task_completes() {
    let app = support::spawn().await;
    let p = app.create_project_from("P", "greenfield-service").await;
    loop {
        let d = app.ok(PROJECT_TASKS, json!({ "p": p })).await;
        assert_eq!(d["project"]["autoComplete"], true);
        let tasks = d["project"]["tasks"]["nodes"]
            .as_array()
            .expect("tasks")
            .clone();
        let next = tasks.iter().find(|t| {
            t["required"] == true
                && t["status"] == "PENDING"
                && t["dependencies"].as_array().is_some_and(|ds| {
                    ds.iter()
                        .all(|d| d["status"] == "COMPLETED" || d["status"] == "CANCELLED")
                })
        });
        let Some(t) = next else { break };
        assert_eq!(
            d["project"]["status"], "ACTIVE",
            "still open while required work remains"
        );
        app.start_task(&t["id"]).await;
        app.complete_task(&t["id"]).await;
    }
    let d = app.ok(PROJECT_TASKS, json!({ "p": p })).await;
    assert_eq!(d["project"]["status"], "COMPLETED");
    let tasks = d["project"]["tasks"]["nodes"].as_array().expect("tasks");
    assert!(
        tasks
            .iter()
            .filter(|t| t["required"] == false)
            .all(|t| t["status"] == "CANCELLED"),
        "optional work skipped"
    );
    let n = app
        .event_count(json!({ "projectId": p, "types": ["PROJECT_COMPLETED"] }))
        .await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn an_ad_hoc_project_stays_open_until_completed_by_hand() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.working_task(&p).await;
    app.complete_task(&t).await;
    let d = app.ok(PROJECT_TASKS, json!({ "p": p })).await;
    assert_eq!(d["project"]["status"], "ACTIVE");
    assert_eq!(d["project"]["autoComplete"], false);
}

#[tokio::test]
async fn admins_can_force_a_start_and_a_completion_and_the_log_says_so() {
    let app = support::spawn().await;
    let p = app.create_project_from("P", "greenfield-service").await;
    let d = app.ok(PROJECT_TASKS, json!({ "p": p })).await;
    let second = d["project"]["tasks"]["nodes"][1]["id"].clone();
    let forced = "mutation($id: ID!) { startTask(input: {taskId: $id, force: true}) { task { status } event { payload } } }";

    let viewer = cerebral::auth::Principal {
        tenant_id: cerebral::auth::DEFAULT_TENANT,
        user_id: "viewer".into(),
        roles: vec![cerebral::auth::Role::Viewer, cerebral::auth::Role::Operator],
    };
    let r = app
        .as_principal(viewer.clone(), forced, json!({ "id": second }))
        .await;
    assert_eq!(code(&r), "FORBIDDEN", "{r}");

    let r = app.ok(forced, json!({ "id": second })).await;
    assert_eq!(r["startTask"]["task"]["status"], "WORKING");
    assert_eq!(
        r["startTask"]["event"]["payload"]["forcedPastDependencies"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let fc = "mutation($p: ID!) { forceCompleteProject(input: {projectId: $p, reason: \"shipping anyway\"}) { project { status } event { payload } } }";
    let r = app.as_principal(viewer, fc, json!({ "p": p })).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let r = app.ok(fc, json!({ "p": p })).await;
    assert_eq!(r["forceCompleteProject"]["project"]["status"], "COMPLETED");
    assert_eq!(
        r["forceCompleteProject"]["event"]["payload"]["forced"],
        true
    );
    let d = app.ok(PROJECT_TASKS, json!({ "p": p })).await;
    assert!(
        d["project"]["tasks"]["nodes"]
            .as_array()
            .expect("tasks")
            .iter()
            .all(|t| t["status"] == "CANCELLED")
    );
}

#[tokio::test]
async fn retries_keep_the_task_and_its_failed_attempts() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.working_task(&p).await;
    let retry = "mutation($id: ID!) { retryTask(input: {taskId: $id}) { task { id attempt status error } } }";
    app.fail_task(&t, "first boom").await;
    let r = app.ok(retry, json!({ "id": t })).await;
    assert_eq!(
        r["retryTask"]["task"]["id"],
        json!(t),
        "same task, so its dependants keep their edge"
    );
    assert_eq!(r["retryTask"]["task"]["attempt"], 2);
    assert!(r["retryTask"]["task"]["error"].is_null());
    app.start_task(&t).await;
    app.fail_task(&t, "second boom").await;
    app.ok(retry, json!({ "id": t })).await;
    let d = app.ok("query($id: ID!) { task(id: $id) { attempt retryOf { attempt error } failedAttempts { attempt error startedAt failedAt } } }", json!({ "id": t })).await;
    assert_eq!(d["task"]["attempt"], 3);
    assert_eq!(
        d["task"]["retryOf"]["attempt"], 2,
        "this run retries attempt 2"
    );
    assert_eq!(d["task"]["retryOf"]["error"], "second boom");
    let attempts = d["task"]["failedAttempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["error"], "first boom");
    assert_eq!(attempts[1]["attempt"], 2);
    assert_eq!(attempts[1]["error"], "second boom");
    assert!(attempts[0]["startedAt"].is_string());
}
