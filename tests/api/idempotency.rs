//! Idempotency keys: a retried request returns the original result and
//! changes nothing; a reused key with other input is a conflict.

use std::sync::Arc;

use serde_json::json;

use crate::support;

const CREATE: &str = "mutation($n: String!, $k: String) { createProject(input: {name: $n, idempotencyKey: $k}) { project { id name } event { cursor } } }";

#[tokio::test]
async fn a_retried_create_returns_the_original_and_creates_nothing_more() {
    let app = support::spawn().await;
    let first = app
        .ok(CREATE, json!({ "n": "Shop", "k": "create-shop-1" }))
        .await;
    let again = app
        .ok(CREATE, json!({ "n": "Shop", "k": "create-shop-1" }))
        .await;
    assert_eq!(first, again, "same project, same event");
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
    let other = app
        .post(CREATE, json!({ "n": "Other", "k": "create-shop-1" }))
        .await;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "CONFLICT",
        "{other}"
    );
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
    // Without a key, the same request acts again.
    app.ok(CREATE, json!({ "n": "Shop" })).await;
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 2);
}

#[tokio::test]
async fn a_retried_transition_is_answered_from_the_log() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app
        .new_id("mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\", idempotencyKey: \"task-1\"}) { task { id } } }", json!({ "p": p })).await;
    let start = "mutation($t: ID!, $k: String) { startTask(input: {taskId: $t, idempotencyKey: $k}) { task { status version } event { cursor type } } }";
    let a = app.ok(start, json!({ "t": t, "k": "start-1" })).await;
    let b = app.ok(start, json!({ "t": t, "k": "start-1" })).await;
    assert_eq!(a, b);
    let n = app
        .event_count(json!({ "projectId": p, "types": ["TASK_STARTED"] }))
        .await;
    assert_eq!(n, 1);
    // Without the key the repeat is refused by the lifecycle.
    let c = app.post(start, json!({ "t": t })).await;
    assert_eq!(c["errors"][0]["extensions"]["code"], "INVALID_TRANSITION");
    // A refused request stores no key: it fails the same way again.
    let done = "mutation($t: ID!) { retryTask(input: {taskId: $t, idempotencyKey: \"retry-1\"}) { task { status } } }";
    assert_eq!(
        app.post(done, json!({ "t": t })).await["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
    assert_eq!(
        app.post(done, json!({ "t": t })).await["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_act_once() {
    let app = Arc::new(support::spawn().await);
    let mut hs = vec![];
    for _ in 0..10 {
        let app = app.clone();
        hs.push(tokio::spawn(async move {
            app.post(CREATE, json!({ "n": "Race", "k": "race-key" }))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in hs {
        let r = h.await.expect("join");
        match r["data"]["createProject"]["project"]["id"].as_str() {
            Some(id) => {
                ids.insert(id.to_string());
            }
            None => assert_eq!(r["errors"][0]["extensions"]["code"], "CONFLICT", "{r}"),
        }
    }
    assert_eq!(ids.len(), 1, "every success names the same project");
    assert_eq!(app.total_count("{ projects { totalCount } }").await, 1);
}

#[tokio::test]
async fn session_and_checkpoint_verbs_take_keys_too() {
    let app = support::spawn().await;
    let s = app.start_session().await;
    let suspend = "mutation($s: ID!) { suspendSession(input: {sessionId: $s, idempotencyKey: \"susp\"}) { session { status } event { cursor } } }";
    let a = app.ok(suspend, json!({ "s": s })).await;
    let b = app.ok(suspend, json!({ "s": s })).await;
    assert_eq!(
        a, b,
        "the repeat is answered, not refused as SUSPENDED → SUSPENDED"
    );

    let p = app.create_project("P").await;
    let t = app.create_task(&p, "t").await;
    let cp = "mutation($t: ID!, $s: JSON!) { createCheckpoint(input: {taskId: $t, stepId: \"s\", state: $s}) { checkpoint { id } } }";
    let v1 = app.ok(cp, json!({ "t": t, "s": { "n": 1 } })).await["createCheckpoint"]["checkpoint"]
        ["id"]
        .clone();
    app.ok(cp, json!({ "t": t, "s": { "n": 2 } })).await;
    let revert = "mutation($c: ID!) { revertToCheckpoint(input: {checkpointId: $c, idempotencyKey: \"rv\"}) { reverted { version status } event { cursor } } }";
    let a = app.ok(revert, json!({ "c": v1 })).await;
    let b = app.ok(revert, json!({ "c": v1 })).await;
    assert_eq!(a, b);
    assert_eq!(
        a["revertToCheckpoint"]["reverted"].as_array().map(Vec::len),
        Some(1)
    );
}

/// Sends a keyed mutation twice with the key `k` and asserts that the
/// repeat answers exactly as the first run did and appends no event;
/// returns the first answer's data.
async fn twice(
    app: &support::TestApp,
    k: &str,
    query: &str,
    mut vars: serde_json::Value,
) -> serde_json::Value {
    vars["k"] = json!(k);
    let first = app.ok(query, vars.clone()).await;
    let events = app.total_count("{ events(first: 0) { totalCount } }").await;
    let again = app.ok(query, vars).await;
    assert_eq!(first, again, "{k}: the repeat answers as the first run did");
    assert_eq!(
        app.total_count("{ events(first: 0) { totalCount } }").await,
        events,
        "{k}: the repeat appends nothing"
    );
    first
}

/// Every mutation that takes a key is rebuilt from what its first run
/// recorded, payload objects and event alike (the replay of each shape of
/// result: snapshots, the task beside a HITL request, the context beside a
/// session, the checkpoints a revert touched, artifacts and contexts read
/// back).
#[tokio::test]
async fn every_keyed_mutation_answers_a_repeat_as_it_answered_the_first() {
    let app = support::spawn().await;
    const EV: &str = "event { id type cursor subjectId payload }";
    let project = |name: &str, k: &str| {
        let q = format!(
            "mutation($k: String) {{ createProject(input: {{name: \"{name}\", idempotencyKey: $k}}) {{ project {{ id status }} {EV} }} }}"
        );
        let (app, k) = (&app, k.to_string());
        async move { twice(app, &k, &q, json!({})).await["createProject"]["project"]["id"].clone() }
    };
    let p = project("P", "create-project").await;
    let task = format!(
        "mutation($p: ID!, $k: String) {{ createTask(input: {{projectId: $p, title: \"t\", personaId: \"dev\", idempotencyKey: $k}}) {{ task {{ id status persona {{ key }} }} {EV} }} }}"
    );
    let t = twice(&app, "create-task", &task, json!({ "p": p })).await["createTask"]["task"]["id"]
        .clone();
    for (k, verb, extra) in [
        ("start", "startTask", ""),
        (
            "progress",
            "reportTaskProgress",
            ", progress: 50, stage: \"drafting\"",
        ),
    ] {
        let q = format!(
            "mutation($t: ID!, $k: String) {{ {verb}(input: {{taskId: $t, idempotencyKey: $k{extra}}}) {{ task {{ id status progress version }} {EV} }} }}"
        );
        twice(&app, k, &q, json!({ "t": t })).await;
    }

    let ask = format!(
        "mutation($t: ID!, $k: String) {{ requestHitl(input: {{taskId: $t, question: \"ok?\", idempotencyKey: $k}}) {{ hitlRequest {{ id status }} task {{ id status version }} {EV} }} }}"
    );
    let h = twice(&app, "ask", &ask, json!({ "t": t })).await["requestHitl"]["hitlRequest"]["id"]
        .clone();
    let answer = format!(
        "mutation($h: ID!, $k: String) {{ resolveHitlRequest(input: {{requestId: $h, decision: APPROVE, idempotencyKey: $k}}) {{ hitlRequest {{ id status }} task {{ id status version }} {EV} }} }}"
    );
    let a = twice(&app, "answer", &answer, json!({ "h": h })).await;
    assert_eq!(a["resolveHitlRequest"]["task"]["status"], "WORKING");

    const CP: &str = "checkpoint { id version status pinned state }";
    let create = format!(
        "mutation($t: ID!, $k: String) {{ createCheckpoint(input: {{taskId: $t, stepId: \"s\", state: {{n: 1}}, idempotencyKey: $k}}) {{ {CP} {EV} }} }}"
    );
    let c1 = twice(&app, "checkpoint", &create, json!({ "t": t })).await["createCheckpoint"]["checkpoint"]["id"].clone();
    let fork = format!(
        "mutation($c: ID!, $k: String) {{ forkFromCheckpoint(input: {{checkpointId: $c, statePatch: {{m: 2}}, idempotencyKey: $k}}) {{ {CP} {EV} }} }}"
    );
    let c2 = twice(&app, "fork", &fork, json!({ "c": c1 })).await["forkFromCheckpoint"]["checkpoint"]["id"].clone();
    let pin = format!(
        "mutation($c: ID!, $k: String) {{ pinCheckpoint(input: {{checkpointId: $c, pinned: true, idempotencyKey: $k}}) {{ {CP} {EV} }} }}"
    );
    twice(&app, "pin", &pin, json!({ "c": c1 })).await;
    let status = format!(
        "mutation($c: ID!, $k: String) {{ updateCheckpointStatus(input: {{checkpointId: $c, status: COMPLETED, idempotencyKey: $k}}) {{ {CP} {EV} }} }}"
    );
    twice(&app, "status", &status, json!({ "c": c2 })).await;
    let revert = format!(
        "mutation($c: ID!, $k: String) {{ revertToCheckpoint(input: {{checkpointId: $c, idempotencyKey: $k}}) {{ {CP} reverted {{ id version status }} {EV} }} }}"
    );
    let r = twice(&app, "revert", &revert, json!({ "c": c1 })).await;
    assert_eq!(
        r["revertToCheckpoint"]["reverted"].as_array().map(Vec::len),
        Some(1)
    );

    let artifact = format!(
        "mutation($p: ID!, $t: ID!, $k: String) {{ createArtifact(input: {{projectId: $p, taskId: $t, kind: DOCUMENT, name: \"prd.md\", content: {{text: \"x\"}}, idempotencyKey: $k}}) {{ artifact {{ id version kind name persona {{ key }} }} {EV} }} }}"
    );
    twice(&app, "artifact", &artifact, json!({ "p": p, "t": t })).await;
    let agent = format!(
        "mutation($p: ID!, $t: ID!, $k: String) {{ updateAgentStatus(input: {{projectId: $p, personaId: \"dev\", status: WORKING, currentTaskId: $t, message: \"on it\", idempotencyKey: $k}}) {{ agentStatus {{ id status message }} {EV} }} }}"
    );
    twice(&app, "agent", &agent, json!({ "p": p, "t": t })).await;
    let reset = format!(
        "mutation($p: ID!, $k: String) {{ resetAgentStatus(input: {{projectId: $p, personaId: \"dev\", idempotencyKey: $k}}) {{ agentStatus {{ id status message }} {EV} }} }}"
    );
    twice(&app, "reset", &reset, json!({ "p": p })).await;

    let done = format!(
        "mutation($t: ID!, $k: String) {{ completeTask(input: {{taskId: $t, output: {{ok: true}}, idempotencyKey: $k}}) {{ task {{ id status output }} {EV} }} }}"
    );
    twice(&app, "complete", &done, json!({ "t": t })).await;
    let t2 = app
        .new_id("mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t2\"}) { task { id } } }", json!({ "p": p })).await;
    app.ok(
        "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
        json!({ "t": t2 }),
    )
    .await;
    for (k, verb, extra) in [
        ("fail", "failTask", ", error: \"boom\""),
        ("retry", "retryTask", ""),
        ("cancel", "cancelTask", ", reason: \"not needed\""),
    ] {
        let q = format!(
            "mutation($t: ID!, $k: String) {{ {verb}(input: {{taskId: $t, idempotencyKey: $k{extra}}}) {{ task {{ id status attempt error }} {EV} }} }}"
        );
        twice(&app, k, &q, json!({ "t": t2 })).await;
    }
    for (k, verb) in [
        ("complete-project", "completeProject"),
        ("fail-project", "failProject"),
        ("cancel-project", "cancelProject"),
        ("force-project", "forceCompleteProject"),
    ] {
        let target = if verb == "completeProject" {
            p.clone()
        } else {
            project(verb, &format!("{k}-create")).await
        };
        let q = format!(
            "mutation($p: ID!, $k: String) {{ {verb}(input: {{projectId: $p, reason: \"r\", idempotencyKey: $k}}) {{ project {{ id status }} {EV} }} }}"
        );
        twice(&app, k, &q, json!({ "p": target })).await;
    }

    let start = format!(
        "mutation($k: String) {{ startSession(input: {{name: \"S\", idempotencyKey: $k}}) {{ session {{ id status }} {EV} }} }}"
    );
    let s =
        twice(&app, "session", &start, json!({})).await["startSession"]["session"]["id"].clone();
    let switch = format!(
        "mutation($s: ID!, $k: String) {{ switchPersona(input: {{sessionId: $s, personaId: \"dev\", initialState: {{a: 0}}, idempotencyKey: $k}}) {{ session {{ id status }} context {{ id state }} {EV} }} }}"
    );
    let c =
        twice(&app, "switch", &switch, json!({ "s": s })).await["switchPersona"]["context"]["id"]
            .clone();
    const CTX: &str = "context { id state historyCount activeTool }";
    let update = format!(
        "mutation($c: ID!, $k: String) {{ updatePersonaContext(input: {{contextId: $c, statePatch: {{a: 1}}, activeTool: \"editor\", idempotencyKey: $k}}) {{ {CTX} {EV} }} }}"
    );
    twice(&app, "update-context", &update, json!({ "c": c })).await;
    let append = format!(
        "mutation($c: ID!, $k: String) {{ appendPersonaContextHistory(input: {{contextId: $c, entry: {{role: \"user\"}}, idempotencyKey: $k}}) {{ {CTX} {EV} }} }}"
    );
    twice(&app, "append", &append, json!({ "c": c })).await;
    let snap = app
        .ok("mutation($c: ID!) { exportPersonaContext(input: {contextId: $c}) { snapshot { data compressed checksum size } } }", json!({ "c": c }))
        .await["exportPersonaContext"]["snapshot"]
        .clone();
    let import = format!(
        "mutation($s: ID!, $snap: PersonaContextSnapshotInput!, $k: String) {{ importPersonaContext(input: {{sessionId: $s, snapshot: $snap, idempotencyKey: $k}}) {{ {CTX} {EV} }} }}"
    );
    twice(&app, "import", &import, json!({ "s": s, "snap": snap })).await;
    for (k, verb) in [
        ("suspend", "suspendSession"),
        ("resume", "resumeSession"),
        ("terminate", "terminateSession"),
    ] {
        let q = format!(
            "mutation($s: ID!, $k: String) {{ {verb}(input: {{sessionId: $s, idempotencyKey: $k}}) {{ session {{ id status }} {EV} }} }}"
        );
        twice(&app, k, &q, json!({ "s": s })).await;
    }
}

/// A keyed `startSession` that expires the caller's oldest session (the
/// per-user limit) appends that expiry before its own start: a repeat
/// answers with the new session, not the expired one.
#[tokio::test]
async fn a_repeated_start_session_answers_with_the_session_it_started() {
    let app = support::spawn_with(|c| c.lifecycle.max_sessions_per_user = 1).await;
    let start = "mutation($k: String) { startSession(input: {name: \"new\", idempotencyKey: $k}) { session { id name status } event { id type } } }";
    let old = app
        .ok(
            "mutation { startSession(input: {name: \"old\"}) { session { id } } }",
            json!({}),
        )
        .await;
    let first = twice(&app, "start-after-limit", start, json!({})).await;
    assert_eq!(first["startSession"]["session"]["name"], "new");
    assert_eq!(first["startSession"]["session"]["status"], "ACTIVE");
    assert_ne!(
        first["startSession"]["session"]["id"],
        old["startSession"]["session"]["id"]
    );
    assert_eq!(first["startSession"]["event"]["type"], "SESSION_STARTED");
}
